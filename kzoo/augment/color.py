"""Colour augmentations on whole batches, with per-image parameters.

Two kinds, as in PIL (which the reference RandAugment implementations call). Pixel-value maps
(autocontrast, equalize, invert, posterize, solarize, solarize-add) see 8-bit values (inputs are
rounded) and give 8-bit values; all but equalize are arithmetic, equalize builds a per-image,
per-channel 256-entry table from batched histograms (one segment sum) and applies it with one
gather. Blends (brightness, contrast, colour, sharpness) mix each image with a "degenerate"
image, PIL ImageEnhance style: out = clip(d + f * (x - d)), in float (no rounding).
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np

from kzoo.augment import _rng
from kzoo.augment._backend import ops_for
from kzoo.augment.base import BatchAugmentation

GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, PIL's "L" conversion.


# ----------------------------------------------------------------------------- lookup tables
def quantize(images, F=None):
    """Pixel values as int32 in [0, 255] (rounded), the index into a lookup table."""
    F = F or ops_for(images)
    return F.cast(F.round(F.clip(images, 0.0, 255.0)), "int32")


def apply_lut(images, lut, F=None, levels=None):
    """Maps each pixel through its image's and channel's table: `lut` broadcasts to (B, C, 256).

    `levels` (the `quantize`d images) may be passed when already computed.
    """
    F = F or ops_for(images)
    channels = images.shape[-1]
    levels = quantize(images, F) if levels is None else levels
    batch = F.shape(images)[0]
    lut = F.broadcast_to(F.cast(lut, "float32"), (batch, channels, 256))
    table_offset = (F.arange(batch, dtype="int32")[:, None] * channels + F.arange(channels, dtype="int32")[None, :]) * 256
    index = levels + table_offset[:, None, None, :]
    return F.reshape(F.take(F.reshape(lut, (-1,)), F.reshape(index, (-1,))), F.shape(images))


def _levels(F):
    return F.arange(256, dtype="float32")[None, None, :]


def _per_image(F, value):
    return F.reshape(F.cast(value, "float32"), (-1, 1, 1, 1))


def histograms(F, levels):
    """Per image and channel histograms of `levels` (int32 (B, H, W, C)): (B, C, 256) float32."""
    _, height, width, channels = levels.shape
    batch = levels.shape[0] if levels.shape[0] is not None else F.shape(levels)[0]
    table_offset = (F.arange(batch, dtype="int32")[:, None] * channels + F.arange(channels, dtype="int32")[None, :]) * 256
    ids = F.reshape(levels + table_offset[:, None, None, :], (-1,))
    ones = F.ones(F.shape(ids), dtype="float32")
    counts = F.segment_sum(ones, ids, num_segments=batch * channels * 256)
    return F.reshape(counts, (-1, channels, 256))


def equalize_lut(F, levels):
    """PIL's `ImageOps.equalize` per channel: cumulative histogram, steps of (N - last bin) // 255."""
    hist = histograms(F, levels)
    total = float(levels.shape[1] * levels.shape[2])
    top = F.cast(F.max(levels, axis=(1, 2)), "int32")  # (B, C): the highest level present
    last_count = F.sum(hist * F.one_hot(top, 256, dtype="float32"), axis=-1, keepdims=True)
    step = F.floor((total - last_count) / 255.0)
    cum_before = F.cumsum(hist, axis=-1) - hist
    lut = F.floor((F.floor(step / 2.0) + cum_before) / F.maximum(step, 1.0))
    lut = F.clip(lut, 0.0, 255.0)
    return F.where(step > 0.0, lut, F.broadcast_to(_levels(F), F.shape(lut)))


def _as_levels(F, images):
    return F.round(F.clip(images, 0.0, 255.0))


def invert(images, F=None):
    """255 - x (on 8-bit values)."""
    F = F or ops_for(images)
    return 255.0 - _as_levels(F, images)


