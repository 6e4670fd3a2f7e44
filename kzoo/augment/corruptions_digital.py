"""Colour and digital corruptions of `kzoo.augment.corruptions`: brightness, saturate (HSV, as
skimage converts), contrast, and JPEG compression as a DCT quantisation in `keras.ops`.

Functions take and return float images in [0, 1], (B, H, W, 3); `F` is the op namespace.
"""

from __future__ import annotations

import math

import numpy as np

# ITU-T T.81 Annex K tables (libjpeg's defaults), row-major over (v, u).
LUMA_TABLE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
], dtype=np.float64).reshape(8, 8)
CHROMA_TABLE = np.full((8, 8), 99.0)
CHROMA_TABLE[:4, :4] = np.array([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]])

# JFIF's full-range YCbCr (offsets of 128 on the chroma channels are added separately).
RGB_TO_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
YCC_TO_RGB = np.linalg.inv(RGB_TO_YCC)


# ----------------------------------------------------------------------------- HSV
def rgb_to_hsv(F, images):
    """skimage.color.rgb2hsv: V = max, S = (max - min) / max, hue from the maximal channel
    (blue, then green, wins ties, as skimage assigns them last); grey pixels get H = S = 0."""
    r, g, b = images[..., 0], images[..., 1], images[..., 2]
    v = F.max(images, axis=-1)
    delta = v - F.min(images, axis=-1)
    flat = delta <= 0.0
    safe = F.where(flat, 1.0, delta)
    s = F.where(flat, 0.0, delta / F.where(v > 0.0, v, 1.0))
    h = F.where(F.equal(b, v), 4.0 + (r - g) / safe, F.where(F.equal(g, v), 2.0 + (b - r) / safe, (g - b) / safe))
    h = h / 6.0
    h = F.where(flat, 0.0, h - F.floor(h))
    return h, s, v


def hsv_to_rgb(F, h, s, v):
    """skimage.color.hsv2rgb: the six hue sectors, picked with a one-hot instead of a branch."""
    sector = F.floor(h * 6.0)
    f = h * 6.0 - sector
    p, q, t = v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s)
    pick = F.one_hot(F.cast(sector - 6.0 * F.floor(sector / 6.0), "int32"), 6, dtype="float32")

    def channel(values):
        return F.sum(pick * F.stack(values, axis=-1), axis=-1)

    return F.stack([channel([v, q, p, p, t, v]), channel([t, v, v, q, p, p]), channel([p, p, t, v, v, q])], axis=-1)


def brightness(F, images, amount: float):
    """V + c in HSV, clipped to [0, 1]."""
    h, s, v = rgb_to_hsv(F, images)
    return hsv_to_rgb(F, h, s, F.clip(v + amount, 0.0, 1.0))


def saturate(F, images, params):
    """S * c0 + c1 in HSV, clipped to [0, 1] (grey pixels, hue 0, turn red where c1 > 0, as in skimage)."""
    factor, shift = params
    h, s, v = rgb_to_hsv(F, images)
    return hsv_to_rgb(F, h, F.clip(s * factor + shift, 0.0, 1.0), v)


def contrast(F, images, factor: float):
    """(x - mean) * c + mean with each image's per-channel mean."""
    mean = F.mean(images, axis=(1, 2), keepdims=True)
    return (images - mean) * factor + mean


# ----------------------------------------------------------------------------- JPEG
def quality_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's `jpeg_set_quality` scaling (baseline: entries in 1..255)."""
    quality = min(max(int(quality), 1), 100)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((base * scale + 50) // 100, 1, 255)


def dct_matrix() -> np.ndarray:
    """The orthonormal 8-point DCT-II (JPEG's FDCT is its 2-D product)."""
    k = np.arange(8)
    d = np.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16.0) * math.sqrt(2.0 / 8.0)
    d[0] /= math.sqrt(2.0)
    return d


