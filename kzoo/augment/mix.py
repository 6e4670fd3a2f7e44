"""Label-mixing augmentations: CutMix, MixUp, a per-image random choice between them, smoothing.

Each image is mixed with a partner from a random permutation of the batch, with its own mixing
weight. Labels must be one-hot or soft, float (B, num_classes); integer class ids (B,) are
accepted when `num_classes` is given.
"""

from __future__ import annotations

from typing import Sequence

import keras

from kzoo.augment import _rng
from kzoo.augment._backend import ops_for
from kzoo.augment.base import BatchAugmentation
from kzoo.augment.geometric import select
from kzoo.errors import KzooError


def _check_labels(F, layer: str, labels, num_classes: int | None):
    if labels is None:
        raise KzooError(f"{layer}: needs labels; call it with {{'images': ..., 'labels': ...}}")
    if len(labels.shape) == 1:
        if not num_classes:
            raise KzooError(f"{layer}: labels are class ids of shape {tuple(labels.shape)}; pass "
                            "one-hot labels (B, num_classes) or set num_classes=")
        return F.one_hot(F.cast(labels, "int32"), num_classes, dtype="float32")
    return labels


def cutmix(images, labels, partner, boxes, F=None):
    """Pastes `images[partner]` into each image's box ((B, 4) int: y0, x0, y1, x1, end exclusive).

    Labels become (1 - a) * labels + a * labels[partner] with a = box area / image area: exactly
    the pasted fraction (boxes are already clipped to the image).

    Example:
        >>> out_images, out_labels = cutmix(x, y, keras.ops.array([1, 0]), keras.ops.array([[0, 0, 16, 16]] * 2))
    """
    F = F or ops_for(images)
    _, height, width, _ = images.shape
    boxes = F.cast(boxes, "int32")
    rows = F.arange(height, dtype="int32")[None, :]
    cols = F.arange(width, dtype="int32")[None, :]
    in_rows = F.logical_and(rows >= boxes[:, 0:1], rows < boxes[:, 2:3])  # (B, H)
    in_cols = F.logical_and(cols >= boxes[:, 1:2], cols < boxes[:, 3:4])  # (B, W)
    inside = F.cast(in_rows, "float32")[:, :, None, None] * F.cast(in_cols, "float32")[:, None, :, None]
    area = F.cast((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), "float32") / (height * width)
    return _blend_pairs(F, images, labels, partner, 1.0 - inside, 1.0 - area)


def _blend_pairs(F, images, labels, partner, weight, label_weight):
    """weight * x + (1 - weight) * x[partner]; labels alike with `label_weight` ((B,))."""
    images = weight * images + (1.0 - weight) * F.take(images, partner, axis=0)
    lw = F.reshape(label_weight, (-1, 1))
    labels = lw * labels + (1.0 - lw) * F.take(labels, partner, axis=0)
    return images, labels


def mixup(images, labels, partner, lam, F=None):
    """Blends each image with `images[partner]`: lam * x + (1 - lam) * x[partner], labels alike."""
    F = F or ops_for(images)
    lam = F.cast(lam, "float32")
    return _blend_pairs(F, images, labels, partner, F.reshape(lam, (-1, 1, 1, 1)), lam)


def smooth_labels(labels, smoothing: float, F=None):
    """Label smoothing that also suits mixed labels: (1 - eps) * y + eps / num_classes.

    Example:
        >>> smooth_labels(keras.ops.array([[0.0, 1.0]]), 0.1)
        [[0.05, 0.95]]
    """
    F = F or ops_for(labels)
    num_classes = labels.shape[-1]
    return labels * (1.0 - smoothing) + smoothing / num_classes


class _PairMix(BatchAugmentation):
    """Blends each image with a partner from the same batch; subclasses say how (`mix_weights`)."""

    def augment(self, F, images, labels, key):
        labels = _check_labels(F, type(self).__name__, labels, self.num_classes)
        weight, label_weight = self.mix_weights(F, images, key)
        partner = _rng.permutation(F, key, 5, F.shape(images)[0])
        return _blend_pairs(F, images, labels, partner, weight, label_weight)


