"""Losses (keras.ops only): cross-entropy, the class-balanced focal `AdaptiveLoss`, and SimCLR's
contrastive NT-Xent (`nt_xent`, which `kzoo.selfsup.SimCLR` minimises).

kzoo models return logits and kzoo pipelines yield one-hot float labels, so every loss here
takes `(one_hot_labels, logits)` by default.

Example:
    >>> import numpy as np
    >>> counts = class_counts_from_labels(np.array([0, 0, 0, 1]), num_classes=2)
    >>> counts.tolist()
    [3, 1]
    >>> loss = get_loss("adaptive", class_counts=counts)
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError

LOSS_NAMES = ("crossentropy", "adaptive")
# Added to the masked self-similarities: exp(-1e9) is exactly 0 in float32, and unlike -inf it
# never turns a 0 * inf into NaN in the gradient.
_MASKED = -1e9


def effective_number_weights(class_counts: Sequence[float], beta: float = 0.999) -> np.ndarray:
    """Class weights from the effective number of samples (Cui et al., CVPR 2019):
    `w_c = (1 - beta) / (1 - beta ** n_c)`, normalised to sum to the number of classes.

    A class with 0 samples is weighted as if it had 1. `beta=0` gives uniform weights; `beta -> 1`
    approaches inverse class frequency.

    Example:
        >>> effective_number_weights([100, 100]).tolist()
        [1.0, 1.0]
    """
    counts = np.asarray(class_counts, dtype="float64").reshape(-1)
    if counts.size == 0 or np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise KzooError(f"class_counts must be finite non-negative numbers, one per class, got {class_counts!r}")
    if not 0.0 <= beta < 1.0:
        raise KzooError(f"beta must be in [0, 1), got {beta!r}")
    counts = np.maximum(counts, 1.0)
    weights = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return (weights / weights.sum() * counts.size).astype("float32")


def class_counts_from_labels(labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Samples per class, from integer labels `(N,)`, one-hot/soft labels `(N, C)`, or an
    iterable of `(images, labels)` batches (e.g. a kzoo training `tf.data.Dataset`; soft labels
    count fractionally).

    Example:
        >>> class_counts_from_labels(np.eye(3)[[0, 2, 2]]).tolist()
        [1.0, 0.0, 2.0]
    """
    if isinstance(labels, (np.ndarray, list, tuple)) and not (
        isinstance(labels, (list, tuple)) and labels and isinstance(labels[0], (tuple, list))
    ):
        return _counts_of_array(np.asarray(labels), num_classes)
    if hasattr(labels, "shape") and hasattr(labels, "dtype"):  # a backend tensor
        return _counts_of_array(np.asarray(ops.convert_to_numpy(labels)), num_classes)
    total = None
    for batch in labels:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise KzooError("class_counts_from_labels: an iterable must yield (images, labels) batches")
        counts = _counts_of_array(np.asarray(batch[1]), num_classes)
        if total is not None and counts.shape != total.shape:
            raise KzooError(
                f"class_counts_from_labels: batches disagree on the number of classes ({total.size} vs {counts.size}); "
                "pass num_classes"
            )
        total = counts if total is None else total + counts
    if total is None:
        raise KzooError("class_counts_from_labels: no labels (the iterable was empty)")
    return total


def _counts_of_array(labels: np.ndarray, num_classes: int | None) -> np.ndarray:
    if labels.ndim == 2 and labels.shape[-1] > 1:
        if num_classes is not None and labels.shape[-1] != num_classes:
            raise KzooError(f"class_counts_from_labels: labels have {labels.shape[-1]} classes, expected {num_classes}")
        return labels.astype("float64").sum(axis=0)
    labels = labels.reshape(-1)
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) and not np.all(np.mod(labels, 1) == 0)):
        raise KzooError("class_counts_from_labels: 1-D labels must be integer class indices")
    labels = labels.astype("int64")
    if labels.size and labels.min() < 0:
        raise KzooError(f"class_counts_from_labels: negative class index {labels.min()}")
    size = num_classes if num_classes is not None else (int(labels.max()) + 1 if labels.size else 0)
    if labels.size and labels.max() >= size:
        raise KzooError(f"class_counts_from_labels: class index {labels.max()} >= num_classes={size}")
    return np.bincount(labels, minlength=size).astype("int64")