def upsample_matrix(size_out: int, size_in: int, valid: int) -> np.ndarray:
    """libjpeg's "fancy" 2x chroma upsampling along one axis: each output sample is 3/4 of its
    own input sample and 1/4 of the next nearest one, the edge sample (index `valid` - 1) repeated."""
    matrix = np.zeros((size_out, size_in))
    for out in range(size_out):
        i = out // 2
        other = max(i - 1, 0) if out % 2 == 0 else min(i + 1, valid - 1)
        matrix[out, i] += 0.75
        matrix[out, other] += 0.25
    return matrix


def _blockwise(F, plane, table: np.ndarray):
    """Quantises a (B, H, W) plane (H, W multiples of 8) in 8x8 blocks: DCT, round(c / Q) * Q, IDCT;
    samples are rounded and clipped to 8 bits on both sides, as the codec stores them."""
    d = F.convert_to_tensor(dct_matrix().astype(np.float32))
    q = F.convert_to_tensor(table.astype(np.float32))[None, None, :, None, :]
    _, height, width = plane.shape
    blocks = F.reshape(plane - 128.0, (-1, height // 8, 8, width // 8, 8))
    coef = F.einsum("uy,biyjx,vx->biujv", d, blocks, d)
    coef = F.round(coef / q) * q
    out = F.einsum("uy,biujv,vx->biyjx", d, coef, d) + 128.0
    return F.clip(F.round(F.reshape(out, (-1, height, width))), 0.0, 255.0)


def jpeg_compression(F, images, quality: int):
    """JPEG's lossy step at libjpeg quality `quality`, as Pillow saves (4:2:0, baseline tables).

    Kept from the codec: JFIF YCbCr with 8-bit samples, edge replication to whole 16x16 MCUs,
    2x2 chroma averaging, 8x8 block DCT with the quality-scaled Annex K tables, rounding to the
    quantisation grid, and libjpeg's "fancy" (triangular) chroma upsampling on decoding.
    Differs from libjpeg: float DCT and colour conversion (libjpeg uses integer "islow" DCT and
    fixed-point arithmetic), round-half-to-even, and no entropy coding (which is lossless).
    Against Pillow, pixels differ by about one level on average (a coefficient at a rounding
    boundary may land one quantisation step away), against 8-11 levels that JPEG itself changes
    at CIFAR's qualities (see the tests).
    """
    _, height, width, _ = images.shape
    padded_h, padded_w = -(-height // 16) * 16, -(-width // 16) * 16
    rows = np.minimum(np.arange(padded_h), height - 1).astype(np.int32)
    cols = np.minimum(np.arange(padded_w), width - 1).astype(np.int32)
    x = F.take(F.take(images * 255.0, F.convert_to_tensor(rows), axis=1), F.convert_to_tensor(cols), axis=2)
    ycc = F.einsum("bhwc,kc->bhwk", x, F.convert_to_tensor(RGB_TO_YCC.astype(np.float32)))
    ycc = F.clip(F.round(ycc + F.convert_to_tensor(np.array([0.0, 128.0, 128.0], np.float32))), 0.0, 255.0)
    luma = _blockwise(F, ycc[..., 0], quality_table(LUMA_TABLE, quality))
    chroma = F.reshape(ycc[..., 1:], (-1, padded_h // 2, 2, padded_w // 2, 2, 2))
    chroma = F.mean(chroma, axis=(2, 4))
    chroma = F.stack([_blockwise(F, chroma[..., k], quality_table(CHROMA_TABLE, quality)) for k in range(2)], axis=-1)
    up_rows = upsample_matrix(height, padded_h // 2, -(-height // 2)).astype(np.float32)
    up_cols = upsample_matrix(width, padded_w // 2, -(-width // 2)).astype(np.float32)
    chroma = F.einsum("yh,bhwc->bywc", F.convert_to_tensor(up_rows), chroma)
    chroma = F.einsum("xw,bhwc->bhxc", F.convert_to_tensor(up_cols), chroma)
    ycc = F.concatenate([luma[:, :height, :width, None], chroma - 128.0], axis=-1)
    rgb = F.einsum("bhwk,ck->bhwc", ycc, F.convert_to_tensor(YCC_TO_RGB.astype(np.float32)))
    return F.clip(F.round(rgb), 0.0, 255.0) / 255.0