@keras.saving.register_keras_serializable(package="kzoo")
class CutMix(_PairMix):
    """CutMix (Yun et al. 2019): per image lam ~ Beta(alpha, alpha), a box of area 1 - lam
    centred uniformly at random, clipped at the border; labels weighted by the exact pasted area.

    Example:
        >>> out = CutMix(seed=0)({"images": keras.ops.zeros((4, 32, 32, 3)), "labels": keras.ops.eye(4)})
        >>> keras.ops.sum(out["labels"], axis=1)  # all ones
    """

    uses_labels = True

    def __init__(self, alpha: float = 1.0, num_classes: int | None = None, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.alpha, self.num_classes = float(alpha), num_classes

    def boxes(self, F, images, key):
        """Per-image paste boxes (B, 4) int32 y0, x0, y1, x1, clipped at the border."""
        _, height, width, _ = images.shape
        batch = F.shape(images)[0]
        lam = _rng.beta(F, key, 1, (batch,), self.alpha)
        cut = F.sqrt(1.0 - lam)
        cut_h = F.cast(cut * height, "int32")
        cut_w = F.cast(cut * width, "int32")
        centre = _rng.uniform(F, key, 3, (2, batch))
        cy = _rng._to_int(F, centre[0], height)
        cx = _rng._to_int(F, centre[1], width)
        y0 = F.clip(cy - cut_h // 2, 0, height)
        y1 = F.clip(cy + cut_h - cut_h // 2, 0, height)
        x0 = F.clip(cx - cut_w // 2, 0, width)
        x1 = F.clip(cx + cut_w - cut_w // 2, 0, width)
        return F.stack([y0, x0, y1, x1], axis=1)

    def mix_weights(self, F, images, key):
        """(pixel weight of the image itself (B, H, W, 1), label weight (B,))."""
        _, height, width, _ = images.shape
        boxes = self.boxes(F, images, key)
        rows = F.arange(height, dtype="int32")[None, :]
        cols = F.arange(width, dtype="int32")[None, :]
        in_rows = F.cast(F.logical_and(rows >= boxes[:, 0:1], rows < boxes[:, 2:3]), "float32")
        in_cols = F.cast(F.logical_and(cols >= boxes[:, 1:2], cols < boxes[:, 3:4]), "float32")
        inside = in_rows[:, :, None, None] * in_cols[:, None, :, None]
        area = F.cast((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), "float32") / (height * width)
        return 1.0 - inside, 1.0 - area

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="kzoo")
class MixUp(_PairMix):
    """MixUp (Zhang et al. 2018) with a per-image lam ~ Beta(alpha, alpha).

    Example:
        >>> out = MixUp(alpha=0.8, seed=0)({"images": keras.ops.zeros((4, 8, 8, 3)), "labels": keras.ops.eye(4)})
    """

    uses_labels = True

    def __init__(self, alpha: float = 0.8, num_classes: int | None = None, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.alpha, self.num_classes = float(alpha), num_classes

    def mix_weights(self, F, images, key):
        """(pixel weight of the image itself (B, 1, 1, 1), label weight (B,))."""
        lam = _rng.beta(F, key, 1, (F.shape(images)[0],), self.alpha)
        return F.reshape(lam, (-1, 1, 1, 1)), lam

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="kzoo")
class RandomChoice(BatchAugmentation):
    """Applies one of `layers` to each image, chosen per image with `probabilities`.

    Every candidate runs on the whole batch and a per-image selection keeps one result, so there
    is no data-dependent control flow (the price: the candidates' cost adds up).
    A probability mass below 1 leaves the remaining images unchanged.

    Example:
        >>> RandomChoice([CutMix(), MixUp()], probabilities=[0.5, 0.5], seed=0)
    """

    def __init__(self, layers: Sequence[BatchAugmentation], probabilities: Sequence[float] | None = None,
                 seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.layers = list(layers)
        if probabilities is None:
            probabilities = [1.0 / len(self.layers)] * len(self.layers)
        if len(probabilities) != len(self.layers) or min(probabilities) < 0 or sum(probabilities) > 1 + 1e-6:
            raise KzooError(f"RandomChoice: probabilities={list(probabilities)} must be {len(self.layers)} "
                            "non-negative numbers summing to at most 1")
        self.probabilities = [float(p) for p in probabilities]
        self.uses_labels = any(layer.uses_labels for layer in self.layers)

    def augment(self, F, images, labels, key):
        batch = F.shape(images)[0]
        u = _rng.uniform(F, key, 1, (batch,))
        chosen, low = [], 0.0
        for p in self.probabilities:
            chosen.append(F.cast(F.logical_and(u >= low, u < low + p), "float32"))
            low += p
        keys = [_rng.fold_in(F, key, 100 + i) for i in range(len(self.layers))]
        if all(hasattr(layer, "mix_weights") for layer in self.layers):
            # All candidates mix with a partner: sum their weights per image and blend once.
            labels = _check_labels(F, "RandomChoice", labels, getattr(self.layers[0], "num_classes", None))
            none = 1.0 - sum(chosen)
            weight = F.reshape(none, (-1, 1, 1, 1))
            label_weight = none
            for c, layer, k in zip(chosen, self.layers, keys):
                w, lw = layer.mix_weights(F, images, k)
                weight = weight + F.reshape(c, (-1, 1, 1, 1)) * w
                label_weight = label_weight + c * lw
            partner = _rng.permutation(F, key, 5, batch)
            return _blend_pairs(F, images, labels, partner, weight, label_weight)
        out_images, out_labels = images, labels
        for c, layer, k in zip(chosen, self.layers, keys):
            x, y = layer.augment(F, images, labels, k)
            out_images = select(F, c, x, out_images)
            if y is not None:
                out_labels = y if out_labels is None else select(F, c, y, out_labels)
        return out_images, out_labels

    def get_config(self):
        return {
            **super().get_config(),
            "layers": [keras.saving.serialize_keras_object(layer) for layer in self.layers],
            "probabilities": self.probabilities,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layers"] = [keras.saving.deserialize_keras_object(c) for c in config["layers"]]
        return cls(**config)


@keras.saving.register_keras_serializable(package="kzoo")
class LabelSmoothing(BatchAugmentation):
    """`smooth_labels` as a layer, for pipelines whose loss does not smooth."""

    uses_labels = True

    def __init__(self, smoothing: float = 0.1, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.smoothing = float(smoothing)

    def augment(self, F, images, labels, key):
        return images, (None if labels is None else smooth_labels(labels, self.smoothing, F))

    def get_config(self):
        return {**super().get_config(), "smoothing": self.smoothing}
