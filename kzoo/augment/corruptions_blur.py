"""Blur, resampling and elastic corruptions of `kzoo.augment.corruptions` (Hendrycks & Dietterich 2019).

Everything a whole batch shares is a constant built here in numpy when the graph is traced: a
separable linear filter or resize along one axis is an (out, in) matrix, with the border rule of
the reference library folded into it, applied to the batch as two einsums. That one form gives
skimage's Gaussian (`mode="nearest"`), scipy's `zoom` (zoom blur's "clipped zoom"), PIL's BOX
resize (pixelate) exactly, multiple border reflections included, and runs as matmuls on device.
What differs per image (motion-blur angle, glass-blur shuffles, elastic fields) is a gather.

Functions here take and return float images in [0, 1], (B, H, W, C), unclipped; `F` is the op
namespace (`kzoo.augment._backend`), `key` a `_rng` key.
"""

from __future__ import annotations

import math

import numpy as np

from kzoo.augment import _rng

BORDER_MODES = ("nearest", "reflect", "mirror")  # scipy.ndimage names; "mirror" is cv2's REFLECT_101.


# ----------------------------------------------------------------------------- numpy constants
def fold_index(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Integer indices outside [0, size) mapped inside by a scipy.ndimage border mode: "nearest"
    (a a | a b c | c c), "reflect" (b a | a b c | c b), "mirror" (c b | a b c | b a), any distance."""
    index = np.asarray(index, dtype=np.int64)
    if mode == "nearest" or size == 1:
        return np.clip(index, 0, size - 1)
    if mode == "reflect":
        period = 2 * size
        index = np.mod(index, period)
        return np.minimum(index, period - 1 - index)
    if mode == "mirror":
        period = 2 * (size - 1)
        index = np.mod(index, period)
        return np.minimum(index, period - index)
    raise ValueError(mode)


def filter_matrix(size: int, taps: np.ndarray, mode: str) -> np.ndarray:
    """(size, size) matrix of correlating a signal with centred `taps` (odd length) under `mode`."""
    half = len(taps) // 2
    matrix = np.zeros((size, size), dtype=np.float64)
    rows = np.arange(size)
    for k, weight in enumerate(taps):
        np.add.at(matrix, (rows, fold_index(rows + k - half, size, mode)), weight)
    return matrix


def gaussian_taps(sigma: float, truncate: float) -> np.ndarray:
    """scipy.ndimage's Gaussian kernel: radius int(truncate * sigma + 0.5), normalised."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def noise_gain(sigma: float, scale: float, truncate: float) -> float:
    """How much to amplify white noise before a 2-D Gaussian of sigma * scale so that it comes out
    as spread as after one of sigma: the ratio of the kernels' L2 norms (squared, for 2-D). About
    `scale`, exact also for small sigmas, where the continuous 1 / sigma law does not hold."""
    def norm2(s):
        return 1.0 if s <= 1e-15 else float(np.sum(gaussian_taps(s, truncate) ** 2))

    return norm2(sigma) / norm2(sigma * scale)


def gaussian_matrix(size: int, sigma: float, truncate: float = 4.0, mode: str = "nearest") -> np.ndarray:
    """skimage.filters.gaussian along one axis (scipy skips an axis with sigma 0: identity)."""
    if sigma <= 1e-15:
        return np.eye(size)
    return filter_matrix(size, gaussian_taps(sigma, truncate), mode)


def zoom_matrix(size: int, factor: float) -> np.ndarray:
    """The paper's `clipped_zoom` along one axis: crop the centre ceil(size / factor) pixels,
    `scipy.ndimage.zoom(order=1)` them by `factor` (output pixel o reads input o * (n - 1) / (m - 1)),
    keep the centre `size` pixels."""
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    zoomed = round(crop * factor)
    trim = (zoomed - size) // 2
    out = np.arange(trim, trim + size, dtype=np.float64)
    src = out * (crop - 1) / (zoomed - 1) if zoomed > 1 else np.zeros_like(out)
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    hi = np.minimum(lo + 1, crop - 1)
    matrix = np.zeros((size, size), dtype=np.float64)
    rows = np.arange(size)
    np.add.at(matrix, (rows, top + lo), 1.0 - frac)
    np.add.at(matrix, (rows, top + hi), frac)
    return matrix


def box_resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """PIL's `Image.resize(..., BOX)` along one axis (Pillow's `precompute_coeffs`), in float."""
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    matrix = np.zeros((size_out, size_in), dtype=np.float64)
    for i in range(size_out):
        center = (i + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), size_in)
        x = np.arange(lo, hi, dtype=np.float64)
        u = (x - center + 0.5) / filterscale
        weights = ((u > -0.5) & (u <= 0.5)).astype(np.float64)
        matrix[i, lo:hi] = weights / weights.sum()
    return matrix