def posterize(images, bits, F=None):
    """Keeps `bits` ((B,), 0..8) most significant bits of each 8-bit value.

    Example:
        >>> posterize(keras.ops.full((1, 1, 1, 3), 200.0), keras.ops.array([2]))  # 200 -> 192
    """
    F = F or ops_for(images)
    step = F.power(2.0, 8.0 - _per_image(F, F.round(bits)))
    return F.floor(_as_levels(F, images) / step) * step


def solarize(images, threshold, F=None):
    """Inverts 8-bit values >= `threshold` ((B,); 256 leaves the image unchanged).

    Example:
        >>> solarize(keras.ops.array([[[[10.0, 200.0, 128.0]]]]), keras.ops.array([128.0]))  # [10, 55, 127]
    """
    F = F or ops_for(images)
    x = _as_levels(F, images)
    above = F.cast(x >= _per_image(F, threshold), "float32")
    return x + above * (255.0 - 2.0 * x)


def solarize_add(images, addition, threshold=128.0, F=None):
    """Adds `addition` ((B,)) to 8-bit values below `threshold`, clipped at 255."""
    F = F or ops_for(images)
    x = _as_levels(F, images)
    below = F.cast(x < _per_image(F, threshold), "float32")
    return F.minimum(x + below * F.round(_per_image(F, addition)), 255.0)


def autocontrast(images, F=None):
    """Per image and channel, maps [min, max] to [0, 255] (PIL `autocontrast(cutoff=0)`);
    a flat channel is left as is."""
    F = F or ops_for(images)
    x = _as_levels(F, images)
    lo = F.min(x, axis=(1, 2), keepdims=True)
    hi = F.max(x, axis=(1, 2), keepdims=True)
    flat = F.cast(hi <= lo, "float32")
    scale = 255.0 / F.maximum(hi - lo, 1.0) * (1.0 - flat) + flat
    offset = lo * (1.0 - flat)
    return F.clip(F.round((x - offset) * scale), 0.0, 255.0)


def equalize(images, F=None):
    """Histogram equalisation per image and channel, as PIL `ImageOps.equalize`."""
    F = F or ops_for(images)
    levels = quantize(images, F)
    return apply_lut(images, equalize_lut(F, levels), F, levels)


# ----------------------------------------------------------------------------- blends
def grayscale(images, F=None):
    """Luma (B, H, W, 1) with PIL's weights."""
    F = F or ops_for(images)
    r, g, b = images[..., 0:1], images[..., 1:2], images[..., 2:3]
    return GRAY_WEIGHTS[0] * r + GRAY_WEIGHTS[1] * g + GRAY_WEIGHTS[2] * b


def smooth(images, F=None):
    """PIL's SMOOTH filter ([[1,1,1],[1,5,1],[1,1,1]] / 13) inside, border pixels unchanged."""
    F = F or ops_for(images)
    _, height, width, _ = images.shape
    total = 4.0 * images[:, 1:-1, 1:-1, :]
    for dy in range(3):
        for dx in range(3):
            total = total + images[:, dy:dy + height - 2, dx:dx + width - 2, :]
    inner = total / 13.0 - images[:, 1:-1, 1:-1, :]
    return images + F.pad(inner, [[0, 0], [1, 1], [1, 1], [0, 0]])


def blend(images, degenerate, factor, F=None):
    """clip(d + f * (x - d), 0, 255) with a per-image factor `f` ((B,))."""
    F = F or ops_for(images)
    f = F.reshape(F.cast(factor, "float32"), (-1, 1, 1, 1))
    return F.clip(degenerate + f * (images - degenerate), 0.0, 255.0)


def adjust_brightness(images, factor, F=None):
    """Blend with black: 0 -> black, 1 -> unchanged."""
    F = F or ops_for(images)
    return blend(images, F.zeros_like(images[:, :1, :1, :1]), factor, F)


