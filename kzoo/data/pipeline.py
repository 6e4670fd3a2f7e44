"""The tf.data pipeline: decode -> resize -> cache -> shuffle -> batch -> one-hot -> augment -> prefetch.

Images stay uint8 until after the cache (4x less memory than float32) and become float32 in
[0, 255] after batching, as every kzoo model expects. Augmentation runs on whole batches, after
batching, because the augmentation layers take `{"images", "labels"}` batches (CutMix and MixUp
need several images at once).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Callable

from kzoo.data.examples import Examples
from kzoo.data.images import pil_decode_rgb
from kzoo.errors import KzooError

log = logging.getLogger(__name__)

MEMORY_CACHE_LIMIT = 4 << 30  # bytes of uint8 images cached in RAM when cache=True
SHUFFLE_BUFFER_BYTES = 256 << 20  # a full shuffle of CIFAR-size data, ~1,800 images at 224px
_tf_ready = False

Augment = Callable[[dict[str, Any]], dict[str, Any]]


def tf_module():
    """TensorFlow, imported on first use; under a non-TF Keras backend its GPUs are hidden,
    so tf.data (CPU work) does not reserve the accelerator memory JAX needs.

    Example:
        >>> tf = tf_module(); tf.data.AUTOTUNE  # doctest: +SKIP
        -1
    """
    global _tf_ready
    import tensorflow as tf

    if not _tf_ready:
        _tf_ready = True
        import keras

        if keras.backend.backend() != "tensorflow":
            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # TF already initialised its devices; nothing to change now
                pass
    return tf


def _to_rgb(tf, image):
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels == 1:
        return tf.tile(image, [1, 1, 3])
    if channels == 4:
        return image[..., :3]
    c = tf.shape(image)[-1]  # unknown statically (some TFDS datasets)
    return tf.cond(c == 1, lambda: tf.tile(image[..., :1], [1, 1, 3]), lambda: image[..., :3])


# A checkpoint's interpolation in tf.image terms (tf has no Hamming filter: bilinear is closest).
_TF_METHODS = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "lanczos": "lanczos3",
               "box": "area", "hamming": "bilinear"}


def _planned_resize(tf, image, size: tuple[int, int], resize: tuple[str, float, str]):
    """`kzoo.weights.preprocessing.resize_plan` in tf ops (the image size is only known at run time)."""
    import math

    interpolation, crop_pct, crop_mode = resize
    th, tw = size
    sh, sw = math.floor(th / crop_pct), math.floor(tw / crop_pct)
    if crop_mode == "center" and th == tw:
        h, w = tf.shape(image)[0], tf.shape(image)[1]
        ratio = tf.cast(tf.maximum(h, w), tf.float64) / tf.cast(tf.minimum(h, w), tf.float64)
        new_long = tf.cast(tf.math.floor(sh * ratio), tf.int32)
        rh, rw = tf.where(h <= w, sh, new_long), tf.where(h <= w, new_long, sh)
    else:
        rh, rw = tf.constant(sh), tf.constant(sw)
    resized = tf.image.resize(image, tf.stack([rh, rw]), method=_TF_METHODS[interpolation], antialias=True)
    # Python's and tf's round() both round half to even, as torchvision's centre crop does.
    top = tf.cast(tf.round(tf.cast(rh - th, tf.float64) / 2.0), tf.int32)
    left = tf.cast(tf.round(tf.cast(rw - tw, tf.float64) / 2.0), tf.int32)
    cropped = resized[top : top + th, left : left + tw]
    return tf.ensure_shape(tf.cast(tf.clip_by_value(tf.round(cropped), 0.0, 255.0), tf.uint8), [*size, 3])


def _resize(tf, image, size: tuple[int, int], resize: tuple[str, float, str] | None = None):
    if resize is not None:
        return _planned_resize(tf, image, size, resize)
    if tuple(image.shape[:2]) == tuple(size):
        return image

    def resize():
        resized = tf.image.resize(image, size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    if image.shape[:2].is_fully_defined():
        return resize()
    # Decoded files have no static size; most already have the target size (CIFAR at 32x32),
    # and an antialiased no-op resize costs more than the decode itself.
    same = tf.reduce_all(tf.equal(tf.shape(image)[:2], size))
    return tf.ensure_shape(tf.cond(same, lambda: image, resize), [*size, 3])


def _decoder(tf, size: tuple[int, int], any_pil: bool, resize=None):
    def decode_tf(path):
        return tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)

    def decode_pil(path):
        image = tf.numpy_function(pil_decode_rgb, [path], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [None, None, 3])

    def decode(path, use_pil, label):
        if any_pil:
            image = tf.cond(use_pil, lambda: decode_pil(path), lambda: decode_tf(path))
        else:
            image = decode_tf(path)
        image = tf.ensure_shape(image, [None, None, 3])
        return _resize(tf, image, size, resize), label

    return decode


def base_dataset(
    examples: Examples,
    image_size: tuple[int, int],
    shuffle_seed: int | None = None,
    exact_size: bool = True,
    resize: tuple[str, float, str] | None = None,
    shard: tuple[int, int, int] | None = None,
):
    """Un-batched (uint8 image at `image_size`, int64 label) in source order, or with the file
    list shuffled every epoch when `shuffle_seed` is given (file sources).

    `resize` = (interpolation, crop_pct, crop_mode) resizes and centre-crops as a checkpoint's
    preprocessing says (`kzoo.weights.preprocessing.resize_plan`); None is a plain antialiased
    bilinear resize to `image_size`.

    `shard` = (global batch, process index, process count): of every global batch of files this
    process decodes only its slice (file sources; see `keep_shard`).

    With `exact_size`, the dataset has a known cardinality of `examples.num_examples` (Keras
    then knows the steps per epoch; unknown cardinality makes `fit` warn and lose its progress
    total), even where an image is dropped as undecodable (see below)."""
    tf = tf_module()
    autotune = tf.data.AUTOTUNE
    if examples.paths is not None:
        use_pil = [d == "pil" for d in examples.decoders]
        ds = tf.data.Dataset.from_tensor_slices((examples.paths, use_pil, examples.labels))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(examples.paths), seed=shuffle_seed, reshuffle_each_iteration=True)
        n = examples.num_examples
        if shard is not None:
            ds = keep_shard(ds, *shard)
            n = n // shard[0] * (shard[0] // shard[2])
        ds = ds.map(_decoder(tf, image_size, any(use_pil), resize), num_parallel_calls=autotune)
        # Files were sniffed when listed; damage deeper inside a file surfaces only here. Such an
        # image is dropped with tf's logged warning rather than ending the epoch, and the epoch
        # keeps its size by wrapping round to its first images (a repeat of an empty dataset ends).
        ds = ds.ignore_errors(log_warning=True)
        return ds.repeat().take(n) if exact_size else ds
    if examples.images is not None:
        ds = tf.data.Dataset.from_tensor_slices((examples.images, examples.labels))
    else:
        ds = examples.make_dataset()
        if exact_size and ds.cardinality() < 0:  # TFDS with a val_split filter: exact count known
            ds = ds.repeat().take(examples.num_examples)

    def prepare(image, label):
        return _resize(tf, _to_rgb(tf, image), image_size, resize), tf.cast(label, tf.int64)

    return ds.map(prepare, num_parallel_calls=autotune)


def _wants_memory_cache(cache: bool | str, n: int, image_size: tuple[int, int]) -> bool:
    if cache is not True:
        return False
    size = n * image_size[0] * image_size[1] * 3
    if size > MEMORY_CACHE_LIMIT:
        log.info(
            "not caching %d images in memory (%.1f GiB > %.0f GiB): pass cache='/fast/disk/file' for a disk cache",
            n, size / 2**30, MEMORY_CACHE_LIMIT / 2**30,
        )
        return False
    return True


def build(
    examples: Examples,
    *,
    image_size: tuple[int, int],
    batch_size: int | None,
    num_classes: int,
    shuffle: bool,
    seed: int,
    cache: bool | str,
    augment: Augment | None,
    drop_remainder: bool,
    resize: tuple[str, float, str] | None = None,
    shard: tuple[int, int] | None = None,
):
    """The full pipeline for one split; see the module docstring for the order of stages.

    `shard` = (process index, process count) of a multi-process job: `batch_size` is the job's
    global batch and this process yields its slice of every global batch (`keep_shard`)."""
    tf = tf_module()
    autotune = tf.data.AUTOTUNE
    n = examples.num_examples
    in_memory = _wants_memory_cache(cache, n, image_size)
    cached = in_memory or isinstance(cache, str)
    # Without a cache, shuffling the (cheap) file list each epoch is a full shuffle for free.
    file_shuffle = shuffle and not cached and examples.paths is not None
    # Uncached files are sharded before decoding; anything else after the (seeded) shuffle.
    shard_files = shard is not None and batch_size is not None and not cached and examples.paths is not None
    ds = base_dataset(examples, image_size, shuffle_seed=seed if file_shuffle else None, resize=resize,
                      shard=(batch_size, *shard) if shard_files else None)
    if cached:
        ds = ds.cache("" if in_memory else cache)
    if shuffle and not file_shuffle:
        per_image = image_size[0] * image_size[1] * 3
        buffer = max(1, min(n, max(1024, SHUFFLE_BUFFER_BYTES // per_image)))
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    if shard is not None and batch_size is not None:
        if not shard_files:
            ds = keep_shard(ds, batch_size, *shard)
        batch_size //= shard[1]
        seed += 1_000_003 * shard[0]  # each process draws its own augmentations (process 0: a one-process run's)

    def to_model_inputs(images, labels):
        return tf.cast(images, tf.float32), tf.one_hot(labels, num_classes, dtype=tf.float32)

    if batch_size is None:
        return ds.map(to_model_inputs, num_parallel_calls=autotune).prefetch(autotune)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=autotune)
    ds = ds.map(to_model_inputs, num_parallel_calls=autotune)
    if augment is not None:
        ds = _augmented(tf, ds, augment, seed)
    return ds.prefetch(autotune)


def keep_shard(ds, global_batch: int, index: int, count: int):
    """Of every `global_batch` consecutive elements keep the `index`-th of `count` equal slices (an
    incomplete last group is dropped on every process). All processes shuffle with the same seed,
    so together they see exactly the batches of a one-process run with batch `global_batch`.

    Example:
        >>> tf = tf_module()
        >>> [int(v) for v in keep_shard(tf.data.Dataset.range(10), 4, 1, 2)]
        [2, 3, 6, 7]
    """
    if global_batch % count:
        raise KzooError(f"a global batch of {global_batch} does not split into {count} equal shards: "
                        "give every process the same number of devices")
    local = global_batch // count

    def slice_(*parts):
        sliced = tuple(p[index * local:(index + 1) * local] for p in parts)
        return sliced if len(sliced) > 1 else sliced[0]

    return ds.batch(global_batch, drop_remainder=True).map(slice_).unbatch()


def _accepts_seed(augment: Augment) -> bool:
    target = getattr(augment, "call", augment)
    try:
        return "seed" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def _augmented(tf, ds, augment: Augment, seed: int):
    """Map `augment` over the batches. Augmentations that take `seed=` (kzoo.augment's) get a
    per-batch key from a seeded random stream that changes every epoch: reproducible runs,
    whatever the map's parallelism, without repeating one epoch's draws in the next."""
    name = getattr(augment, "name", None) or getattr(augment, "__name__", type(augment).__name__)

    def run(images, labels, **kwargs):
        out = augment({"images": images, "labels": labels}, **kwargs)
        if not isinstance(out, dict) or "images" not in out or "labels" not in out:
            raise KzooError(
                f"augment {name!r} returned {type(out).__name__}: expected a dict with 'images' and 'labels' "
                "(augmentations take and return {'images': ..., 'labels': ...} batches)"
            )
        return tf.cast(out["images"], tf.float32), tf.cast(out["labels"], tf.float32)

    autotune = tf.data.AUTOTUNE
    # Not converted by AutoGraph: the augmentations are Keras layers / ops code, and a KzooError
    # raised while tracing then reaches the caller as itself, not wrapped in a StagingError.
    run = tf.autograph.experimental.do_not_convert(run)
    if not _accepts_seed(augment):
        return ds.map(run, num_parallel_calls=autotune)
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    @tf.autograph.experimental.do_not_convert
    def run_seeded(batch, key):
        return run(*batch, seed=key)

    return tf.data.Dataset.zip((ds, keys)).map(run_seeded, num_parallel_calls=autotune)


def to_arrays(examples: Examples, image_size: tuple[int, int]):
    """All examples decoded into numpy: (uint8 images (N, H, W, 3), int64 labels (N,))."""
    import numpy as np

    tf = tf_module()
    ds = base_dataset(examples, image_size, exact_size=False).batch(512).prefetch(tf.data.AUTOTUNE)
    xs, ys = [], []
    for x, y in ds.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        return np.zeros((0, *image_size, 3), np.uint8), np.zeros((0,), np.int64)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if len(x) < examples.num_examples:
        log.warning("%d of %d images could not be decoded and were left out", examples.num_examples - len(x), examples.num_examples)
    return x, y