def disk_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The paper's defocus kernel: a normalised aliased disk on a grid of half-width max(8, radius),
    smoothed by OpenCV's GaussianBlur (3x3, or 5x5 above radius 8; sigma `alias_blur`; REFLECT_101)."""
    half = 8 if radius <= 8 else math.ceil(radius)
    ksize = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1, dtype=np.float64)
    xx, yy = np.meshgrid(grid, grid)
    disk = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float64)
    disk /= disk.sum()
    # cv2.getGaussianKernel(ksize, sigma): exp(-(i - (k - 1) / 2)^2 / (2 sigma^2)), normalised.
    t = np.arange(ksize, dtype=np.float64) - (ksize - 1) / 2.0
    taps = np.exp(-(t ** 2) / (2.0 * alias_blur ** 2))
    taps /= taps.sum()
    smooth = filter_matrix(len(grid), taps, "mirror")
    return smooth @ disk @ smooth.T


def motion_taps(radius: int, sigma: float) -> np.ndarray:
    """ImageMagick's motion-blur kernel as imagecorruptions re-implements it: 2 * radius + 1 taps of
    a one-sided Gaussian, tap i reading the pixel i steps back along the motion direction."""
    x = np.arange(2 * radius + 1, dtype=np.float64)
    taps = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return taps / taps.sum()


# ----------------------------------------------------------------------------- batched ops
def _const(F, array: np.ndarray):
    return F.convert_to_tensor(np.asarray(array, dtype=np.float32))


def pad_border(F, images, pad: int, mode: str):
    """`pad` pixels on each side of H and W, by gathering folded row and column indices (a
    `fold_index` mode): any image size, any number of reflections, and on every backend (TF's pad
    has no "edge" mode)."""
    _, height, width, _ = images.shape
    rows = fold_index(np.arange(-pad, height + pad), height, mode).astype(np.int32)
    cols = fold_index(np.arange(-pad, width + pad), width, mode).astype(np.int32)
    return F.take(F.take(images, F.convert_to_tensor(rows), axis=1), F.convert_to_tensor(cols), axis=2)


def separable(F, images, rows: np.ndarray | None, cols: np.ndarray | None):
    """Applies an (H_out, H) matrix down the rows and a (W_out, W) matrix along the columns."""
    if rows is not None:
        images = F.einsum("yh,bhwc->bywc", _const(F, rows), images)
    if cols is not None:
        images = F.einsum("xw,bhwc->bhxc", _const(F, cols), images)
    return images


def gaussian_blur(F, images, sigma: float, truncate: float = 4.0, mode: str = "nearest"):
    """skimage.filters.gaussian(sigma, mode, truncate) over H and W (not channels)."""
    _, height, width, _ = images.shape
    return separable(F, images, gaussian_matrix(height, sigma, truncate, mode),
                     gaussian_matrix(width, sigma, truncate, mode))


def defocus_blur(F, images, radius: float, alias_blur: float):
    """cv2.filter2D with the disk kernel, REFLECT_101 borders: one depthwise convolution."""
    channels = images.shape[-1]
    kernel = disk_kernel(radius, alias_blur)
    # The published grid is at least 17x17, but a small disk is exactly zero outside a few pixels:
    # dropping the zero border (symmetrically) gives the same sums at a fraction of the cost.
    nonzero = np.nonzero(np.any(kernel != 0.0, axis=0))[0]
    trim = min(int(nonzero[0]), kernel.shape[0] - 1 - int(nonzero[-1]))
    kernel = kernel[trim:kernel.shape[0] - trim, trim:kernel.shape[1] - trim]
    half = kernel.shape[0] // 2
    padded = pad_border(F, images, half, "mirror")
    depthwise = np.repeat(kernel[:, :, None, None], channels, axis=2)
    return F.depthwise_conv(padded, _const(F, depthwise), strides=1, padding="valid")


