"""RandAugment and TrivialAugment on whole batches: every image draws its own ops and magnitudes.

How each image gets its own op without branching or a per-image loop: per round, the ops get
equal groups of K = ceil(B / n_ops) slots, and a random permutation places the B images in B of
the n_ops * K slots. Each image's op is therefore uniform over the ops, as in RandAugment, and
each op's group is a static slice, so each op runs once, batched, on only its own images (one
affine resampling covers all geometric groups). The cost per round is about one op per image
plus two whole-image gathers, against every op on every image for compute-all-then-select
(benchmarks/augment.py measures both). The only departure from independent draws: two images in
a batch draw their ops without replacement from the slots, a slight negative correlation.

Magnitudes follow timm's RandAugment (`rand-m9-n2`, levels out of 10, "increasing" variants so
magnitude 0 is the identity for every op that has one): rotate 30 deg, shear 0.3, translate 45%
of the size, enhance factors 1 +- 0.9, posterize 8 -> 4 bits, solarize threshold 256 -> 0.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras

from kzoo.augment import _rng
from kzoo.augment._backend import ops_for
from kzoo.augment.base import BatchAugmentation
from kzoo.augment.color import (
    adjust_brightness,
    adjust_contrast,
    adjust_saturation,
    adjust_sharpness,
    autocontrast,
    equalize,
    invert,
    posterize,
    solarize,
    solarize_add,
)
from kzoo.augment.geometric import affine_transform, warp_affine
from kzoo.errors import KzooError

#: The 14 ops of the RandAugment paper (Cubuk et al. 2020), torchvision's list.
RANDAUGMENT_OPS = (
    "identity", "autocontrast", "equalize", "rotate", "solarize", "color", "posterize",
    "contrast", "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y",
)
#: Ops also available (timm's default RandAugment adds these two).
EXTRA_OPS = ("invert", "solarize_add")
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
LUT_OPS = ("autocontrast", "equalize", "invert", "posterize", "solarize", "solarize_add")
BLEND_OPS = ("brightness", "color", "contrast", "sharpness")

#: Parameter at full magnitude. translate: fraction of the size, or pixels when translate_px.
RANGES = {
    "standard": {"rotate": 30.0, "shear": 0.3, "translate": 0.45, "translate_px": False,
                 "enhance": 0.9, "posterize_bits": 4.0, "solarize": 256.0, "solarize_add": 110.0},
    # TrivialAugmentWide (torchvision): wider ranges, translation in pixels.
    "wide": {"rotate": 135.0, "shear": 0.99, "translate": 32.0, "translate_px": True,
             "enhance": 0.99, "posterize_bits": 6.0, "solarize": 256.0, "solarize_add": 110.0},
}


def _check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    unknown = [op for op in ops if op not in RANDAUGMENT_OPS + EXTRA_OPS]
    if unknown or not ops:
        raise KzooError(f"RandAugment: unknown ops {unknown or '(none given)'}; valid: "
                        f"{', '.join(RANDAUGMENT_OPS + EXTRA_OPS)}")
    return tuple(ops)


def _geometric_transform(F, op_per_image: Sequence[str] | str, level, sign, height: int, width: int,
                         ranges: dict):
    """Affine transforms for images whose ops (static, one name per image or one for all) are geometric."""
    signed = level * sign
    zero = F.zeros_like(level)

    def amount(name, scale):
        if isinstance(op_per_image, str):
            return signed * scale if op_per_image == name else zero
        mask = F.convert_to_tensor([1.0 if op == name else 0.0 for op in op_per_image], dtype="float32")
        return signed * scale * mask

    t_scale = (1.0, 1.0) if ranges["translate_px"] else (float(height), float(width))
    return affine_transform(
        height,
        width,
        degrees=amount("rotate", ranges["rotate"]),
        translate=F.stack([amount("translate_y", ranges["translate"] * t_scale[0]),
                           amount("translate_x", ranges["translate"] * t_scale[1])], axis=1),
        shear=F.stack([amount("shear_y", ranges["shear"]), amount("shear_x", ranges["shear"])], axis=1),
        F=F,
    )


def apply_op(
    images,
    op: str,
    level,
    sign=None,
    ranges: str | dict = "standard",
    interpolation: str = "nearest",
    fill_value: float = 128.0,
    F=None,
):
    """Applies RandAugment op `op` to every image, image b at `level[b]` in [0, 1] (magnitude / 10).

    `sign` ((B,), +1 or -1; default +1) negates the signed ops (rotation, shear, translation,
    enhance factors). Images are float in [0, 255]; pixel-value ops see 8-bit (rounded) values.

    Example (rotate by 30 and 15 degrees counter-clockwise):
        >>> apply_op(x, "rotate", keras.ops.array([1.0, 0.5]))
    """
    F = F or ops_for(images)
    _check_ops([op])
    r = RANGES[ranges] if isinstance(ranges, str) else ranges
    _, height, width, _ = images.shape
    level = F.clip(F.cast(level, "float32"), 0.0, 1.0)
    sign = F.ones_like(level) if sign is None else F.cast(sign, "float32")
    if op == "identity":
        return images
    if op in GEOMETRIC_OPS:
        transform = _geometric_transform(F, op, level, sign, height, width, r)
        return warp_affine(images, transform, interpolation=interpolation, fill_mode="constant",
                           fill_value=fill_value, F=F)
    if op == "autocontrast":
        return autocontrast(images, F)
    if op == "equalize":
        return equalize(images, F)
    if op == "invert":
        return invert(images, F)
    if op == "posterize":
        return posterize(images, 8.0 - F.round(level * r["posterize_bits"]), F)
    if op == "solarize":
        return solarize(images, r["solarize"] * (1.0 - level), F)
    if op == "solarize_add":
        return solarize_add(images, F.round(level * r["solarize_add"]), 128.0, F)
    factor = 1.0 + level * sign * r["enhance"]
    enhance = {"brightness": adjust_brightness, "color": adjust_saturation,
               "contrast": adjust_contrast, "sharpness": adjust_sharpness}
    return enhance[op](images, factor, F)


def assign_slots(F, key, batch, n_ops: int):
    """Places `batch` images in n_ops groups of K = ceil(batch / n_ops) slots at random.

    Returns K, each slot's position `slot_of_image` (a permutation of n_ops * K whose first
    `batch` entries belong to the images) and each slot's image (0 for empty slots).
    """
    per_op = (batch + n_ops - 1) // n_ops
    slot_of_image = _rng.permutation(F, key, 1, n_ops * per_op)
    # The inverse permutation; slots holding no image (index >= batch) reuse image 0.
    image_of_slot = F.cast(F.argsort(slot_of_image), "int32")
    image_of_slot = F.where(image_of_slot < batch, image_of_slot, 0)
    return per_op, slot_of_image, image_of_slot


def apply_ops_grouped(
    images,
    key,
    ops: Sequence[str],
    level,
    sign,
    ranges: str | dict = "standard",
    interpolation: str = "nearest",
    fill_value: float = 128.0,
    F=None,
):
    """One RandAugment round: each image gets a uniformly drawn op (see the module docstring).

    `level` and `sign` are per slot ((n_ops * K,) with K = ceil(B / n_ops)): slot s runs op
    `ops[s // K]`. Returns the images and each image's op index (B,).
    """
    F = F or ops_for(images)
    r = RANGES[ranges] if isinstance(ranges, str) else ranges
    _, height, width, _ = images.shape
    batch = F.shape(images)[0]
    n = len(ops)
    # Geometric ops last, so their groups form one slice resampled in one go.
    order = [op for op in ops if op not in GEOMETRIC_OPS] + [op for op in ops if op in GEOMETRIC_OPS]
    per_op, slot_of_image, image_of_slot = assign_slots(F, key, batch, n)
    grouped = F.take(images, image_of_slot, axis=0)
    outputs = []
    n_geo = sum(op in GEOMETRIC_OPS for op in order)
    for k, op in enumerate(order[: n - n_geo]):
        part = slice(k * per_op, (k + 1) * per_op)
        outputs.append(apply_op(grouped[part], op, level[part], sign[part], r, interpolation, fill_value, F))
    if n_geo:
        start = (n - n_geo) * per_op
        geo_ops = [op for op in order[n - n_geo:] for _ in range(per_op)] if isinstance(per_op, int) else None
        if geo_ops is None:
            # Dynamic batch (TF graph): mark slots by op with a comparison instead of a static list.
            transform = _dynamic_geometric_transform(F, order[n - n_geo:], per_op, level[start:], sign[start:],
                                                     height, width, r)
        else:
            transform = _geometric_transform(F, geo_ops, level[start:], sign[start:], height, width, r)
        outputs.append(warp_affine(grouped[start:], transform, interpolation=interpolation,
                                   fill_mode="constant", fill_value=fill_value, F=F))
    result = F.concatenate(outputs, axis=0) if len(outputs) > 1 else outputs[0]
    image_slot = slot_of_image[:batch]
    op_index = image_slot // per_op
    order_index = F.convert_to_tensor([ops.index(op) for op in order], dtype="int32")
    return F.take(result, image_slot, axis=0), F.take(order_index, op_index)


def _dynamic_geometric_transform(F, geo_order, per_op, level, sign, height, width, r):
    group = F.arange(F.shape(level)[0], dtype="int32") // per_op
    signed = level * sign
    t_scale = (1.0, 1.0) if r["translate_px"] else (float(height), float(width))
    scale = {"rotate": r["rotate"], "shear_x": r["shear"], "shear_y": r["shear"],
             "translate_x": r["translate"] * t_scale[1], "translate_y": r["translate"] * t_scale[0]}
    amounts = {name: F.zeros_like(level) for name in scale}
    for g, name in enumerate(geo_order):
        amounts[name] = signed * scale[name] * F.cast(group == g, "float32")
    return affine_transform(
        height, width, degrees=amounts["rotate"],
        translate=F.stack([amounts["translate_y"], amounts["translate_x"]], axis=1),
        shear=F.stack([amounts["shear_y"], amounts["shear_x"]], axis=1), F=F,
    )


@keras.saving.register_keras_serializable(package="kzoo")
class RandAugment(BatchAugmentation):
    """RandAugment (Cubuk et al. 2020) with per-image op choices and magnitudes.

    Args:
        num_ops: ops per image (n).
        magnitude: m on a 0..`magnitude_max` scale (timm's `rand-m9-n2` is m=9, n=2).
        magnitude_std: > 0 draws each magnitude from N(m, std) (timm's `mstd`); `inf` draws it
            uniformly from [0, m]. Clipped to [0, magnitude_max].
        ops: op names (default the paper's 14; `EXTRA_OPS` adds invert and solarize_add).
        interpolation: "nearest" (torchvision's default) or "bilinear".
        fill_value: for pixels a geometric op brings in from outside.

    Example:
        >>> aug = RandAugment(num_ops=2, magnitude=9, seed=0)
        >>> aug(keras.ops.full((8, 32, 32, 3), 100.0)).shape
        (8, 32, 32, 3)
    """

    ranges = "standard"

    def __init__(self, num_ops: int = 2, magnitude: float = 9.0, magnitude_std: float = 0.0,
                 magnitude_max: float = 10.0, ops: Sequence[str] = RANDAUGMENT_OPS,
                 interpolation: str = "nearest", fill_value: float = 128.0, seed: int | None = None,
                 **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.num_ops, self.magnitude = int(num_ops), float(magnitude)
        self.magnitude_std, self.magnitude_max = float(magnitude_std), float(magnitude_max)
        self.ops = tuple(ops)
        self.interpolation, self.fill_value = interpolation, float(fill_value)
        _check_ops(self.ops)

    def _levels(self, F, key, batch):
        if self.magnitude_std == 0.0:
            m = F.full((batch,), self.magnitude, dtype="float32")
        elif math.isinf(self.magnitude_std):
            m = _rng.uniform(F, key, 2, (batch,), 0.0, self.magnitude)
        else:
            m = self.magnitude + self.magnitude_std * _rng.normal(F, key, 2, (batch,))
        return F.clip(m, 0.0, self.magnitude_max) / self.magnitude_max

    def augment(self, F, images, labels, key):
        batch = F.shape(images)[0]
        n = len(self.ops)
        slots = ((batch + n - 1) // n) * n
        x = images
        for i in range(self.num_ops):
            k = _rng.fold_in(F, key, i)
            sign = F.where(_rng.bernoulli(F, k, 3, (slots,), 0.5), 1.0, -1.0)
            x, _ = apply_ops_grouped(x, k, self.ops, self._levels(F, k, slots), sign, self.ranges,
                                     self.interpolation, self.fill_value, F)
        return x, labels

    def get_config(self):
        return {**super().get_config(), "num_ops": self.num_ops, "magnitude": self.magnitude,
                "magnitude_std": self.magnitude_std, "magnitude_max": self.magnitude_max,
                "ops": list(self.ops), "interpolation": self.interpolation, "fill_value": self.fill_value}


@keras.saving.register_keras_serializable(package="kzoo")
class TrivialAugment(RandAugment):
    """TrivialAugment (Mueller & Hutter 2021, torchvision's TrivialAugmentWide): one op per image
    at a magnitude drawn uniformly from 31 levels, over the wide ranges.

    Example:
        >>> TrivialAugment(seed=0)(keras.ops.full((8, 32, 32, 3), 100.0)).shape
        (8, 32, 32, 3)
    """

    ranges = "wide"

    def __init__(self, num_bins: int = 31, ops: Sequence[str] = RANDAUGMENT_OPS,
                 interpolation: str = "nearest", fill_value: float = 128.0, seed: int | None = None, **kwargs):
        kwargs.pop("num_ops", None), kwargs.pop("magnitude", None)
        kwargs.pop("magnitude_std", None), kwargs.pop("magnitude_max", None)
        super().__init__(num_ops=1, magnitude=10.0, ops=ops, interpolation=interpolation,
                         fill_value=fill_value, seed=seed, **kwargs)
        self.num_bins = int(num_bins)

    def _levels(self, F, key, batch):
        return F.cast(_rng.randint(F, key, 2, (batch,), self.num_bins), "float32") / (self.num_bins - 1)

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}
