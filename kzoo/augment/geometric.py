"""Geometric augmentations on whole batches: flip, pad-and-crop, random resized crop, affine.

All resampling is one batched gather over the flattened batch (no per-image loop, no
`map_fn`): the functions below take per-image parameters, the layers draw them.
Coordinates are pixel indices (pixel centres at integers, image centre at (W-1)/2); an affine
`transform` is Keras' 8-vector [a0, a1, a2, b0, b1, b2, c0, c1] mapping an *output* pixel (x, y)
to the *input* point (a0 x + a1 y + a2, b0 x + b1 y + b2) (c0, c1 must be 0).
"""

from __future__ import annotations

import math
from typing import Sequence

import keras

from kzoo.augment import _rng
from kzoo.augment._backend import ops_for
from kzoo.augment.base import BatchAugmentation
from kzoo.errors import KzooError

FILL_MODES = ("constant", "reflect", "nearest")


# ----------------------------------------------------------------------------- functions
def select(F, flags, if_true, if_false):
    """Per-image choice between two batches. Arithmetic rather than `where`: TF's broadcasting
    select is several times slower on CPU; with weights exactly 0 and 1 the result is exact."""
    w = F.reshape(F.cast(flags, if_true.dtype), (-1,) + (1,) * (len(if_true.shape) - 1))
    return if_true * w + if_false * (1.0 - w)


def flip_left_right(images, flags, F=None):
    """Mirrors the images whose `flags` (bool, (B,)) are True.

    Example:
        >>> flip_left_right(keras.ops.arange(4.0).reshape(1, 1, 4, 1), keras.ops.array([True]))[0, 0, :, 0]
        [3., 2., 1., 0.]
    """
    F = F or ops_for(images)
    return select(F, flags, F.flip(images, axis=2), images)


def flip_up_down(images, flags, F=None):
    """Turns upside down the images whose `flags` (bool, (B,)) are True."""
    F = F or ops_for(images)
    return select(F, flags, F.flip(images, axis=1), images)


def _with_fill_row(F, images, fill_value: float):
    """The batch flattened to pixel rows, plus one row of `fill_value` at index B * H * W:
    out-of-range pixels gather that row, so no padded copy of the batch and no per-pixel select."""
    channels = images.shape[-1]
    flat = F.reshape(images, (-1, channels))
    fill = F.full((1, channels), fill_value, dtype=images.dtype)
    return F.concatenate([flat, fill], axis=0), F.cast(F.shape(flat)[0], "float32")


def crop(images, offsets, size: tuple[int, int], flip=None, fill_value: float | None = None, F=None):
    """Per-image integer crops: image b's window starts at `offsets[b] = (y, x)` (int, (B, 2)),
    mirrored left-right where `flip` ((B,) bool, optional) is True, all in one gather.

    With `fill_value`, windows may reach outside the image (negative offsets too) and those
    pixels take the value; without it, windows must lie inside.
    """
    F = F or ops_for(images)
    _, height, width, channels = images.shape
    batch = F.shape(images)[0]
    out_h, out_w = size
    offsets = F.cast(offsets, "int32")
    base = F.arange(batch, dtype="int32") * (height * width)
    rows = offsets[:, 0:1] + F.arange(out_h, dtype="int32")[None, :]
    cols = F.arange(out_w, dtype="int32")[None, :]
    if flip is not None:
        flip = F.cast(F.reshape(flip, (-1, 1)), "int32")
        cols = cols + flip * (out_w - 1 - 2 * cols)
    cols = offsets[:, 1:2] + cols
    index = base[:, None, None] + rows[:, :, None] * width + cols[:, None, :]
    if fill_value is None:
        flat = F.reshape(images, (-1, channels))
    else:
        flat, fill_index = _with_fill_row(F, images, fill_value)
        inside_rows = F.logical_and(rows >= 0, rows < height)
        inside_cols = F.logical_and(cols >= 0, cols < width)
        inside = F.logical_and(inside_rows[:, :, None], inside_cols[:, None, :])
        index = F.where(inside, index, F.cast(fill_index, "int32"))
    values = F.take(flat, F.reshape(index, (-1,)), axis=0)
    return F.reshape(values, (-1, out_h, out_w, channels))


def _reflect(F, coord, size: int):
    # (d c b a | a b c d | d c b a): period 2*size, mirrored in the second half.
    period = 2 * size
    coord = coord - F.floor(coord / period) * period
    return F.minimum(coord, period - 1 - coord)