def motion_blur(F, images, angles, radius: int, sigma: float):
    """imagecorruptions' `_motion_blur` with a per-image angle (degrees, (B,)): a weighted sum of
    2 * radius + 1 edge-replicated integer shifts of each image.
    As there, a tap whose shift reaches the image size is dropped (the sum is not renormalised)."""
    _, height, width, _ = images.shape
    taps = motion_taps(radius, sigma)
    count = len(taps)
    theta = F.cast(angles, "float32") * (math.pi / 180.0)
    steps = _const(F, np.arange(count))[:, None]
    # (2T, B): each tap's row shift, then each tap's column shift; |shift| <= T - 1.
    products = F.concatenate([steps * F.sin(theta)[None], steps * F.cos(theta)[None]], axis=0)
    shifts = _materialized(F, -F.cast(F.ceil(products - 0.5), "int32"), bound=count)
    inside = F.logical_and(F.abs(shifts[:count]) < height, F.abs(shifts[count:]) < width)
    weights = F.cast(inside, "float32") * _const(F, taps)[:, None]  # (T, B)
    shift = _sliced(F, images, count) if F.backend_name == "jax" else _gathered(F, images)
    out = None
    for i in range(count):
        term = F.reshape(weights[i], (-1, 1, 1, 1)) * shift(shifts[i], shifts[count + i])
        out = term if out is None else out + term
    return out


def _sliced(F, images, pad: int):
    """JAX: shift(dy, dx) as per-image dynamic slices of the edge-padded batch (a gather that
    clamps). `take` checks bounds after its gather, and XLA fused that check, with each tap's index
    arithmetic, into every pixel of the blur's consumers (with `_materialized`, snow runs 6-8x faster;
    docs/robustness.md)."""
    _, height, width, channels = images.shape
    padded = pad_border(F, images, pad, "nearest")

    def shift(dy, dx):
        starts = F.stack([pad - dy, pad - dx, F.zeros_like(dy)], axis=1)
        return F.vectorized_map(lambda e: F.slice(e[0], e[1], (height, width, channels)), (padded, starts))

    return shift


def _gathered(F, images):
    """TensorFlow: shift(dy, dx) as one flat gather of clamped indices for the whole batch (its
    gather has no bounds check to fuse; per-image slices through vectorized_map ran 6x slower)."""
    _, height, width, channels = images.shape
    flat = F.reshape(images, (-1, channels))
    base = F.arange(F.shape(images)[0], dtype="int32")[:, None, None] * (height * width)
    ys = F.arange(height, dtype="int32")[None, :, None]
    xs = F.arange(width, dtype="int32")[None, None, :]

    def shift(dy, dx):
        src_y = F.clip(ys - dy[:, None, None], 0, height - 1)
        src_x = F.clip(xs - dx[:, None, None], 0, width - 1)
        index = F.reshape(base + src_y * width + src_x, (-1,))
        return F.reshape(F.take(flat, index, axis=0), (-1, height, width, channels))

    return shift


def _materialized(F, table, bound: int):
    """`table` (an int tensor, rows in order, |values| < bound) unchanged, through a sort along its
    rows: XLA never fuses a sort into its consumers, so the values are computed once instead of
    again in every pixel that reads them (JAX on the CPU fused a motion blur's angle draw, sine and
    cosine into each pixel of each tap). Each row is offset by its rank, so the sort keeps the order."""
    offset = F.convert_to_tensor((np.arange(table.shape[0], dtype=np.int32) * (4 * bound) + 2 * bound)[:, None])
    return F.sort(table + offset, axis=0) - offset


def zoom_blur(F, images, factors):
    """Mean of the image and its centre zooms by each factor (one pair of matmuls per factor)."""
    _, height, width, _ = images.shape
    total = images
    for factor in factors:
        total = total + separable(F, images, zoom_matrix(height, factor), zoom_matrix(width, factor))
    return total / float(len(factors) + 1)


