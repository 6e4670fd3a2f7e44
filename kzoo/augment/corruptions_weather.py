"""Weather corruptions of `kzoo.augment.corruptions`: fog, frost, snow, spatter (Hendrycks &
Dietterich 2019), batched in `keras.ops` with per-image random layers.

Functions take and return float images in [0, 1], (B, H, W, C), unclipped unless the reference
clips; `F` is the op namespace (`kzoo.augment._backend`), `key` a `_rng` key.
"""

from __future__ import annotations

import numpy as np

from kzoo.augment import _rng
from kzoo.augment.corruptions_blur import (
    filter_matrix,
    gaussian_blur,
    motion_blur,
    noise_gain,
    separable,
    zoom_matrix,
)

GRAY = (0.299, 0.587, 0.114)  # OpenCV's RGB2GRAY, which snow uses
WATER = (175.0 / 255.0, 238.0 / 255.0, 238.0 / 255.0)  # spatter's pale turquoise
MUD = (63.0 / 255.0, 42.0 / 255.0, 20.0 / 255.0)


def next_power_of_two(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


# ----------------------------------------------------------------------------- plasma fractal
def plasma_uniforms(F, key, batch, mapsize: int):
    """The random numbers of one plasma fractal per image: per level (3, B, n, n) in [0, 1)
    (square centres, then the two diamond sets)."""
    out, n, level = [], 1, 0
    while n < mapsize:
        out.append(_rng.uniform(F, _rng.fold_in(F, key, level), 0, (3, batch, n, n)))
        n, level = 2 * n, level + 1
    return out


def plasma_from_uniforms(F, uniforms, decay: float):
    """Diamond-square heightmaps (B, m, m) in [0, 1] as the paper's `plasma_fractal`: all images
    and all points of a level at once; the three new point sets of a level are interleaved with
    the old grid by stack + reshape instead of strided assignment."""
    batch = F.shape(uniforms[0])[1]
    grid = F.zeros((batch, 1, 1), dtype="float32")
    wibble = 100.0
    for u in uniforms:
        n = u.shape[-1]
        noise = wibble * (2.0 * u - 1.0) * wibble  # wibble * uniform(-wibble, wibble), as published
        corners = grid
        squares = corners + F.roll(corners, -1, axis=1)
        squares = squares + F.roll(squares, -1, axis=2)
        centres = squares / 4.0 + noise[0]
        across = centres + F.roll(centres, 1, axis=1) + corners + F.roll(corners, -1, axis=2)
        down = centres + F.roll(centres, 1, axis=2) + corners + F.roll(corners, -1, axis=1)
        across = across / 4.0 + noise[1]  # points (i, j + 1/2)
        down = down / 4.0 + noise[2]  # points (i + 1/2, j)
        even = F.reshape(F.stack([corners, across], axis=-1), (-1, n, 2 * n))
        odd = F.reshape(F.stack([down, centres], axis=-1), (-1, n, 2 * n))
        grid = F.reshape(F.stack([even, odd], axis=2), (-1, 2 * n, 2 * n))
        wibble /= decay
    low = F.min(grid, axis=(1, 2), keepdims=True)
    grid = grid - low
    return grid / F.max(grid, axis=(1, 2), keepdims=True)


def plasma_fractal(F, key, batch, height: int, width: int, decay: float):
    """Per-image plasma (B, H, W, 1) from a map of the next power of two, cropped at the top left."""
    mapsize = next_power_of_two(max(height, width, 2))
    plasma = plasma_from_uniforms(F, plasma_uniforms(F, key, batch, mapsize), decay)
    return plasma[:, :height, :width, None]


# ----------------------------------------------------------------------------- fog and frost
def fog_with(F, images, plasma, strength: float):
    """x + c * plasma, rescaled by max / (max + c) with the image's maximum (all channels)."""
    top = F.max(images, axis=(1, 2, 3), keepdims=True)
    return (images + strength * plasma) * top / (top + strength)


def fog(F, images, key, strength: float, decay: float):
    _, height, width, _ = images.shape
    return fog_with(F, images, plasma_fractal(F, key, F.shape(images)[0], height, width, decay), strength)


def frost_texture(F, key, batch, height: int, width: int):
    """A procedural frost layer (B, H, W, 3) in [0, 255], standing in for the paper's six frost
    photographs (not shipped): two ridged plasma fractals, (1 - |2p - 1|)^8, draw thin bright
    crack-like ice veins at all scales over a plasma haze, tinted pale blue. Its mean level is
    about 0.45 of white; the crystals' shapes and the level are not matched to the photographs."""
    # The three fractals as one batch of 3 B: a third of the ops to trace and compile.
    maps = F.reshape(plasma_fractal(F, key, 3 * batch, height, width, 1.5), (3, -1, height, width, 1))
    veins = (1.0 - F.abs(2.0 * maps[1] - 1.0)) ** 8 + (1.0 - F.abs(2.0 * maps[2] - 1.0)) ** 8
    texture = F.clip(0.35 * maps[0] + 0.75 * veins, 0.0, 1.0)
    tint = F.convert_to_tensor(np.array([0.80, 0.90, 1.0], dtype=np.float32))
    return 255.0 * texture * tint


def frost(F, images, key, keep: float, amount: float):
    """c0 * x + c1 * frost (the reference works in [0, 255]; here divided by 255)."""
    _, height, width, _ = images.shape
    texture = frost_texture(F, key, F.shape(images)[0], height, width) / 255.0
    return keep * images + amount * texture


# ----------------------------------------------------------------------------- snow
def snow(F, images, key, params, scale: float):
    """The paper's snow: a thresholded, zoomed normal layer of flakes, motion-blurred at a random
    angle in [-135, -45] degrees, rounded to 8 bits, added with its 180-degree rotation to an
    image brightened towards its grey level (imagecorruptions' numpy motion blur stands in for
    ImageMagick's, as everywhere here)."""
    loc, std, zoom, threshold, radius, sigma, keep = params
    _, height, width, _ = images.shape
    batch = F.shape(images)[0]
    layer = loc + std * _rng.normal(F, _rng.fold_in(F, key, 0), 0, (batch, height, width, 1))
    layer = separable(F, layer, zoom_matrix(height, zoom), zoom_matrix(width, zoom))
    layer = F.clip(F.where(layer < threshold, 0.0, layer), 0.0, 1.0)
    angles = _rng.uniform(F, _rng.fold_in(F, key, 1), 0, (batch,), -135.0, -45.0)
    layer = motion_blur(F, layer, angles, max(1, round(radius * scale)), sigma * scale)
    layer = F.round(layer * 255.0) / 255.0
    gray = GRAY[0] * images[..., 0:1] + GRAY[1] * images[..., 1:2] + GRAY[2] * images[..., 2:3]
    images = keep * images + (1.0 - keep) * F.maximum(images, gray * 1.5 + 0.5)
    return images + layer + F.flip(F.flip(layer, axis=1), axis=2)


# ----------------------------------------------------------------------------- spatter
def _box3(F, x):
    """cv2.blur(3x3) with REFLECT_101 borders, as a separable matrix product."""
    _, height, width, _ = x.shape
    taps = np.full(3, 1.0 / 3.0)
    return separable(F, x, filter_matrix(height, taps, "mirror"), filter_matrix(width, taps, "mirror"))


def _max3(F, x):
    return F.max_pool(x, pool_size=3, strides=1, padding="same")


def spatter(F, images, key, params, scale: float):
    """The paper's spatter. Mud (severities 4-5, c[5] = 1) follows the reference exactly: a
    blurred normal layer thresholded into blobs, blurred again and cut at 0.8, painted brown.

    Water (severities 1-3) in the reference shades the liquid layer with OpenCV's Canny edges,
    distance transform, histogram equalisation and an emboss filter. Here, batched: the edges
    are the boundary of the liquid mask (a 3x3 max-pool minus the mask), the distance to them is
    the chessboard distance from 20 dilations (capped at 20 as the reference truncates), then
    the same 3x3 box blurs, emboss kernel and normalisation; histogram equalisation is replaced
    by scaling each image's distances to [0, 255]. Drops look alike; pixels differ.
    """
    loc, std, sigma, threshold, amount, mud = params
    _, height, width, _ = images.shape
    batch = F.shape(images)[0]
    # Blurring white noise `scale` times wider divides its spread by about `scale`: amplifying
    # the noise by as much keeps the blobs' threshold statistics and scales their size.
    noise = _rng.normal(F, _rng.fold_in(F, key, 0), 0, (batch, height, width, 1))
    liquid = loc + gaussian_blur(F, std * noise_gain(sigma, scale, 4.0) * noise, sigma * scale)
    liquid = F.where(liquid < threshold, 0.0, liquid)
    if mud:
        mask = F.cast(liquid > threshold, "float32")
        mask = gaussian_blur(F, mask, amount * scale)
        mask = F.where(mask < 0.8, 0.0, mask)
        colour = F.convert_to_tensor(np.array(MUD, dtype=np.float32))
        return images * (1.0 - mask) + colour * mask
    inside = F.cast(liquid > 0.0, "float32")
    edges = F.maximum(_max3(F, inside) - inside, _max3(F, 1.0 - inside) - (1.0 - inside))
    reached, dist = edges, F.zeros_like(edges)
    for _ in range(20):
        dist = dist + (1.0 - reached)
        reached = _max3(F, reached)
    dist = _box3(F, dist)  # kept in float: 8-bit flooring erases the small distances of small images
    low = F.min(dist, axis=(1, 2, 3), keepdims=True)
    high = F.max(dist, axis=(1, 2, 3), keepdims=True)
    dist = F.floor(255.0 * (dist - low) / F.maximum(high - low, 1.0))
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float32)[:, :, None, None]
    padded = F.pad(dist, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
    dist = F.clip(F.depthwise_conv(padded, F.convert_to_tensor(emboss), strides=1, padding="valid"), 0.0, 255.0)
    dist = _box3(F, dist)
    shade = liquid * 255.0 * dist
    shade = shade / F.maximum(F.max(shade, axis=(1, 2, 3), keepdims=True), 1e-6) * amount
    colour = F.convert_to_tensor(np.array(WATER, dtype=np.float32))
    return images + shade * colour
