"""`load` and `to_numpy`: one entry point for every data source kzoo reads.

A source is chosen by its string: None or "sample" (the bundled CIFAR-10 sample), "tfds:NAME",
an image-folder directory, an archive of one (.tar.gz, .tgz, .tar, .zip), or an `.npz` file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kzoo.data.archives import is_archive
from kzoo.data.examples import Examples
from kzoo.data.splits import GroupBy, check_val_split
from kzoo.errors import KzooError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
Source = str | os.PathLike | None


_ANNOUNCED: set[str] = set()


@dataclass(frozen=True)
class DataBundle:
    """A ready pipeline and what a trainer needs to know about it.

    `dataset` yields `(images float32 (B, H, W, 3) in [0, 255], one-hot float32 (B, num_classes))`
    (un-batched elements when `batch_size=None`). `files` lists the image files of a file
    source in dataset order when the split is not shuffled (None for arrays and TFDS), so
    predictions on the test split can be traced back to files. `skipped` names the files left
    out as unreadable.
    """

    dataset: Any
    class_names: list[str]
    num_classes: int
    num_examples: int
    source: str
    split: str
    image_size: tuple[int, int]
    batch_size: int | None
    drop_remainder: bool
    files: tuple[str, ...] | None = None
    skipped: tuple[str, ...] = ()
    preprocessing: Any = None
    class_counts: tuple[int, ...] | None = None  # examples per class in this split, where listed
    native_size: tuple[int, int] | None = None  # the images' own (height, width) before resizing, where known

    @property
    def steps_per_epoch(self) -> int:
        """Batches per pass over the split."""
        if not self.batch_size:
            return self.num_examples
        div = self.num_examples / self.batch_size
        return int(div) if self.drop_remainder else math.ceil(div)


def _positive_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


def _check_args(split: str, image_size: Any, batch_size: Any, num_classes: Any) -> tuple[int, int]:
    if split not in SPLITS:
        raise KzooError(f"split={split!r} is not known: expected one of train, val, test")
    size = (image_size, image_size) if isinstance(image_size, numbers.Integral) else tuple(image_size or ())
    if len(size) != 2 or not all(_positive_int(s) for s in size):
        raise KzooError(f"image_size={image_size!r} is not a size: expected (height, width) positive ints, e.g. (32, 32)")
    if batch_size is not None and not _positive_int(batch_size):
        raise KzooError(f"batch_size={batch_size!r} is not a batch size: expected a positive int, or None for no batching")
    if num_classes is not None and not _positive_int(num_classes):
        raise KzooError(f"num_classes={num_classes!r} is not a class count: expected a positive int or None")
    return int(size[0]), int(size[1])


def _check_limit(limit: Any) -> None:
    if limit is not None and not _positive_int(limit):
        raise KzooError(f"limit={limit!r} is not a count: expected a positive int or None")


def resolve(
    source: Source,
    split: str,
    *,
    val_split: float | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    num_classes: int | None = None,
    group_by: GroupBy = "auto",
) -> Examples:
    """The listed (not yet decoded) examples of one split of `source`.

    Example:
        >>> resolve("sample", "test").num_examples  # doctest: +SKIP
        1000
    """
    from kzoo.data.sample import SAMPLE_NAMES, sample_archive

    if source is None or (isinstance(source, str) and source in SAMPLE_NAMES):
        from kzoo.data.archives import extract
        from kzoo.data.folders import folder_examples

        archive = sample_archive()
        if archive.name not in _ANNOUNCED:  # once per process, not once per split
            _ANNOUNCED.add(archive.name)
            log.info("using the bundled CIFAR-10 sample %s (pass a data source for real training)", archive.name)
        return folder_examples(
            extract(archive), split, val_split=val_split, seed=seed, group_by=group_by,
            source="bundled CIFAR-10 sample (JPEG copy; Krizhevsky 2009)",
        )
    text = os.fspath(source)
    if text.startswith("tfds:"):
        from kzoo.data.tfds_source import tfds_examples

        name = text[len("tfds:"):].strip()
        if not name:
            raise KzooError("data source 'tfds:' names no dataset: expected tfds:NAME, e.g. tfds:cifar10")
        return tfds_examples(name, split, val_split=val_split, seed=seed, data_dir=data_dir, download=download)

    path = Path(text).expanduser()
    if not path.exists():
        hint = f" (for the TFDS dataset write tfds:{text})" if text.isidentifier() else ""
        raise KzooError(
            f"data source {text!r} not found: expected an image folder, an archive (.tar.gz/.tgz/.tar/.zip), "
            f"an .npz file, 'sample' or tfds:NAME; check the path{hint}"
        )
    if path.is_dir():
        from kzoo.data.folders import folder_examples

        return folder_examples(path, split, val_split=val_split, seed=seed, group_by=group_by)
    if is_archive(path):
        from kzoo.data.archives import extract
        from kzoo.data.folders import folder_examples

        return folder_examples(
            extract(path), split, val_split=val_split, seed=seed, group_by=group_by, source=f"archive {path}"
        )
    if path.suffix.lower() == ".npz":
        from kzoo.data.arrays import npz_examples

        return npz_examples(path, split, val_split=val_split, seed=seed, num_classes=num_classes)
    raise KzooError(
        f"data source {text!r} is a {path.suffix or 'extension-less'} file: expected an image folder, "
        "an archive (.tar.gz/.tgz/.tar/.zip) or an .npz file"
    )


def available_splits(
    source: Source = None,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> tuple[str, ...]:
    """The splits ("train", "val", "test") `load(source, split)` can read without `val_split`.

    Example:
        >>> available_splits("sample")
        ('train', 'test')
    """
    from kzoo.data.archives import extract
    from kzoo.data.sample import SAMPLE_NAMES, sample_archive

    if source is None or (isinstance(source, str) and source in SAMPLE_NAMES):
        path = extract(sample_archive())
    elif os.fspath(source).startswith("tfds:"):
        from kzoo.data.tfds_source import tfds_splits

        return tfds_splits(os.fspath(source)[len("tfds:"):].strip(), data_dir, download)
    else:
        path = Path(os.fspath(source)).expanduser()
        if path.is_file() and path.suffix.lower() == ".npz":
            from kzoo.data.arrays import npz_splits

            return npz_splits(path)
        if path.is_file() and is_archive(path):
            path = extract(path)
        if not path.is_dir():
            resolve(source, "train")  # raises the one-line error for this source
    from kzoo.data.folders import find_layout

    splits = find_layout(path)[1]
    return tuple(s for s in ("train", "val", "test") if s in splits) if splits else ("train",)


def _checked(examples: Examples, num_classes: int | None, split: str) -> Examples:
    if num_classes is not None and num_classes != len(examples.class_names):
        raise KzooError(
            f"num_classes={num_classes} does not match {examples.source}: it has {len(examples.class_names)} classes; "
            f"pass num_classes={len(examples.class_names)} or omit it"
        )
    if examples.num_examples == 0:
        raise KzooError(f"the {split} split of {examples.source} has no examples")
    return examples


def _cache_file(
    cache: str, examples: Examples, split: str, size: tuple[int, int], val_split: float | None, seed: int,
    limit: int | None, resize: tuple | None = None, selection: tuple = (None, None),
) -> str:
    # tf.data trusts a cache file by its name alone: make the name say what was cached, so one
    # --cache path serves train, val and test (and other sizes) without mixing them up.
    what = (examples.source, split, size, val_split, seed if (val_split or limit) else None, limit, examples.num_examples)
    if resize is not None:  # only then, so existing cache files keep their names
        what += (resize,)
    if selection != (None, None):  # (classes, fraction): the same count can hold other images
        what += (repr(selection), seed)
    digest = hashlib.sha1(repr(what).encode())
    if examples.paths is not None:
        digest.update("\0".join(examples.paths).encode())
    return f"{cache}.{split}-{size[0]}x{size[1]}-{digest.hexdigest()[:12]}"


def _resolve_augment(augment: Any, num_classes: int, image_size: tuple[int, int], seed: int):
    if augment is None or callable(augment):
        return augment
    if not isinstance(augment, str):
        raise KzooError(f"augment={augment!r} is not usable: expected None, a preset name or a callable(dict) -> dict")
    try:
        from kzoo.augment import get_preset
    except ImportError:
        raise KzooError(f"augment={augment!r} needs kzoo.augment.get_preset, which this install lacks: pass a callable") from None
    return get_preset(augment, num_classes=num_classes, image_size=image_size, seed=seed)


def _listed(source, split, val_split, seed, data_dir, download, num_classes, group_by, limit,
            shots=None, classes=None, fraction=None) -> Examples:
    """The checked, optionally limited examples of one split (shared by `load` and `to_numpy`)."""
    check_val_split(val_split)
    _check_limit(limit)
    examples = resolve(
        source, split, val_split=val_split, seed=seed, data_dir=data_dir, download=download,
        num_classes=num_classes, group_by=group_by,
    )
    examples = examples.select_classes(classes).fraction(fraction, seed)
    return _checked(examples.shots(shots, seed).limit(limit, seed), num_classes, split)


def load(
    source: Source = None,
    split: str = "train",
    *,
    image_size: int | tuple[int, int] = (32, 32),
    batch_size: int | None = 128,
    val_split: float | None = None,
    seed: int = 0,
    augment: str | Callable[[dict], dict] | None = None,
    shuffle: bool | None = None,
    cache: bool | str = True,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    num_classes: int | None = None,
    drop_remainder: bool | None = None,
    group_by: GroupBy = "auto",
    limit: int | None = None,
    preprocessing: Any = None,
    shard: tuple[int, int] | None = None,
    shots: int | None = None,
    classes: str | list | None = None,
    fraction: float | None = None,
) -> DataBundle:
    """Load one split of a data source as a batched, prefetched tf.data pipeline.

    Args:
        source: None/"sample", "tfds:NAME", an image folder, an archive of one, or an .npz.
        split: "train", "val" or "test". With `val_split`, "train"/"val" are a seeded,
            class-stratified split of the training data; otherwise "val" reads a val/ folder.
        image_size: (height, width) every image is resized to (aspect ratio not kept).
        batch_size: examples per batch; None yields un-batched examples (no augmentation).
        val_split: fraction in (0, 1) of the training data held out as "val".
        seed: seeds the split and the shuffle; the same seed gives the same data order.
        augment: None, a preset name for `kzoo.augment.get_preset`, or a callable taking and
            returning `{"images", "labels"}` batches; applied to the "train" split only.
        shuffle: default True for "train", False otherwise.
        cache: True caches decoded uint8 images in memory (skipped, with a log line, above
            4 GiB), a str caches to that file, False never caches.
        data_dir, download: TFDS data folder and whether tfds may download (needs internet).
        num_classes: expected class count; a mismatch with the data is an error.
        drop_remainder: default True for "train" when it has at least one full batch.
        group_by: split grouping: "auto" (GTSRB tracks for a `gtsrb` tree), None,
            "gtsrb_tracks" or a callable(path) -> group key (folder sources).
        limit: keep a seeded random subset of this many examples (quick runs).
        preprocessing: a `kzoo.weights.Preprocessing` (e.g. `get_preprocessing(model)` of a
            pretrained model) whose interpolation and crop fraction replace the plain resize:
            resize to image_size / crop_pct, then a centre crop of image_size.
        shard: (process index, process count) in a multi-process job: `batch_size` is the job's
            global batch, the dataset yields this process's slice of each (same seed on every
            process, so the job sees a one-process run's batches); incomplete batches are dropped.
        shots: keep this many seeded random images of every class (few-shot splits; `seed` picks them).
        classes: keep these classes only, relabelled 0..k-1 in the order given: names or indices,
            or a string such as "0-4" or "cat,dog" (`Examples.select_classes`).
        fraction: keep a seeded, class-stratified fraction in (0, 1] of the split (set-size studies).

    Returns:
        A `DataBundle` whose `.dataset` yields `(images float32 (B, H, W, 3) in [0, 255],
        one-hot float32 (B, num_classes))`.

    Example:
        >>> train = load("../shared/data/cifar10-jpg.tar.gz", "train", val_split=0.1, augment="basic")  # doctest: +SKIP
        >>> train.num_classes, train.class_names[:2]
        (10, ['airplane', 'automobile'])
    """
    size = _check_args(split, image_size, batch_size, num_classes)
    examples = _listed(source, split, val_split, seed, data_dir, download, num_classes, group_by, limit, shots,
                       classes, fraction)
    n_classes = len(examples.class_names)
    shuffle = split == "train" if shuffle is None else bool(shuffle)
    if drop_remainder is None:
        drop_remainder = split == "train" and batch_size is not None and examples.num_examples >= batch_size
    if shard is not None:
        if batch_size is None or examples.num_examples < batch_size:
            raise KzooError(f"{examples.source}: the {split} split ({examples.num_examples} images) cannot be shared by "
                            f"{shard[1]} processes: it holds less than one global batch of {batch_size}; lower "
                            "--batch-size or use fewer processes")
        drop_remainder = True  # every process must run the same number of steps
    if augment is not None and split != "train":
        log.info("augment=%r is applied to the train split only; %s is left as is", augment, split)
        augment = None
    if augment is not None and batch_size is None:
        raise KzooError("augment needs batches: pass batch_size (augmentations run on whole batches)")
    augment_fn = _resolve_augment(augment, n_classes, size, seed)
    resize = None
    if preprocessing is not None and not preprocessing.is_plain_resize:
        resize = (preprocessing.interpolation, float(preprocessing.crop_pct), preprocessing.crop_mode)
    if isinstance(cache, (str, os.PathLike)):
        cache = _cache_file(os.fspath(cache), examples, split, size, val_split, seed, limit, resize, (classes, fraction))

    from kzoo.data.pipeline import build

    dataset = build(
        examples, image_size=size, batch_size=batch_size, num_classes=n_classes, shuffle=shuffle,
        seed=seed, cache=cache, augment=augment_fn, drop_remainder=bool(drop_remainder), resize=resize, shard=shard,
    )
    return DataBundle(
        dataset=dataset,
        class_names=list(examples.class_names),
        num_classes=n_classes,
        num_examples=examples.num_examples,
        source=examples.source,
        split=split,
        image_size=size,
        batch_size=batch_size,
        drop_remainder=bool(drop_remainder),
        files=tuple(examples.paths) if examples.paths is not None else None,
        skipped=examples.skipped,
        preprocessing=preprocessing,
        class_counts=None if examples.labels is None else tuple(
            int(c) for c in np.bincount(np.asarray(examples.labels, dtype=np.int64), minlength=n_classes)),
        native_size=examples.native_size(),
    )


def to_numpy(
    source: Source = None,
    split: str = "test",
    image_size: int | tuple[int, int] = (32, 32),
    limit: int | None = None,
    *,
    val_split: float | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
    num_classes: int | None = None,
    group_by: GroupBy = "auto",
    classes: str | list | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One split decoded into numpy: (uint8 images (N, H, W, 3), int64 labels (N,), class names).

    Same decoding and resizing as `load`, in source order (no shuffle, no augmentation), so
    `model.fit`/`evaluate` can be fed arrays under any Keras backend. `limit` keeps a seeded
    random subset (all classes, not the first class only); `classes` as in `load`.

    Example:
        >>> x, y, names = to_numpy("sample", "test", (32, 32), limit=256)  # doctest: +SKIP
        >>> x.shape, x.dtype, y.shape
        ((256, 32, 32, 3), dtype('uint8'), (256,))
    """
    size = _check_args(split, image_size, None, num_classes)
    examples = _listed(source, split, val_split, seed, data_dir, download, num_classes, group_by, limit,
                       classes=classes)

    from kzoo.data.pipeline import to_arrays

    x, y = to_arrays(examples, size)
    return x, y, list(examples.class_names)
