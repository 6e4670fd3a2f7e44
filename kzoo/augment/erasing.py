"""Random erasing (Zhong et al. 2020): a random box per image replaced by a value or noise."""

from __future__ import annotations

import math
from typing import Sequence

import keras

from kzoo.augment import _rng
from kzoo.augment._backend import ops_for
from kzoo.augment.base import BatchAugmentation
from kzoo.errors import KzooError


def erase(images, boxes, value, F=None):
    """Sets each image's box ((B, 4) int: y0, x0, y1, x1, end exclusive) to `value`.

    `value` is a number or a tensor broadcastable to the images (e.g. noise of their shape).
    An empty box (y1 <= y0) leaves the image unchanged.
    """
    F = F or ops_for(images)
    _, height, width, _ = images.shape
    boxes = F.cast(boxes, "int32")
    rows = F.arange(height, dtype="int32")[None, :]
    cols = F.arange(width, dtype="int32")[None, :]
    in_rows = F.logical_and(rows >= boxes[:, 0:1], rows < boxes[:, 2:3])
    in_cols = F.logical_and(cols >= boxes[:, 1:2], cols < boxes[:, 3:4])
    mask = F.logical_and(in_rows[:, :, None, None], in_cols[:, None, :, None])
    return F.where(mask, F.cast(value, images.dtype), images)


@keras.saving.register_keras_serializable(package="kzoo")
class RandomErasing(BatchAugmentation):
    """With probability `p` per image, erases a box of area fraction in `scale` and aspect ratio
    in `ratio` (10 tries drawn at once, the first that fits wins, none fitting: no erasing).

    `value`: a number (torchvision's default 0), or "random" for uniform noise in [0, 255]
    (timm's per-pixel mode, in pixel units).

    Example:
        >>> RandomErasing(p=1.0, seed=0)(keras.ops.full((2, 32, 32, 3), 255.0)).shape
        (2, 32, 32, 3)
    """

    def __init__(self, p: float = 0.5, scale: Sequence[float] = (0.02, 0.33),
                 ratio: Sequence[float] = (0.3, 3.3), value: float | str = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if isinstance(value, str) and value != "random":
            raise KzooError(f"RandomErasing: value={value!r}; expected a number or 'random'")
        self.p = float(p)
        self.scale, self.ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)
        self.value = value if isinstance(value, str) else float(value)

    def augment(self, F, images, labels, key):
        _, height, width, _ = images.shape
        batch = F.shape(images)[0]
        tries = 10
        area = height * width * _rng.uniform(F, key, 1, (batch, tries), *self.scale)
        aspect = F.exp(_rng.uniform(F, key, 2, (batch, tries), math.log(self.ratio[0]), math.log(self.ratio[1])))
        h = F.round(F.sqrt(area * aspect))
        w = F.round(F.sqrt(area / aspect))
        fits = F.logical_and(F.logical_and(h < height, w < width), F.logical_and(h >= 1, w >= 1))
        pick = F.one_hot(F.argmax(F.cast(fits, "int32"), axis=1), tries, dtype="float32")
        h = F.sum(h * pick, axis=1)
        w = F.sum(w * pick, axis=1)
        y0 = F.floor(_rng.uniform(F, key, 3, (batch,)) * (height - h + 1))
        x0 = F.floor(_rng.uniform(F, key, 4, (batch,)) * (width - w + 1))
        apply = F.logical_and(F.any(fits, axis=1), _rng.bernoulli(F, key, 5, (batch,), self.p))
        h = F.where(apply, h, 0.0)
        boxes = F.stack([y0, x0, y0 + h, x0 + w], axis=1)
        if self.value == "random":
            value = _rng.uniform(F, key, 6, (batch, height, width, images.shape[-1]), 0.0, 255.0)
        else:
            value = self.value
        return erase(images, boxes, value, F), labels

    def get_config(self):
        return {**super().get_config(), "p": self.p, "scale": self.scale, "ratio": self.ratio, "value": self.value}
