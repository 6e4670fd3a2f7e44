"""numpy / scipy / PIL references for the corruption tests, one image at a time, written from the
definitions in Hendrycks & Dietterich's `make_cifar_c.py` / `make_imagenet_c.py` (skimage, cv2 and
ImageMagick calls replaced by their scipy / numpy equivalents) and imagecorruptions' motion blur.

Images are float (H, W, 3) in [0, 255]; every function returns float in [0, 255].
"""

import colorsys
import io
import math

import numpy as np
from PIL import Image
from scipy import ndimage


def gaussian_blur(x, sigma):
    """skimage.filters.gaussian(x / 255, sigma, multichannel=True): scipy, mode nearest, truncate 4."""
    out = ndimage.gaussian_filter(x / 255.0, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)
    return np.clip(out, 0, 1) * 255


def _cv2_gaussian_taps(ksize, sigma):
    t = np.arange(ksize) - (ksize - 1) / 2.0
    taps = np.exp(-t ** 2 / (2 * sigma ** 2))
    return taps / taps.sum()


def disk(radius, alias_blur):
    """The paper's `disk`: aliased disk on [-8, 8]^2 (or [-r, r]^2), cv2.GaussianBlur 3x3 / 5x5."""
    if radius <= 8:
        grid, ksize = np.arange(-8, 9), 3
    else:
        grid, ksize = np.arange(-radius, radius + 1), 5
    xx, yy = np.meshgrid(grid, grid)
    aliased = ((xx ** 2 + yy ** 2) <= radius ** 2).astype(np.float64)
    aliased /= aliased.sum()
    taps = _cv2_gaussian_taps(ksize, alias_blur)
    out = ndimage.correlate1d(aliased, taps, axis=0, mode="mirror")  # cv2's default REFLECT_101
    return ndimage.correlate1d(out, taps, axis=1, mode="mirror")


def defocus_blur(x, radius, alias_blur):
    """cv2.filter2D(x / 255, -1, disk) per channel (REFLECT_101 = scipy "mirror")."""
    kernel = disk(radius, alias_blur)
    out = np.stack([ndimage.correlate(x[..., c] / 255.0, kernel, mode="mirror") for c in range(3)], axis=-1)
    return np.clip(out, 0, 1) * 255


def _shift(image, dx, dy):
    """imagecorruptions' `shift`: np.roll, then the wrapped band refilled with the edge row/column."""
    out = image
    if dx < 0:
        out = np.roll(out, shift=image.shape[1] + dx, axis=1)
        out[:, dx:] = out[:, dx - 1:dx]
    elif dx > 0:
        out = np.roll(out, shift=dx, axis=1)
        out[:, :dx] = out[:, dx:dx + 1]
    if dy < 0:
        out = np.roll(out, shift=image.shape[0] + dy, axis=0)
        out[dy:, :] = out[dy - 1:dy, :]
    elif dy > 0:
        out = np.roll(out, shift=dy, axis=0)
        out[:dy, :] = out[dy:dy + 1, :]
    return out


def motion_blur(x, radius, sigma, angle):
    """imagecorruptions' `_motion_blur` (its numpy version of ImageMagick's MotionBlurImage)."""
    width = 2 * radius + 1
    kernel = np.exp(-np.arange(width) ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    point = (width * np.sin(np.deg2rad(angle)), width * np.cos(np.deg2rad(angle)))
    hypot = math.hypot(*point)
    out = np.zeros_like(x, dtype=np.float64)
    for i in range(width):
        dy = -math.ceil(((i * point[0]) / hypot) - 0.5)
        dx = -math.ceil(((i * point[1]) / hypot) - 0.5)
        if abs(dy) >= x.shape[0] or abs(dx) >= x.shape[1]:
            break
        out = out + kernel[i] * _shift(x.copy(), dx, dy)
    return np.clip(out, 0, 255)


def clipped_zoom(img, factor):
    """The paper's `clipped_zoom` (centre crop, scipy zoom order 1, centre trim), per axis."""
    h, w = img.shape[:2]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    out = ndimage.zoom(img[top:top + ch, left:left + cw], (factor, factor, 1), order=1)
    trim_top, trim_left = (out.shape[0] - h) // 2, (out.shape[1] - w) // 2
    return out[trim_top:trim_top + h, trim_left:trim_left + w]


def zoom_blur(x, factors):
    x = (x / 255.0).astype(np.float64)
    out = np.zeros_like(x)
    for factor in factors:
        out += clipped_zoom(x, factor)
    return np.clip((x + out) / (len(factors) + 1), 0, 1) * 255


def pixelate(x, ratio):
    """PIL BOX down to int(size * ratio) and back up (8-bit, as the paper's PIL images are)."""
    h, w = x.shape[:2]
    im = Image.fromarray(x.astype(np.uint8))
    im = im.resize((int(w * ratio), int(h * ratio)), Image.BOX).resize((w, h), Image.BOX)
    return np.asarray(im).astype(np.float64)


def jpeg(x, quality):
    """Pillow's JPEG round trip at `quality` (the paper's jpeg_compression)."""
    buffer = io.BytesIO()
    Image.fromarray(x.astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer)).astype(np.float64)