def adjust_contrast(images, factor, F=None):
    """Blend with the image's mean luma: 0 -> flat grey, 1 -> unchanged."""
    F = F or ops_for(images)
    return blend(images, F.mean(grayscale(images, F), axis=(1, 2, 3), keepdims=True), factor, F)


def adjust_saturation(images, factor, F=None):
    """Blend with the luma image (PIL's ImageEnhance.Color): 0 -> grey, 1 -> unchanged."""
    F = F or ops_for(images)
    return blend(images, grayscale(images, F), factor, F)


def adjust_sharpness(images, factor, F=None):
    """Blend with the smoothed image: 0 -> smoothed, 1 -> unchanged, 2 -> sharpened."""
    F = F or ops_for(images)
    return blend(images, smooth(images, F), factor, F)


_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def adjust_hue(images, shift, F=None):
    """Rotates hue by `shift` ((B,), fraction of a turn) in YIQ space, which keeps luma.

    A fast linear stand-in for HSV's hue shift (torchvision's), close for moderate saturation:
    one 3x3 colour matrix per image, applied as a batched matmul.
    """
    F = F or ops_for(images)
    theta = F.cast(shift, "float32") * (2.0 * math.pi)
    cos, sin = F.cos(theta), F.sin(theta)
    one, zero = F.ones_like(cos), F.zeros_like(cos)
    rotation = F.reshape(F.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], axis=1), (-1, 3, 3))
    to_yiq = F.convert_to_tensor(_RGB_TO_YIQ.astype("float32"))
    to_rgb = F.convert_to_tensor(_YIQ_TO_RGB.astype("float32"))
    matrix = F.matmul(F.matmul(to_rgb[None], rotation), to_yiq[None])  # (B, 3, 3)
    _, height, width, channels = images.shape
    flat = F.reshape(images, (-1, height * width, channels))
    out = F.matmul(flat, F.transpose(matrix, (0, 2, 1)))
    return F.clip(F.reshape(out, (-1, height, width, channels)), 0.0, 255.0)


@keras.saving.register_keras_serializable(package="kzoo")
class ColorJitter(BatchAugmentation):
    """torchvision-style colour jitter with per-image factors, applied in a fixed order
    (brightness, contrast, saturation, hue). Factors are drawn from [max(0, 1 - v), 1 + v];
    hue shift from [-hue, hue] (a fraction of a turn, at most 0.5).

    Example:
        >>> ColorJitter(0.4, 0.4, 0.4, 0.1, seed=0)(keras.ops.zeros((2, 8, 8, 3))).shape
        (2, 8, 8, 3)
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, p: float = 1.0, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.brightness, self.contrast, self.saturation = float(brightness), float(contrast), float(saturation)
        self.hue, self.p = float(hue), float(p)

    def augment(self, F, images, labels, key):
        batch = F.shape(images)[0]
        apply = F.cast(_rng.bernoulli(F, key, 9, (batch,), self.p), "float32")

        def factor(stream, v):
            f = _rng.uniform(F, key, stream, (batch,), max(0.0, 1.0 - v), 1.0 + v)
            return 1.0 + apply * (f - 1.0)

        x = images
        if self.brightness:
            x = adjust_brightness(x, factor(1, self.brightness), F)
        if self.contrast:
            x = adjust_contrast(x, factor(2, self.contrast), F)
        if self.saturation:
            x = adjust_saturation(x, factor(3, self.saturation), F)
        if self.hue:
            x = adjust_hue(x, apply * _rng.uniform(F, key, 4, (batch,), -self.hue, self.hue), F)
        return x, labels

    def get_config(self):
        return {**super().get_config(), "brightness": self.brightness, "contrast": self.contrast,
                "saturation": self.saturation, "hue": self.hue, "p": self.p}


__all__: Sequence[str] = (
    "ColorJitter", "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation",
    "adjust_sharpness", "apply_lut", "autocontrast", "blend", "equalize", "grayscale", "invert",
    "posterize", "quantize", "smooth", "solarize", "solarize_add",
)
