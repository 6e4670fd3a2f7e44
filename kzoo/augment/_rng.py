"""A counter-based random number generator written in integer `keras.ops`.

Why not `keras.random`: its ops take a `SeedGenerator` or a Python int, not a seed tensor, so a
batch cannot be given its own seed inside a parallel `tf.data` map, and TF and JAX draw different
numbers. Hashing (key, stream, index) with a 32-bit integer mixer gives, on every backend, the
same numbers for the same key, so a fixed seed reproduces a batch bit for bit under TF and JAX,
in the pipeline and on the device. Quality is ample for augmentation parameters.

Cost matters more than elegance here: in a tf.data graph every op, however small, costs a few
microseconds, so a draw is ~20 ops whatever its size and layers draw several rows at once.
"""

from __future__ import annotations

import math

import numpy as np

_GOLDEN = 0x9E3779B9
_M1 = 0x7FEB352D
_M2 = 0x846CA68B
_STREAM_SHIFT = 24  # 16M numbers per stream before two streams' counters meet.


def _u32(F, value: int):
    return F.convert_to_tensor(np.uint32(value & 0xFFFFFFFF), dtype="uint32")


def _mix(F, x):
    # "lowbias32" (Chris Wellons' hash prospector): a bijection with strong avalanche.
    x = F.bitwise_xor(x, F.right_shift(x, _u32(F, 16)))
    x = F.multiply(x, _u32(F, _M1))
    x = F.bitwise_xor(x, F.right_shift(x, _u32(F, 15)))
    x = F.multiply(x, _u32(F, _M2))
    return F.bitwise_xor(x, F.right_shift(x, _u32(F, 16)))


def make_key(F, seed):
    """A hashed uint32 key (2,) from an int, or an int tensor of shape () or (2,) (e.g. a
    SeedGenerator state; consecutive states give unrelated keys)."""
    if isinstance(seed, (int, np.integer)):
        words = np.array([int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF], dtype=np.uint32)
        seed = F.convert_to_tensor(words, dtype="uint32")
    else:
        # Casting an int64 seed state (TF's SeedGenerator) to uint32 wraps modulo 2**32.
        seed = F.cast(F.convert_to_tensor(seed), "uint32")
        if len(seed.shape) == 0:
            seed = F.stack([seed, _u32(F, 0)])
        seed = F.reshape(seed, (2,))
    a = _mix(F, F.add(seed[0], _u32(F, _GOLDEN)))
    b = _mix(F, F.bitwise_xor(F.add(seed[1], _u32(F, 0x632BE5AB)), a))
    return F.stack([a, b])


def fold_in(F, key, data: int):
    """A new key derived from `key` and a Python int, e.g. one per sub-layer or round."""
    a = _mix(F, F.add(key[0], _u32(F, (data + 1) * _GOLDEN)))
    return F.stack([a, _mix(F, F.bitwise_xor(key[1], a))])


def bits(F, key, stream: int, shape):
    """uint32 random bits of `shape` (its dims may include a dynamic tensor); stream < 256."""
    count = 1
    for dim in shape:
        count = count * dim
    index = F.cast(F.arange(count), "uint32") if isinstance(count, int) else F.cast(F.arange(0, count, 1), "uint32")
    counter = F.add(index, _u32(F, stream << _STREAM_SHIFT))
    h = _mix(F, F.bitwise_xor(F.multiply(counter, _u32(F, _GOLDEN)), key[0]))
    h = _mix(F, F.add(h, key[1]))
    return F.reshape(h, shape)


def uniform(F, key, stream: int, shape, minval: float = 0.0, maxval: float = 1.0):
    """float32 uniform in [minval, maxval)."""
    # The top 24 bits fit a float32 mantissa exactly, so the unit value is < 1.
    u = F.cast(F.right_shift(bits(F, key, stream, shape), _u32(F, 8)), "float32") * (1.0 / 16777216.0)
    return u if (minval, maxval) == (0.0, 1.0) else u * (maxval - minval) + minval


def _box_muller(F, u1, u2):
    return F.sqrt(-2.0 * F.log(1.0 - u1)) * F.cos((2.0 * math.pi) * u2)


def normal(F, key, stream: int, shape):
    """float32 standard normal (Box-Muller)."""
    u = uniform(F, key, stream, (2,) + tuple(shape))
    return _box_muller(F, u[0], u[1])


def randint(F, key, stream: int, shape, maxval: int):
    """int32 uniform in [0, maxval)."""
    return _to_int(F, uniform(F, key, stream, shape), maxval)


def _to_int(F, u, maxval):
    return F.minimum(F.cast(F.floor(u * maxval), "int32"), maxval - 1)


def bernoulli(F, key, stream: int, shape, p: float):
    """bool, True with probability p."""
    return F.less(uniform(F, key, stream, shape), p)


def gamma(F, key, stream: int, shape, alpha: float):
    """float32 Gamma(alpha, 1) by Marsaglia-Tsang, all tries drawn at once (no data-dependent loop).

    Each try is accepted with probability > 0.95 for alpha >= 1; 8 tries leave a failure chance
    below 1e-10, in which case the distribution's mode-ish value `d` is used.
    """
    tries = 8
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    u = uniform(F, key, stream, (4,) + tuple(shape) + (tries,))
    z = _box_muller(F, u[0], u[1])
    v = (1.0 + c * z) ** 3
    safe_v = F.maximum(v, 1e-12)
    ok = F.logical_and(v > 0.0, F.log(1.0 - u[2]) < 0.5 * z * z + d - d * safe_v + d * F.log(safe_v))
    first = F.argmax(F.cast(ok, "int32"), axis=-1)
    picked = F.sum(F.one_hot(first, tries, dtype="float32") * (d * safe_v), axis=-1)
    sample = F.where(F.any(ok, axis=-1), picked, d)
    if boost:
        # Gamma(a) = Gamma(a + 1) * U ** (1 / a), U from the last try's spare uniform.
        sample = sample * F.power(1.0 - u[3][..., 0], 1.0 / alpha)
    return sample


def beta(F, key, stream: int, shape, alpha: float, beta_: float | None = None):
    """float32 Beta(alpha, beta_) (beta_ defaults to alpha); uses streams `stream` and `stream + 1`.
    Beta(1, 1) is drawn as a uniform."""
    beta_ = alpha if beta_ is None else beta_
    if alpha == 1.0 and beta_ == 1.0:
        return uniform(F, key, stream, shape)
    x = gamma(F, key, stream, shape, alpha)
    y = gamma(F, key, stream + 1, shape, beta_)
    return x / F.maximum(x + y, 1e-12)


def permutation(F, key, stream: int, n):
    """A random permutation of range(n) (int32), by sorting random keys."""
    return F.cast(F.argsort(bits(F, key, stream, (n,))), "int32")