def pixelate(F, images, ratio: float):
    """PIL BOX-resize to int(size * ratio), then BOX-resize back (float, no 8-bit rounding)."""
    _, height, width, _ = images.shape
    small_h, small_w = max(int(height * ratio), 1), max(int(width * ratio), 1)
    rows = box_resize_matrix(small_h, height) @ box_resize_matrix(height, small_h)
    cols = box_resize_matrix(small_w, width) @ box_resize_matrix(width, small_w)
    return separable(F, images, rows, cols)


def glass_blur(F, images, key, sigma: float, delta: int, iterations: int):
    """Gaussian blur, 8-bit truncation, `iterations` passes of the reference's pixel "swaps", blur again.

    Each pass draws one offset per pixel, uniform in [-delta, delta - 1]^2 (numpy's `randint`
    excludes its upper bound), and runs `glass_pass`: the published loop's arithmetic exactly,
    batched. That loop's swap statement copies instead of swapping (see `glass_pass`), which is
    what CIFAR-10-C's and ImageNet-C's files hold.
    """
    _, height, width, _ = images.shape
    batch = F.shape(images)[0]
    x = F.floor(gaussian_blur(F, images, sigma) * 255.0) / 255.0  # np.uint8(x * 255) truncates
    for i in range(iterations):
        offsets = _rng.randint(F, _rng.fold_in(F, key, i), 0, (2, batch, height, width), 2 * delta) - delta
        x = glass_pass(F, x, offsets[0], offsets[1], delta)
    return gaussian_blur(F, x, sigma)


def glass_pass(F, images, dy, dx, delta: int):
    """One pass of the reference's raster loop, given its offsets `dy`, `dx` ((B, H, W) int32).

    The loop visits (h, w) for h from H - delta down to delta + 1, w likewise, and runs
    `x[h, w], x[h + dy, w + dx] = x[h + dy, w + dx], x[h, w]` on an (H, W, 3) array. Both
    right-hand sides are numpy views, so the first assignment overwrites the pixel the second one
    reads: (h, w) takes its neighbour's value and the neighbour keeps it (a copy, not a swap).
    So each visited pixel's new value is its source's value at that moment: the source's new value
    if the loop rewrote it already (visited earlier: later in raster order and inside the visited
    rectangle, possible from delta = 2 on), else its old one. Following those links to their end
    (pointer doubling, log2(H W) gathers) gives every pixel's final source at once.
    """
    _, height, width, channels = images.shape
    batch = F.shape(images)[0]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.int32)

    def visited(y, x):  # the loop's rectangle (numpy or tensors)
        both = F.logical_and if not isinstance(y, np.ndarray) else np.logical_and
        return both(both(y > delta, y <= height - delta), both(x > delta, x <= width - delta))

    here = F.convert_to_tensor(ys * width + xs)
    src_y, src_x = F.convert_to_tensor(ys) + dy, F.convert_to_tensor(xs) + dx
    in_loop = F.convert_to_tensor(visited(ys, xs))
    source = F.where(in_loop, src_y * width + src_x, here)  # (B, H, W)
    flat_source = F.reshape(source, (-1, height * width))
    if delta > 1:  # offsets reach positions the loop has rewritten already
        linked = F.logical_and(F.logical_and(in_loop, visited(src_y, src_x)), source > here)
        pointer = F.reshape(F.where(linked, source, here), (-1, height * width))
        for _ in range(int(np.ceil(np.log2(height * width)))):
            pointer = F.take_along_axis(pointer, pointer, axis=1)
        flat_source = F.take_along_axis(flat_source, pointer, axis=1)
    base = F.arange(batch, dtype="int32")[:, None] * (height * width)
    flat = F.reshape(images, (-1, channels))
    index = F.reshape(base + flat_source, (-1,))
    return F.reshape(F.take(flat, index, axis=0), (-1, height, width, channels))


def _fold(F, coord, size: int, mode: str):
    if mode == "nearest" or size == 1:
        return F.clip(coord, 0.0, size - 1.0)
    period = float(2 * size if mode == "reflect" else 2 * (size - 1))
    coord = coord - F.floor(coord / period) * period
    return F.minimum(coord, period - (1.0 if mode == "reflect" else 0.0) - coord)