def warp_affine(
    images,
    transform,
    output_size: tuple[int, int] | None = None,
    interpolation: str = "bilinear",
    fill_mode: str = "constant",
    fill_value: float = 0.0,
    F=None,
):
    """Resamples each image through its own affine `transform` ((B, 8), see module docstring).

    One gather per interpolation corner over the flattened batch. With fill_mode "constant",
    corners outside the image read an extra row holding `fill_value` (so bilinear blends edge
    pixels with the fill, as TF's ImageProjectiveTransform does); "reflect" mirrors indices,
    "nearest" clamps them.

    Example (rotate 90 degrees counter-clockwise, the same as `np.rot90`):
        >>> t = rotation_transform(keras.ops.array([90.0]), 4, 4)
        >>> warp_affine(keras.ops.arange(16.0).reshape(1, 4, 4, 1), t)[0, :, :, 0]  # == np.rot90
    """
    F = F or ops_for(images)
    if fill_mode not in FILL_MODES:
        raise KzooError(f"warp_affine: fill_mode={fill_mode!r}; expected one of {FILL_MODES}")
    if interpolation not in ("bilinear", "nearest"):
        raise KzooError(f"warp_affine: interpolation={interpolation!r}; expected bilinear or nearest")
    _, height, width, channels = images.shape
    out_h, out_w = output_size or (height, width)
    transform = F.cast(transform, "float32")
    ys = F.arange(out_h, dtype="float32")[None, :, None]
    xs = F.arange(out_w, dtype="float32")[None, None, :]
    t = [F.reshape(transform[:, k], (-1, 1, 1)) for k in range(6)]
    src_x = t[0] * xs + t[1] * ys + t[2]
    src_y = t[3] * xs + t[4] * ys + t[5]
    if fill_mode == "constant":
        flat, fill_index = _with_fill_row(F, images, fill_value)
    else:
        flat = F.reshape(images, (-1, channels))
    base = F.reshape(F.arange(F.shape(images)[0], dtype="float32") * float(height * width), (-1, 1, 1))

    def index(iy, ix):
        # Float index arithmetic is exact below 2**24 (16M pixels per batch).
        if fill_mode == "reflect":
            return base + _reflect(F, iy, height) * width + _reflect(F, ix, width)
        if fill_mode == "nearest":
            return base + F.clip(iy, 0.0, height - 1.0) * width + F.clip(ix, 0.0, width - 1.0)
        inside = F.logical_and(F.logical_and(iy >= 0.0, iy <= height - 1.0),
                               F.logical_and(ix >= 0.0, ix <= width - 1.0))
        return F.where(inside, base + iy * width + ix, fill_index)

    def gather(idx):
        values = F.take(flat, F.reshape(F.cast(idx, "int32"), (-1,)), axis=0)
        return F.reshape(values, (-1, out_h, out_w, channels))

    if interpolation == "nearest":
        return gather(index(F.floor(src_y + 0.5), F.floor(src_x + 0.5)))
    x0 = F.floor(src_x)
    y0 = F.floor(src_y)
    wx = (src_x - x0)[..., None]
    wy = (src_y - y0)[..., None]
    top = gather(index(y0, x0)) * (1.0 - wx) + gather(index(y0, x0 + 1.0)) * wx
    bottom = gather(index(y0 + 1.0, x0)) * (1.0 - wx) + gather(index(y0 + 1.0, x0 + 1.0)) * wx
    return top * (1.0 - wy) + bottom * wy


def _stack_transform(F, a0, a1, a2, b0, b1, b2):
    zeros = F.zeros_like(a0)
    return F.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def rotation_transform(degrees, height: int, width: int, F=None):
    """Transforms that rotate the content counter-clockwise by `degrees` ((B,)) about the centre."""
    F = F or ops_for(degrees)
    theta = F.cast(degrees, "float32") * (math.pi / 180.0)
    cos, sin = F.cos(theta), F.sin(theta)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    return _stack_transform(F, cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)