def _hsv_map(x, fn):
    out = np.empty_like(x, dtype=np.float64)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            h, s, v = colorsys.rgb_to_hsv(*(x[i, j] / 255.0))
            out[i, j] = colorsys.hsv_to_rgb(*fn(h, s, v))
    return np.clip(out, 0, 1) * 255


def brightness(x, c):
    return _hsv_map(x, lambda h, s, v: (h, s, min(max(v + c, 0.0), 1.0)))


def saturate(x, c):
    return _hsv_map(x, lambda h, s, v: (h, min(max(s * c[0] + c[1], 0.0), 1.0), v))


def contrast(x, c):
    x = x / 255.0
    means = x.mean(axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def plasma_fractal(uniforms, mapsize, decay):
    """The paper's diamond-square `plasma_fractal`, with its np.random.uniform(-w, w) draws replaced
    by `uniforms` (per level, [0, 1) arrays (3, n, n): square centres, then the two diamond sets)."""
    maparray = np.zeros((mapsize, mapsize), dtype=np.float64)
    stepsize, wibble, level = mapsize, 100.0, 0

    def wibbledmean(array, u):
        return array / 4 + wibble * (wibble * (2 * u - 1))

    while stepsize >= 2:
        half = stepsize // 2
        u = uniforms[level]
        cornerref = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        squareaccum = cornerref + np.roll(cornerref, shift=-1, axis=0)
        squareaccum += np.roll(squareaccum, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(squareaccum, u[0])
        drgrid = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ulgrid = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        ltsum = drgrid + np.roll(drgrid, 1, axis=0) + ulgrid + np.roll(ulgrid, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(ltsum, u[1])
        ttsum = drgrid + np.roll(drgrid, 1, axis=1) + ulgrid + np.roll(ulgrid, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(ttsum, u[2])
        stepsize //= 2
        wibble /= decay
        level += 1
    maparray -= maparray.min()
    return maparray / maparray.max()


def fog(x, plasma, strength):
    x = x / 255.0
    max_val = x.max()
    x = x + strength * plasma[: x.shape[0], : x.shape[1], None]
    return np.clip(x * max_val / (max_val + strength), 0, 1) * 255


def elastic_apply(x, inverse, dx, dy):
    """The paper's last two steps given its random draws: cv2.warpAffine (bilinear, REFLECT_101)
    through the inverse affine map (a, b, c, d, e, f), then map_coordinates(order=1, "reflect")."""
    a, b, c, d, e, f = inverse
    # scipy works in (row, col): input (r, c) = [[e, d], [b, a]] @ (r, c) + (f, c).
    matrix = np.array([[e, d], [b, a]])
    offset = np.array([f, c])
    x = x / 255.0
    warped = np.stack([ndimage.affine_transform(x[..., k], matrix, offset, order=1, mode="mirror")
                       for k in range(3)], axis=-1)
    rows, cols = np.meshgrid(np.arange(x.shape[0]), np.arange(x.shape[1]), indexing="ij")
    out = np.stack([ndimage.map_coordinates(warped[..., k], [rows + dy, cols + dx], order=1, mode="reflect")
                    for k in range(3)], axis=-1)
    return np.clip(out, 0, 1) * 255
