"""Common corruptions of Hendrycks & Dietterich (2019), "Benchmarking Neural Network Robustness to
Common Corruptions and Perturbations" (CIFAR-10-C, ImageNet-C), batched and seeded in `keras.ops`.

`corrupt(images, name, severity, seed)` applies one of the 15 benchmark corruptions
(`CORRUPTIONS`) or the 4 held-out ones (`HELD_OUT`) at severity 1..5 to a whole batch, with no
Python loop over images: it runs under TensorFlow and JAX, eagerly, inside `tf.data` maps and
on device, and a seed gives the same images on every backend (`kzoo.augment._rng`; float
rounding differences between backends can flip a rare discrete choice, e.g. a JPEG coefficient).

Parameters are the published ones (hendrycks/robustness `make_cifar_c.py` and
`make_imagenet_c.py`): the CIFAR set for images up to 64 px (the geometric mean of height and
width), the ImageNet set above. Parameters measured in pixels (blur sigmas and radii, glass
blur's shuffle distance, motion and snow streak lengths, elastic amplitudes and smoothing,
spatter's blob sizes) are scaled by k = size / 32 or size / 224, with two compensations so that
the look, not just the kernel, scales: elastic's alpha by about k^2 and spatter's noise by about
k (a k times wider blur of white noise has about 1/k of its amplitude; `noise_gain` is exact).
Zoom factors, the pixelate ratio, and the fog and frost fractals (generated at the image's size)
are relative already and used as published.

Glass blur runs the reference's raster loop of pixel "swaps" as it behaves, batched: its swap
statement, on numpy views, copies the neighbour's pixel and leaves the neighbour as it was
(`corruptions_blur.glass_pass`), and that is what the published CIFAR-10-C files hold.

What is not the reference's code (each function's docstring says more):
  * motion blur (and snow's) is imagecorruptions' numpy re-implementation of ImageMagick's;
  * frost uses procedural frost textures (seeded plasma fractals) instead of six photographs;
  * spatter's water drops approximate OpenCV's Canny / distance transform / equalisation;
  * JPEG is a DCT quantisation in `keras.ops` (libjpeg's tables, 4:2:0, float arithmetic);
  * shot noise draws Poisson counts exactly below a mean of 16 and by a rounded normal above;
  * outputs are float (no 8-bit rounding) except JPEG, glass blur's intermediate and snow's layer.

Example:
    >>> from kzoo.augment.corruptions import CORRUPTIONS, corrupt
    >>> images = keras.ops.full((8, 32, 32, 3), 128.0)
    >>> foggy = corrupt(images, "fog", severity=3, seed=0)           # (8, 32, 32, 3) in [0, 255]
    >>> all_5 = {s: corrupt(images, "gaussian_noise", s, seed=1) for s in range(1, 6)}
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from kzoo.augment import _rng
from kzoo.augment import corruptions_blur as blur
from kzoo.augment import corruptions_digital as digital
from kzoo.augment import corruptions_weather as weather
from kzoo.augment._backend import KERAS_OPS, ops_for
from kzoo.augment.corruption_names import CORRUPTIONS, HELD_OUT
from kzoo.errors import KzooError

MIN_SIDE = 8  # JPEG's block; the smallest image any corruption here is defined for
CIFAR_MAX_SIZE = 64

# Published parameters per severity 1..5: (CIFAR 32x32, ImageNet 224x224).
PARAMS: dict[str, tuple[list, list]] = {
    "gaussian_noise": ([0.04, 0.06, 0.08, 0.09, 0.10], [0.08, 0.12, 0.18, 0.26, 0.38]),
    "shot_noise": ([500, 250, 100, 75, 50], [60, 25, 12, 5, 3]),
    "impulse_noise": ([0.01, 0.02, 0.03, 0.05, 0.07], [0.03, 0.06, 0.09, 0.17, 0.27]),
    "speckle_noise": ([0.06, 0.1, 0.12, 0.16, 0.2], [0.15, 0.2, 0.35, 0.45, 0.6]),
    "gaussian_blur": ([0.4, 0.6, 0.7, 0.8, 1.0], [1, 2, 3, 4, 6]),
    # (sigma, max_delta, iterations)
    "glass_blur": ([(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],
                   [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]),
    # (radius, alias_blur)
    "defocus_blur": ([(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],
                     [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]),
    # (radius, sigma)
    "motion_blur": ([(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],
                    [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]),
    # np.arange(start, stop, step) of zoom factors, evaluated as published
    "zoom_blur": ([(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)],
                  [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)]),
    # (loc, scale, zoom, threshold, motion radius, motion sigma, keep)
    "snow": ([(0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
              (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)],
             [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
              (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)]),
    # (keep, frost amount)
    "frost": ([(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],
              [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]),
    # (strength, wibble decay)
    "fog": ([(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],
            [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)]),
    "brightness": ([0.05, 0.1, 0.15, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4, 0.5]),
    "contrast": ([0.75, 0.5, 0.4, 0.3, 0.15], [0.4, 0.3, 0.2, 0.1, 0.05]),
    # (alpha, sigma, affine) in pixels: published as fractions of 32, and of 244 (sic) for ImageNet
    "elastic_transform": (
        [tuple(32 * v for v in c) for c in
         [(0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03)]],
        [tuple(244 * v for v in c) for c in
         [(2, 0.7, 0.1), (2, 0.08, 0.2), (0.05, 0.01, 0.02), (0.07, 0.01, 0.02), (0.12, 0.01, 0.02)]]),
    "pixelate": ([0.95, 0.9, 0.85, 0.75, 0.65], [0.6, 0.5, 0.4, 0.3, 0.25]),
    "jpeg_compression": ([80, 65, 58, 50, 40], [25, 18, 15, 10, 7]),
    # (loc, scale, sigma, threshold, amount or mud sigma, mud)
    "spatter": ([(0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
                 (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1)],
                [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
                 (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)]),
    "saturate": ([(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],
                 [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)]),
}


def parameters(name: str, severity: int, height: int, width: int) -> tuple[Any, float]:
    """The published parameters for this image size and the size scale (size / 32 or / 224),
    before any scaling: see the module docstring for which are scaled."""
    size = math.sqrt(height * width)
    cifar = size <= CIFAR_MAX_SIZE
    params = PARAMS[name][0 if cifar else 1][severity - 1]
    return params, size / (32.0 if cifar else 224.0)


# ----------------------------------------------------------------------------- noise
def poisson(F, key, lam, exact_below: float = 16.0, terms: int = 48):
    """Poisson counts with mean `lam` (float tensor): inversion of the CDF over `terms` terms where
    lam < `exact_below` (the tail beyond is below 1e-9), a rounded normal N(lam, lam) above (its
    skew 1 / sqrt(lam) < 0.25 is the only difference). Fixed work, no data-dependent loop."""
    u = _rng.uniform(F, _rng.fold_in(F, key, 0), 0, _shape(F, lam))
    small = F.minimum(lam, exact_below)
    term = F.exp(-small)
    cdf, count = term, F.zeros_like(lam)
    for k in range(terms):
        count = count + F.cast(u > cdf, "float32")
        term = term * small / float(k + 1)
        cdf = cdf + term
    z = _rng.normal(F, _rng.fold_in(F, key, 1), 0, _shape(F, lam))
    large = F.maximum(F.round(lam + F.sqrt(lam) * z), 0.0)
    return F.where(lam < exact_below, count, large)


def _shape(F, x):
    return (F.shape(x)[0],) + tuple(x.shape[1:])


def _gaussian_noise(F, x, key, c, scale):
    return x + c * _rng.normal(F, key, 0, _shape(F, x))


def _shot_noise(F, x, key, c, scale):
    return poisson(F, key, x * float(c)) / float(c)


def _impulse_noise(F, x, key, c, scale):
    """skimage's random_noise(mode="s&p"): each value (of each channel) replaced with probability
    `c`, by 1 or 0 with even odds."""
    u = _rng.uniform(F, key, 0, (2,) + _shape(F, x))
    return F.where(u[0] < c, F.cast(u[1] < 0.5, "float32"), x)


def _speckle_noise(F, x, key, c, scale):
    return x + x * c * _rng.normal(F, key, 0, _shape(F, x))


# ----------------------------------------------------------------------------- dispatch
def _px(value: float, scale: float) -> int:
    """A length in whole pixels, scaled to the image size, at least 1."""
    return max(1, round(value * scale))


# name -> fn(F, images in [0, 1], key, published parameters, size scale k) -> images (unclipped).
_IMPLS: dict[str, Callable] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "gaussian_blur": lambda F, x, key, c, k: blur.gaussian_blur(F, x, c * k),
    "glass_blur": lambda F, x, key, c, k: blur.glass_blur(F, x, key, c[0] * k, _px(c[1], k), c[2]),
    "defocus_blur": lambda F, x, key, c, k: blur.defocus_blur(F, x, c[0] * k, c[1]),
    "motion_blur": lambda F, x, key, c, k: blur.motion_blur(
        F, x, _rng.uniform(F, key, 0, (F.shape(x)[0],), -45.0, 45.0), _px(c[0], k), c[1] * k),
    "zoom_blur": lambda F, x, key, c, k: blur.zoom_blur(F, x, list(np.arange(*c))),
    "pixelate": lambda F, x, key, c, k: blur.pixelate(F, x, c),
    # Smoothing white noise k times wider divides its amplitude by about k: alpha grows by k
    # times that so that displacements, like the affine jitter, scale by k.
    "elastic_transform": lambda F, x, key, c, k: blur.elastic_transform(
        F, x, key, c[0] * k * blur.noise_gain(c[1], k, 3.0), c[1] * k, c[2] * k),
    "snow": lambda F, x, key, c, k: weather.snow(F, x, key, c, k),
    "frost": lambda F, x, key, c, k: weather.frost(F, x, key, *c),
    "fog": lambda F, x, key, c, k: weather.fog(F, x, key, *c),
    "spatter": lambda F, x, key, c, k: weather.spatter(F, x, key, c, k),
    "brightness": lambda F, x, key, c, k: digital.brightness(F, x, c),
    "contrast": lambda F, x, key, c, k: digital.contrast(F, x, c),
    "saturate": lambda F, x, key, c, k: digital.saturate(F, x, c),
    "jpeg_compression": lambda F, x, key, c, k: digital.jpeg_compression(F, x, c),
}


def check(name: str, severity: int, shape: tuple | None = None) -> None:
    """Raises a one-line KzooError for an unknown name, a severity outside 1..5, or images that
    are not (N, H, W, 3) with H and W at least MIN_SIDE."""
    known = CORRUPTIONS + HELD_OUT
    if name not in known:
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KzooError(f"corrupt: unknown corruption {name!r}; {hint}known: {', '.join(known)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= 5:
        raise KzooError(f"corrupt: severity={severity!r}; expected an integer from 1 to 5")
    if shape is not None:
        if len(shape) != 4 or shape[-1] != 3:
            raise KzooError(f"corrupt: images of shape {tuple(shape)}; expected a batch (N, H, W, 3)")
        if shape[1] is None or shape[2] is None or min(shape[1], shape[2]) < MIN_SIDE:
            raise KzooError(f"corrupt: {name} needs images of at least {MIN_SIDE}x{MIN_SIDE} pixels with a "
                            f"static size; got {shape[1]}x{shape[2]}")


def _corrupt(F, images, name: str, severity: int, key):
    _, height, width, _ = images.shape
    params, scale = parameters(name, severity, height, width)
    key = _rng.fold_in(F, key, (CORRUPTIONS + HELD_OUT).index(name))
    out = _IMPLS[name](F, images / 255.0, key, params, scale)
    return F.clip(out, 0.0, 1.0) * 255.0


_JIT: dict = {}


def corrupt(images: Any, name: str, severity: int, seed: Any = 0) -> Any:
    """Corrupts a batch of float images in [0, 255], (N, H, W, 3), with corruption `name` at
    `severity` (1..5); returns the same shape and dtype, in [0, 255].

    `seed` (an int, or an int tensor of shape () or (2,)) fixes every random draw: the same seed
    gives the same images under TensorFlow and JAX. Each image gets its own random draws.
    Raises KzooError for an unknown `name` (with close matches), a severity outside 1..5, or
    images that are not (N, H, W, 3) of at least 8x8 pixels.

    Example:
        >>> x = keras.ops.convert_to_tensor(np.random.uniform(0, 255, (4, 32, 32, 3)).astype("float32"))
        >>> corrupt(x, "motion_blur", 2, seed=7).shape
        (4, 32, 32, 3)
    """
    check(name, severity)
    severity = int(severity)
    F = ops_for(images)
    images = F.convert_to_tensor(images)
    check(name, severity, tuple(images.shape))
    in_dtype = keras.backend.standardize_dtype(images.dtype)
    x = F.cast(images, "float32")
    key = _rng.make_key(F, seed)
    compiler = _eager_compiler(F, x)
    if compiler is not None:
        # Eager JAX or TensorFlow would dispatch op by op (JAX also compiles each op): compile the
        # whole corruption once per name, severity and shape instead (TF: 1.8-2.6x faster for 250
        # CIFAR images, fog, glass blur, shot noise and JPEG measured).
        cache_key = (name, severity, tuple(x.shape))
        if cache_key not in _JIT:
            _JIT[cache_key] = compiler(lambda xs, k: _corrupt(KERAS_OPS, xs, name, severity, k))
        out = _JIT[cache_key](x, key)
    else:
        out = _corrupt(F, x, name, severity, key)
    if in_dtype != "float32":
        if "int" in in_dtype:
            out = F.round(out)
        out = F.cast(out, in_dtype)
    return out


class _RetracingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


def _quiet_retracing_warning() -> None:
    # Each (corruption, severity, shape) is its own tf.function by design, traced once; TensorFlow
    # counts those first traces together and warns of "retracing" after five (seen under
    # `kzoo robustness`). Only that message is dropped, and only once the TF path is used.
    tf_logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _RetracingFilter) for f in tf_logger.filters):
        tf_logger.addFilter(_RetracingFilter())


def _eager_compiler(F, x):
    """jax.jit or tf.function when `corrupt` is called eagerly on the Keras backend, else None
    (inside a jit, a tf.function or a tf.data map the caller's compiler already applies)."""
    if F is not KERAS_OPS:
        return None
    if keras.backend.backend() == "jax":
        from keras.src.utils.jax_utils import is_in_jax_tracing_scope

        if is_in_jax_tracing_scope(x):
            return None
        import jax

        return jax.jit
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return None
        _quiet_retracing_warning()
        return lambda fn: tf.function(fn, jit_compile=False, reduce_retracing=True)
    return None


__all__ = ("CORRUPTIONS", "HELD_OUT", "PARAMS", "corrupt", "parameters")