def affine_transform(
    height: int,
    width: int,
    degrees=None,
    zoom=None,
    translate=None,
    shear=None,
    F=None,
    batch_like=None,
):
    """One transform per image composed of (all optional, each (B,) or (B, 2)):

    rotation `degrees` (counter-clockwise, about the centre), `zoom` = (zy, zx) sampling scales
    (> 1 shows more of the image, i.e. zooms out; about the centre), `translate` = (ty, tx) in
    pixels (content moves down/right by it), `shear` = (sy, sx): input x = x + sx * y, input y =
    y + sy * x about the top-left corner (PIL/timm's ShearX/ShearY).
    """
    parts = [p for p in (degrees, zoom, translate, shear, batch_like) if p is not None]
    F = F or ops_for(parts[0])
    ref = F.cast(parts[0], "float32")
    ref = ref if len(ref.shape) == 1 else ref[:, 0]
    one, zero = F.ones_like(ref), F.zeros_like(ref)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    # Build output->input as a 2x3 matrix [[a, b, c], [d, e, f]] by composing inverse steps:
    # first undo translation, then rotation about the centre, then zoom about the centre, then shear.
    a, b, c, d, e, f = one, zero, zero, zero, one, zero

    def then(m, a, b, c, d, e, f):
        # Returns m @ current, with m = (ma, mb, mc, md, me, mf) applied after the current map.
        ma, mb, mc, md, me, mf = m
        return (ma * a + mb * d, ma * b + mb * e, ma * c + mb * f + mc,
                md * a + me * d, md * b + me * e, md * c + me * f + mf)

    if translate is not None:
        translate = F.cast(translate, "float32")
        a, b, c, d, e, f = then((one, zero, -translate[:, 1], zero, one, -translate[:, 0]), a, b, c, d, e, f)
    if degrees is not None:
        theta = F.cast(degrees, "float32") * (math.pi / 180.0)
        cos, sin = F.cos(theta), F.sin(theta)
        m = (cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy)
        a, b, c, d, e, f = then(m, a, b, c, d, e, f)
    if zoom is not None:
        zoom = F.cast(zoom, "float32")
        zy, zx = zoom[:, 0], zoom[:, 1]
        a, b, c, d, e, f = then((zx, zero, cx * (1.0 - zx), zero, zy, cy * (1.0 - zy)), a, b, c, d, e, f)
    if shear is not None:
        shear = F.cast(shear, "float32")
        a, b, c, d, e, f = then((one, shear[:, 1], zero, shear[:, 0], one, zero), a, b, c, d, e, f)
    return _stack_transform(F, a, b, c, d, e, f)


# ----------------------------------------------------------------------------- layers
@keras.saving.register_keras_serializable(package="kzoo")
class RandomFlip(BatchAugmentation):
    """Flips each image with probability `p`; mode "horizontal", "vertical" or both.

    Example:
        >>> RandomFlip("horizontal", seed=0)(keras.ops.zeros((4, 8, 8, 3))).shape
        (4, 8, 8, 3)
    """

    def __init__(self, mode: str = "horizontal", p: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if mode not in ("horizontal", "vertical", "horizontal_and_vertical"):
            raise KzooError(f"RandomFlip: mode={mode!r}; expected horizontal, vertical or horizontal_and_vertical")
        self.mode, self.p = mode, float(p)

    def augment(self, F, images, labels, key):
        batch = F.shape(images)[0]
        u = _rng.uniform(F, key, 1, (2, batch))
        if self.mode != "vertical":
            images = flip_left_right(images, F.less(u[0], self.p), F)
        if self.mode != "horizontal":
            images = flip_up_down(images, F.less(u[1], self.p), F)
        return images, labels

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "p": self.p}


@keras.saving.register_keras_serializable(package="kzoo")
class PadCrop(BatchAugmentation):
    """Pads by `padding` pixels, then crops a random window of the original size (CIFAR's crop);
    with `flip=True` also mirrors half of the images left-right inside the same gather.

    Example:
        >>> PadCrop(4, flip=True, seed=0)(keras.ops.zeros((4, 32, 32, 3))).shape
        (4, 32, 32, 3)
    """

    def __init__(self, padding: int = 4, fill_mode: str = "constant", fill_value: float = 0.0,
                 flip: bool = False, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if fill_mode not in ("constant", "reflect"):
            raise KzooError(f"PadCrop: fill_mode={fill_mode!r}; expected constant or reflect")
        self.padding, self.fill_mode, self.fill_value = int(padding), fill_mode, float(fill_value)
        self.flip = bool(flip)

    def augment(self, F, images, labels, key):
        batch = F.shape(images)[0]
        u = _rng.uniform(F, key, 1, (3, batch))
        offsets = _rng._to_int(F, F.stack([u[0], u[1]], axis=1), 2 * self.padding + 1)
        flip = F.less(u[2], 0.5) if self.flip else None
        return pad_crop(images, offsets, self.padding, self.fill_mode, self.fill_value, flip, F), labels

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "flip": self.flip}