@keras.saving.register_keras_serializable(package="kzoo")
class AdaptiveLoss(keras.losses.Loss):
    """Class-balanced focal loss over a softmax:
    `loss = -alpha * sum_c w_c * y_c * (1 - p_c) ** gamma * log(p_c)`.

    - `gamma` down-weights easy examples (focal loss, Lin et al. 2017);
    - `w_c` are class weights, from `class_counts` by the effective number of samples
      (`effective_number_weights(class_counts, beta)`) or given as `class_weights`;
      uniform (1) when neither is given;
    - `alpha` scales the whole loss (with `gamma=0`, `alpha=1` and uniform weights this is
      categorical cross-entropy).

    Labels are one-hot or soft `(batch, C)`; integer labels `(batch,)` are one-hot encoded.

    Example:
        >>> loss = AdaptiveLoss(class_counts=[500, 50, 5])
        >>> model.compile(optimizer="adam", loss=loss)  # doctest: +SKIP
    """

    def __init__(
        self,
        alpha: float = 0.25,
        gamma: float = 2.0,
        beta: float = 0.999,
        class_counts: Sequence[float] | None = None,
        class_weights: Sequence[float] | None = None,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "adaptive_loss",
        **kwargs,
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)
        if class_counts is not None and class_weights is not None:
            raise KzooError("AdaptiveLoss: pass class_counts or class_weights, not both")
        if not alpha > 0:
            raise KzooError(f"AdaptiveLoss: alpha must be > 0, got {alpha!r}")
        if not gamma >= 0:
            raise KzooError(f"AdaptiveLoss: gamma must be >= 0, got {gamma!r}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.beta = float(beta)
        self.from_logits = from_logits
        self.class_counts = None if class_counts is None else [float(c) for c in np.asarray(class_counts).reshape(-1)]
        if class_counts is not None:
            weights = effective_number_weights(self.class_counts, self.beta)
        elif class_weights is not None:
            weights = np.asarray(class_weights, dtype="float32").reshape(-1)
            if weights.size == 0 or np.any(weights < 0) or not np.all(np.isfinite(weights)):
                raise KzooError(f"AdaptiveLoss: class_weights must be finite and >= 0, got {class_weights!r}")
        else:
            weights = None
            if not 0.0 <= beta < 1.0:
                raise KzooError(f"AdaptiveLoss: beta must be in [0, 1), got {beta!r}")
        self.class_weights = None if weights is None else [float(w) for w in weights]

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        num_classes = y_pred.shape[-1]
        if len(y_true.shape) == len(y_pred.shape) - 1:
            y_true = ops.one_hot(ops.cast(y_true, "int32"), num_classes)
        y_true = ops.cast(y_true, "float32")
        if self.class_weights is not None and num_classes is not None and num_classes != len(self.class_weights):
            raise KzooError(
                f"AdaptiveLoss: {len(self.class_weights)} class weights for a model with {num_classes} outputs"
            )
        if self.from_logits:
            log_p = ops.log_softmax(y_pred, axis=-1)
        else:
            log_p = ops.log(ops.clip(y_pred, keras.config.epsilon(), 1.0))
        terms = y_true * log_p
        if self.gamma:
            p = ops.exp(log_p)
            terms = terms * ops.power(ops.maximum(1.0 - p, 0.0), self.gamma)
        if self.class_weights is not None:
            terms = terms * ops.convert_to_tensor(self.class_weights, "float32")
        return -self.alpha * ops.sum(terms, axis=-1)

    def get_config(self):
        config = {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "beta": self.beta,
            "from_logits": self.from_logits,
        }
        # Counts are the source of truth when given; weights travel as weights otherwise.
        if self.class_counts is not None:
            config["class_counts"] = self.class_counts
        elif self.class_weights is not None:
            config["class_weights"] = self.class_weights
        return config


def nt_xent(view1, view2, temperature: float = 0.5):
    """SimCLR's normalised temperature-scaled cross-entropy (Chen et al. 2020), batch mean.

    `view1[i]` and `view2[i]` (B, D) embed two views of image i. The 2B embeddings are
    L2-normalised; each one's positive is its other view and its negatives are the other 2B - 2
    embeddings; its own similarity is masked out. Per embedding the loss is
    `logsumexp_{j != i}(s_ij / T) - s_i,pos / T` (cosine similarities s), computed with a
    log-sum-exp, so it is finite for any temperature > 0. Embeddings are computed in float32.

    Example:
        >>> z = keras.ops.eye(4)  # four orthogonal embeddings, each view equal to its pair
        >>> round(float(nt_xent(z, z, temperature=1.0)), 4)  # log(e + 6) - 1: the positive at cosine 1
        1.1654
    """
    if not temperature > 0:
        raise KzooError(f"NT-Xent temperature must be > 0, got {temperature!r}")
    z = ops.concatenate([ops.cast(view1, "float32"), ops.cast(view2, "float32")], axis=0)
    z = z / ops.maximum(ops.sqrt(ops.sum(z * z, axis=-1, keepdims=True)), 1e-12)
    n = ops.shape(z)[0]
    index = ops.arange(n)
    logits = ops.matmul(z, ops.transpose(z)) / temperature
    logits = ops.where(ops.equal(index[:, None], index[None, :]), _MASKED, logits)
    positive = (index + n // 2) % n  # row i < B pairs with i + B, and the other way round
    target = ops.take_along_axis(logits, positive[:, None], axis=1)[:, 0]
    return ops.mean(ops.logsumexp(logits, axis=1) - target)


def get_loss(name: str, **kwargs: Any) -> keras.losses.Loss:
    """A loss by name: "crossentropy" (`CategoricalCrossentropy(from_logits=True)`, accepts e.g.
    `label_smoothing`) or "adaptive" (`AdaptiveLoss`, accepts its arguments, e.g. `class_counts`).

    Example:
        >>> get_loss("crossentropy", label_smoothing=0.1).label_smoothing
        0.1
    """
    key = str(name).lower().replace("-", "_")
    try:
        if key in ("crossentropy", "categorical_crossentropy", "ce"):
            kwargs.setdefault("from_logits", True)
            return keras.losses.CategoricalCrossentropy(**kwargs)
        if key in ("adaptive", "adaptive_loss", "focal"):
            return AdaptiveLoss(**kwargs)
    except TypeError as err:
        raise KzooError(f"loss {name!r}: {err}") from None
    raise KzooError(f"unknown loss {name!r}: expected one of {', '.join(LOSS_NAMES)}")