def bilinear(F, images, src_y, src_x, mode: str):
    """Bilinear resampling of each image at float pixel coordinates ((B, H, W) each); corners
    outside the image are folded in by `mode` (scipy names), as cv2.remap / map_coordinates do."""
    _, height, width, channels = images.shape
    batch = F.shape(images)[0]
    flat = F.reshape(images, (-1, channels))
    base = F.reshape(F.arange(batch, dtype="float32") * float(height * width), (-1, 1, 1))
    y0, x0 = F.floor(src_y), F.floor(src_x)
    wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]

    def gather(iy, ix):
        idx = base + _fold(F, iy, height, mode) * width + _fold(F, ix, width, mode)
        return F.reshape(F.take(flat, F.reshape(F.cast(idx, "int32"), (-1,)), axis=0), (-1, height, width, channels))

    top = gather(y0, x0) * (1.0 - wx) + gather(y0, x0 + 1.0) * wx
    bottom = gather(y0 + 1.0, x0) * (1.0 - wx) + gather(y0 + 1.0, x0 + 1.0) * wx
    return top * (1.0 - wy) + bottom * wy


def elastic_points(height: int, width: int) -> np.ndarray:
    """The three (x, y) points the reference perturbs for its random affine map."""
    cx, cy = width // 2, height // 2
    s = min(height, width) // 3
    return np.array([[cx + s, cy + s], [cx + s, cy - s], [cx - s, cy - s]], dtype=np.float64)


def elastic_fields(F, key, batch, height: int, width: int, alpha: float, sigma: float, affine: float):
    """Per-image random fields of the elastic transform: the inverse affine map (B, 6) as
    (a, b, c, d, e, f) with input x = a x + b y + c, y = d x + e y + f, and displacements dx, dy
    (B, H, W) = alpha * gaussian(uniform(-1, 1), sigma, mode="reflect", truncate=3)."""
    points = elastic_points(height, width)
    moved = _const(F, points)[None] + _rng.uniform(F, _rng.fold_in(F, key, 0), 0, (batch, 3, 2), -affine, affine)
    # cv2.getAffineTransform(points, moved): M^T = P^-1 @ moved with P the points in homogeneous rows.
    solve = _const(F, np.linalg.inv(np.concatenate([points, np.ones((3, 1))], axis=1)))
    m = F.einsum("ij,bjk->bik", solve, moved)  # (B, 3, 2): columns are the x and y rows of M
    a, b, c = m[:, 0, 0], m[:, 1, 0], m[:, 2, 0]
    d, e, f = m[:, 0, 1], m[:, 1, 1], m[:, 2, 1]
    # warpAffine maps each output pixel through M's inverse.
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    inverse = F.stack([ia, ib, -(ia * c + ib * f), id_, ie, -(id_ * c + ie * f)], axis=1)
    noise = _rng.uniform(F, _rng.fold_in(F, key, 1), 0, (batch, height, width, 2), -1.0, 1.0)
    smooth = separable(F, noise, gaussian_matrix(height, sigma, 3.0, "reflect"),
                       gaussian_matrix(width, sigma, 3.0, "reflect")) * alpha
    return inverse, smooth[..., 0], smooth[..., 1]


def elastic_apply(F, images, inverse, dx, dy):
    """The reference's two resamplings: cv2.warpAffine (bilinear, REFLECT_101) through the inverse
    affine map, then map_coordinates(order=1, mode="reflect") at (y + dy, x + dx)."""
    _, height, width, _ = images.shape
    ys = F.arange(height, dtype="float32")[None, :, None]
    xs = F.arange(width, dtype="float32")[None, None, :]
    t = [F.reshape(inverse[:, k], (-1, 1, 1)) for k in range(6)]
    warped = bilinear(F, images, t[3] * xs + t[4] * ys + t[5], t[0] * xs + t[1] * ys + t[2], "mirror")
    return bilinear(F, warped, ys + dy, xs + dx, "reflect")


def elastic_transform(F, images, key, alpha: float, sigma: float, affine: float):
    _, height, width, _ = images.shape
    inverse, dx, dy = elastic_fields(F, key, F.shape(images)[0], height, width, alpha, sigma, affine)
    return elastic_apply(F, images, inverse, dx, dy)