def pad_crop(images, offsets, padding: int, fill_mode: str = "constant", fill_value: float = 0.0,
             flip=None, F=None):
    """Pads by `padding`, then crops the original size at `offsets` ((B, 2) in [0, 2*padding]),
    mirrored where `flip` ((B,) bool, optional) is True."""
    F = F or ops_for(images)
    _, height, width, _ = images.shape
    if fill_mode == "constant":
        # No padded copy: the crop's out-of-range pixels read the fill value.
        return crop(images, F.cast(offsets, "int32") - padding, (height, width), flip, fill_value, F)
    padded = F.pad(images, [[0, 0], [padding, padding], [padding, padding], [0, 0]], mode="symmetric")
    return crop(padded, offsets, (height, width), flip, None, F)


@keras.saving.register_keras_serializable(package="kzoo")
class RandomResizedCrop(BatchAugmentation):
    """Inception-style crop: area fraction in `scale`, aspect ratio in `ratio`, resized back.

    As torchvision: 10 tries per image (all drawn at once), the first that fits wins, else a
    centre crop with the ratio clamped. Output size defaults to the input size.

    Example:
        >>> RandomResizedCrop(seed=0)(keras.ops.zeros((2, 64, 64, 3))).shape
        (2, 64, 64, 3)
    """

    def __init__(self, size: tuple[int, int] | None = None, scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3 / 4, 4 / 3), seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.size = None if size is None else tuple(int(s) for s in size)
        self.scale, self.ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)

    def augment(self, F, images, labels, key):
        _, height, width, _ = images.shape
        out_h, out_w = self.size or (height, width)
        batch = F.shape(images)[0]
        tries = 10
        area = height * width * _rng.uniform(F, key, 1, (batch, tries), *self.scale)
        log_ratio = _rng.uniform(F, key, 2, (batch, tries), math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = F.exp(log_ratio)
        w = F.round(F.sqrt(area * aspect))
        h = F.round(F.sqrt(area / aspect))
        fits = F.logical_and(F.logical_and(w <= width, h <= height), F.logical_and(w >= 1, h >= 1))
        first = F.argmax(F.cast(fits, "int32"), axis=1)
        pick = F.one_hot(first, tries, dtype="float32")
        any_fit = F.any(fits, axis=1)
        w = F.sum(w * pick, axis=1)
        h = F.sum(h * pick, axis=1)
        # torchvision's fallback: the whole image, its aspect ratio clamped into `ratio`.
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            fb_w, fb_h = width, round(width / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fb_w, fb_h = round(height * self.ratio[1]), height
        else:
            fb_w, fb_h = width, height
        w = F.where(any_fit, w, float(fb_w))
        h = F.where(any_fit, h, float(fb_h))
        x0 = F.where(any_fit, F.floor(_rng.uniform(F, key, 3, (batch,)) * (width - w + 1)), (width - w) // 2)
        y0 = F.where(any_fit, F.floor(_rng.uniform(F, key, 4, (batch,)) * (height - h + 1)), (height - h) // 2)
        return resized_crop(images, F.stack([y0, x0, h, w], axis=1), (out_h, out_w), F), labels

    def get_config(self):
        return {**super().get_config(), "size": self.size, "scale": self.scale, "ratio": self.ratio}


def resized_crop(images, boxes, size: tuple[int, int], F=None):
    """Crops `boxes` ((B, 4): y0, x0, h, w in pixels) and resizes each to `size`, bilinear."""
    F = F or ops_for(images)
    out_h, out_w = size
    boxes = F.cast(boxes, "float32")
    sy, sx = boxes[:, 2] / out_h, boxes[:, 3] / out_w
    # Half-pixel centres, as tf.image.resize / PIL: input = y0 + (y + 0.5) * scale - 0.5.
    zero = F.zeros_like(sx)
    transform = _stack_transform(F, sx, zero, boxes[:, 1] + 0.5 * sx - 0.5, zero, sy, boxes[:, 0] + 0.5 * sy - 0.5)
    return warp_affine(images, transform, (out_h, out_w), fill_mode="nearest", F=F)


@keras.saving.register_keras_serializable(package="kzoo")
class RandomAffine(BatchAugmentation):
    """Random rotation, zoom, translation and shear as one bilinear resampling per image.

    Factors follow Keras' layers: `rotation` is a fraction of a full turn (0.02 = up to
    +-7.2 degrees), `zoom_height`/`zoom_width` a fraction (0.2: sampling scale in [0.8, 1.2],
    per axis), `translate_height`/`translate_width` a fraction of the size, `shear` the PIL
    shear coefficient range.

    Example:
        >>> RandomAffine(rotation=0.02, zoom_height=0.2, zoom_width=0.2, seed=0)(keras.ops.zeros((2, 8, 8, 3))).shape
        (2, 8, 8, 3)
    """

    def __init__(self, rotation: float = 0.0, zoom_height: float = 0.0, zoom_width: float = 0.0,
                 translate_height: float = 0.0, translate_width: float = 0.0, shear: float = 0.0,
                 fill_mode: str = "reflect", fill_value: float = 0.0, interpolation: str = "bilinear",
                 seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rotation, self.shear = float(rotation), float(shear)
        self.zoom_height, self.zoom_width = float(zoom_height), float(zoom_width)
        self.translate_height, self.translate_width = float(translate_height), float(translate_width)
        self.fill_mode, self.fill_value, self.interpolation = fill_mode, float(fill_value), interpolation

    def augment(self, F, images, labels, key):
        _, height, width, _ = images.shape
        batch = F.shape(images)[0]

        def sym(stream, factor):
            return _rng.uniform(F, key, stream, (batch,), -factor, factor)

        degrees = sym(1, 360.0 * self.rotation)
        zoom = F.stack([1.0 + sym(2, self.zoom_height), 1.0 + sym(3, self.zoom_width)], axis=1)
        translate = F.stack([sym(4, self.translate_height * height), sym(5, self.translate_width * width)], axis=1)
        shear = F.stack([F.zeros_like(degrees), sym(6, self.shear)], axis=1)
        transform = affine_transform(height, width, degrees, zoom, translate, shear, F=F)
        out = warp_affine(images, transform, interpolation=self.interpolation, fill_mode=self.fill_mode,
                          fill_value=self.fill_value, F=F)
        return out, labels

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom_height": self.zoom_height,
                "zoom_width": self.zoom_width, "translate_height": self.translate_height,
                "translate_width": self.translate_width, "shear": self.shear, "fill_mode": self.fill_mode,
                "fill_value": self.fill_value, "interpolation": self.interpolation}


@keras.saving.register_keras_serializable(package="kzoo")
class RandomRotation(RandomAffine):
    """Keras-style random rotation: `factor` is a fraction of a full turn (0.02 = +-7.2 degrees)."""

    def __init__(self, factor: float, fill_mode: str = "reflect", fill_value: float = 0.0,
                 interpolation: str = "bilinear", seed: int | None = None, **kwargs):
        super().__init__(rotation=factor, fill_mode=fill_mode, fill_value=fill_value,
                         interpolation=interpolation, seed=seed, **kwargs)

    def get_config(self):
        return {**_base_config(super().get_config()), "factor": self.rotation}


@keras.saving.register_keras_serializable(package="kzoo")
class RandomZoom(RandomAffine):
    """Keras-style random zoom: sampling scale in [1 - f, 1 + f] per axis (width defaults to height)."""

    def __init__(self, height_factor: float, width_factor: float | None = None, fill_mode: str = "reflect",
                 fill_value: float = 0.0, interpolation: str = "bilinear", seed: int | None = None, **kwargs):
        width_factor = height_factor if width_factor is None else width_factor
        super().__init__(zoom_height=height_factor, zoom_width=width_factor, fill_mode=fill_mode,
                         fill_value=fill_value, interpolation=interpolation, seed=seed, **kwargs)

    def get_config(self):
        return {**_base_config(super().get_config()), "height_factor": self.zoom_height,
                "width_factor": self.zoom_width}


@keras.saving.register_keras_serializable(package="kzoo")
class RandomTranslation(RandomAffine):
    """Keras-style random translation by up to a fraction of the height/width."""

    def __init__(self, height_factor: float, width_factor: float | None = None, fill_mode: str = "reflect",
                 fill_value: float = 0.0, interpolation: str = "bilinear", seed: int | None = None, **kwargs):
        width_factor = height_factor if width_factor is None else width_factor
        super().__init__(translate_height=height_factor, translate_width=width_factor, fill_mode=fill_mode,
                         fill_value=fill_value, interpolation=interpolation, seed=seed, **kwargs)

    def get_config(self):
        return {**_base_config(super().get_config()), "height_factor": self.translate_height,
                "width_factor": self.translate_width}


_AFFINE_ONLY = ("rotation", "zoom_height", "zoom_width", "translate_height", "translate_width", "shear")


def _base_config(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in _AFFINE_ONLY}
