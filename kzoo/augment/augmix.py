"""AugMix (Hendrycks et al., ICLR 2020) and its Jensen-Shannon consistency loss.

Per image: `width` chains, each of `depth` ops (default uniform in {1, 2, 3}) drawn uniformly
from `AUGMIX_OPS`; chain weights w ~ Dirichlet(alpha, ..., alpha), a skip weight
m ~ Beta(alpha, alpha), and the output is `m * x + (1 - m) * sum_i w_i * chain_i(x)`.

How it is batched: the `width` chains of the B images are one batch of width * B images, and
each chain step is one `apply_ops_grouped` round over it (every op runs once, on its own
images). A chain shorter than the round keeps its previous image (a per-image select), so a
call costs at most 3 rounds whatever the depths.

Severity: the paper's severity s (default 3, out of 10) is kzoo's RandAugment magnitude scale
(magnitude m <-> level m / 10). As in the reference code (`augmentations.sample_level`), every
op application draws its own level uniformly in [0.1, s] / 10, and a random sign for the
geometric ops. At level l: rotate 30 l degrees, shear 0.3 l, translate l / 3 of the size (the
reference's IMAGE_SIZE / 3), solarize threshold 256 (1 - l), posterize to 4 - floor(4 l) bits
(the reference starts at 4 bits, RandAugment at 8). Geometric ops are bilinear with black fill,
as the reference's PIL calls; its integer truncation of angles and offsets is not reproduced.

Training with the consistency loss: `AugMixJSD` wraps a model so that `fit` makes two AugMix
views of each batch on the device and adds `weight * jensen_shannon(clean, aug1, aug2)` to the
compiled loss on the clean logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from kzoo.augment import _rng
from kzoo.augment._backend import ops_for
from kzoo.augment.base import BatchAugmentation
from kzoo.augment.randaugment import GEOMETRIC_OPS, _check_ops, apply_ops_grouped
from kzoo.errors import KzooError

#: The paper's op set: RandAugment's ops less those that overlap the ImageNet-C / CIFAR-C test
#: corruptions (contrast, color, brightness, sharpness; cutout is not a RandAugment op here).
AUGMIX_OPS = ("autocontrast", "equalize", "posterize", "solarize",
              "rotate", "shear_x", "shear_y", "translate_x", "translate_y")
#: The reference code's `--all-ops` set (enhance factors are kzoo's 1 +- 0.9 l, timm's).
AUGMIX_ALL_OPS = AUGMIX_OPS + ("color", "contrast", "brightness", "sharpness")

# `posterize_bits` 8 together with the level remap in `_slot_levels` gives the reference's
# 4 - floor(4 l) bits; the other entries are RandAugment's at full magnitude.
_RANGES = {"rotate": 30.0, "shear": 0.3, "translate": 1.0 / 3.0, "translate_px": False,
           "enhance": 0.9, "posterize_bits": 8.0, "solarize": 256.0, "solarize_add": 110.0}
_MAX_DEPTH = 3


def mix_chains(images, chains, weights, m, F=None):
    """The AugMix mixture: `m * images + (1 - m) * sum_i weights[:, i] * chains[i]`.

    Args:
        images: (B, H, W, C) float.
        chains: (width, B, H, W, C), the augmented chains.
        weights: (B, width) chain weights (each row sums to 1).
        m: (B,) weight of the original image.

    Example:
        >>> x = keras.ops.zeros((2, 4, 4, 3))
        >>> mix_chains(x, keras.ops.ones((3, 2, 4, 4, 3)), keras.ops.full((2, 3), 1 / 3), keras.ops.array([0.25, 1.0]))
    """
    F = F or ops_for(images)
    w = F.transpose(F.cast(weights, "float32"))[:, :, None, None, None]  # (width, B, 1, 1, 1)
    mixed = F.sum(w * chains, axis=0)
    m = F.reshape(F.cast(m, "float32"), (-1, 1, 1, 1))
    return m * images + (1.0 - m) * mixed


@keras.saving.register_keras_serializable(package="kzoo")
class AugMix(BatchAugmentation):
    """AugMix (Hendrycks et al. 2020) with per-image chains, depths, op levels and weights.

    Args:
        severity: op strength out of 10 (the paper's 3); each op draws its level in [0.1, severity].
        width: chains mixed per image (k, the paper's 3).
        depth: ops per chain; None draws it per chain uniformly from {1, 2, 3} (the paper's default).
        alpha: Dirichlet and Beta parameter (the paper's 1.0).
        ops: op names (default `AUGMIX_OPS`; `AUGMIX_ALL_OPS` adds the four enhance ops).
        interpolation: for the geometric ops ("bilinear", the reference's, or "nearest").
        fill_value: for pixels a geometric op brings in from outside (0, the reference's black).

    Labels pass through unchanged. Output pixels stay in [0, 255].

    Example:
        >>> aug = AugMix(seed=0)
        >>> aug(keras.ops.full((8, 32, 32, 3), 100.0)).shape
        (8, 32, 32, 3)
        >>> ds = map_dataset(ds, AugMix(), seed=0)  # in the tf.data pipeline
    """

    def __init__(self, severity: float = 3.0, width: int = 3, depth: int | None = None, alpha: float = 1.0,
                 ops: Sequence[str] = AUGMIX_OPS, interpolation: str = "bilinear", fill_value: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0.1 <= float(severity) <= 10.0:
            raise KzooError(f"AugMix: severity={severity} must be in [0.1, 10]")
        if int(width) < 1 or (depth is not None and int(depth) < 1) or float(alpha) <= 0.0:
            raise KzooError(f"AugMix: need width >= 1, depth None or >= 1, alpha > 0; got width={width}, "
                            f"depth={depth}, alpha={alpha}")
        self.severity, self.width = float(severity), int(width)
        self.depth = None if depth is None else int(depth)
        self.alpha = float(alpha)
        self.ops = _check_ops(tuple(ops))
        self.interpolation, self.fill_value = interpolation, float(fill_value)
        # apply_ops_grouped runs geometric ops last; ordering them so here makes slot s run
        # `self._order[s // K]`, which `_slot_levels` relies on.
        self._order = tuple(op for op in self.ops if op not in GEOMETRIC_OPS) + tuple(
            op for op in self.ops if op in GEOMETRIC_OPS)

    def mixing_weights(self, F, key, batch):
        """(chain weights (B, width) ~ Dirichlet(alpha), skip weight m (B,) ~ Beta(alpha, alpha))."""
        gammas = _rng.gamma(F, key, 5, (batch, self.width), self.alpha)
        weights = gammas / F.maximum(F.sum(gammas, axis=1, keepdims=True), 1e-12)
        return weights, _rng.beta(F, key, 6, (batch,), self.alpha)

    def chain_depths(self, F, key, count):
        """Ops in each of `count` chains (int32 (count,))."""
        if self.depth is not None:
            return F.full((count,), self.depth, dtype="int32")
        return _rng.randint(F, key, 4, (count,), _MAX_DEPTH) + 1

    def _slot_levels(self, F, key, slots, per_op):
        level = _rng.uniform(F, key, 2, (slots,), 0.1, self.severity) / 10.0
        if "posterize" in self._order:
            is_posterize = F.arange(slots, dtype="int32") // per_op == self._order.index("posterize")
            level = F.where(is_posterize, (4.0 + F.floor(4.0 * level)) / 8.0, level)
        return level

    def chains(self, F, images, key):
        """The `width` augmented chains of every image, (width, B, H, W, C)."""
        _, height, width, channels = images.shape
        count = F.shape(images)[0] * self.width
        # Chain i of image b is row i * B + b.
        x = F.concatenate([images] * self.width, axis=0) if self.width > 1 else images
        depths = F.reshape(self.chain_depths(F, key, count), (-1, 1, 1, 1))
        n = len(self._order)
        per_op = (count + n - 1) // n
        for step in range(self.depth or _MAX_DEPTH):
            k = _rng.fold_in(F, key, step)
            sign = F.where(_rng.bernoulli(F, k, 3, (per_op * n,), 0.5), 1.0, -1.0)
            stepped, _ = apply_ops_grouped(x, k, self._order, self._slot_levels(F, k, per_op * n, per_op), sign,
                                           _RANGES, self.interpolation, self.fill_value, F)
            x = stepped if step == 0 else F.where(depths > step, stepped, x)
        return F.reshape(x, (self.width, -1, height, width, channels))

    def augment(self, F, images, labels, key):
        weights, m = self.mixing_weights(F, key, F.shape(images)[0])
        out = mix_chains(images, self.chains(F, images, key), weights, m, F)
        # A convex mix of [0, 255] images; the clip only removes float round-off.
        return F.clip(out, 0.0, 255.0), labels

    def get_config(self) -> dict:
        return {**super().get_config(), "severity": self.severity, "width": self.width, "depth": self.depth,
                "alpha": self.alpha, "ops": list(self.ops), "interpolation": self.interpolation,
                "fill_value": self.fill_value}


def jensen_shannon(logits_clean, logits_aug1, logits_aug2):
    """The AugMix consistency loss: batch mean of JS(p_clean, p_aug1, p_aug2) from logits.

    With M = (p_clean + p_aug1 + p_aug2) / 3 clipped to [1e-7, 1] (as the reference code does,
    so that log M stays finite), JS = mean_i KL(p_i || M). It is 0 for identical predictions,
    symmetric in its arguments and at most log(3).

    Example:
        >>> jensen_shannon(keras.ops.zeros((2, 10)), keras.ops.zeros((2, 10)), keras.ops.zeros((2, 10)))  # 0.0
    """
    ops = keras.ops
    ps = [ops.softmax(ops.cast(z, "float32"), axis=-1) for z in (logits_clean, logits_aug1, logits_aug2)]
    log_m = ops.log(ops.clip((ps[0] + ps[1] + ps[2]) / 3.0, 1e-7, 1.0))
    # p log p with log_softmax, so a 0 probability adds 0 rather than 0 * -inf.
    log_ps = [ops.log_softmax(ops.cast(z, "float32"), axis=-1) for z in (logits_clean, logits_aug1, logits_aug2)]
    kl = sum(ops.sum(p * (log_p - log_m), axis=-1) for p, log_p in zip(ps, log_ps))
    return ops.mean(kl) / 3.0


@keras.saving.register_keras_serializable(package="kzoo")
class AugMixJSD(keras.Model):
    """Trains `model` with AugMix and the Jensen-Shannon consistency loss inside `fit`.

    Each training step makes two AugMix views of the batch on the device (one `augment` call on
    the batch twice over, so each view has its own per-image draws), runs `model` once on
    [clean, aug1, aug2] (3B images: BatchNorm statistics cover all three, as in the paper) and
    minimises the compiled loss on the clean logits + `weight` * `jensen_shannon` (the paper's
    lambda = 12; sample weights weight only the compiled loss). Compiled metrics see the clean
    logits; the JS term is logged as `jsd` during training (not by `evaluate`).
    `evaluate`, `predict` and `training=False` calls go straight to `model`. The data stay
    `(images, one_hot_labels)`; the augmentation's SeedGenerator is model state, so the JAX
    stateless step carries it. Save `wrapper.model`, not the wrapper.

    Example:
        >>> trainer = AugMixJSD(model, AugMix(seed=0))
        >>> trainer.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        ...                 metrics=["accuracy"])
        >>> trainer.fit(ds)  # ds yields (images, one_hot_labels); do not AugMix in the pipeline too
        >>> trainer.model.save("model.keras")
    """

    def __init__(self, model: keras.Model, augment: BatchAugmentation | None = None, weight: float = 12.0,
                 **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.augment = augment if augment is not None else AugMix()
        self.weight = float(weight)
        self.jsd_tracker = keras.metrics.Mean(name="jsd")

    def call(self, inputs: Any, training: bool | None = None):
        if isinstance(inputs, dict) and "labels" in inputs:
            images = inputs["images"]
            if not training:
                return self.model(images, training=training)
            ops = keras.ops
            images = ops.cast(images, "float32")
            batch = ops.shape(images)[0]
            views = self.augment(ops.concatenate([images, images], axis=0), training=True)
            logits = self.model(ops.concatenate([images, views], axis=0), training=training)
            return {"logits": logits[:batch], "aug1": logits[batch:2 * batch], "aug2": logits[2 * batch:]}
        return self.model(inputs, training=training)

    def train_step(self, *args):
        # TF: train_step(data); JAX: train_step(state, data). Only the data is rewritten.
        *state, data = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return super().train_step(*state, ({"images": x, "labels": y}, y, sample_weight))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if not isinstance(y_pred, dict):
            return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred["logits"], sample_weight=sample_weight,
                                    training=training)
        return loss + self.weight * jensen_shannon(y_pred["logits"], y_pred["aug1"], y_pred["aug2"])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            # Recomputed rather than passed from compute_loss: under JAX the two run in different
            # stateless scopes, and the term is cheap next to the forward pass.
            self.jsd_tracker.update_state(jensen_shannon(y_pred["logits"], y_pred["aug1"], y_pred["aug2"]))
            return super().compute_metrics(x, y, y_pred["logits"], sample_weight)
        # Evaluation makes no augmented views: leave `jsd` out rather than log a 0.
        logs = dict(super().compute_metrics(x, y, y_pred, sample_weight))
        logs.pop("jsd", None)
        return logs

    def get_config(self):
        return {**super().get_config(), "model": keras.saving.serialize_keras_object(self.model),
                "augment": keras.saving.serialize_keras_object(self.augment), "weight": self.weight}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        config["augment"] = keras.saving.deserialize_keras_object(config["augment"])
        return cls(**config)


__all__ = ["AUGMIX_ALL_OPS", "AUGMIX_OPS", "AugMix", "AugMixJSD", "jensen_shannon", "mix_chains"]
