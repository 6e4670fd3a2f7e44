"""TFDS sources: `tfds:NAME` (e.g. `tfds:cifar100`, `tfds:caltech_birds2011`, `tfds:imagenet2012`).

Without `download=True` nothing touches the network: an unprepared dataset fails at once with a
one-line message saying how to get it (prepare elsewhere and copy the data_dir, download, or use
an image folder), instead of tfds's long download retries on an offline machine.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path

import numpy as np

from kzoo.data.examples import Examples
from kzoo.data.splits import split_indices
from kzoo.errors import KzooError

log = logging.getLogger(__name__)

# Datasets whose "test" split has no labels (label -1): evaluate on "validation" instead.
_UNLABELLED_TEST = {"imagenet2012", "imagenet2012_subset", "imagenet2012_real", "imagenet_resized"}


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())[:300] or type(err).__name__


def _import_tfds():
    # tensorflow-datasets 4.9 imports `importlib_resources` unconditionally when preparing a
    # dataset, but declares it only for Python < 3.9; the stdlib module has what it uses.
    try:
        importlib.import_module("importlib_resources")
    except ImportError:
        importlib.import_module("importlib.resources.abc")  # tfds reads importlib_resources.abc
        sys.modules["importlib_resources"] = importlib.import_module("importlib.resources")
    import tensorflow_datasets as tfds

    return tfds


def default_data_dir() -> str:
    """Where tfds looks when no data_dir is given."""
    return os.environ.get("TFDS_DATA_DIR", str(Path.home() / "tensorflow_datasets"))


def open_builder(name: str, data_dir: str | os.PathLike | None = None, download: bool = False):
    """A prepared tfds builder for `name`; never touches the network unless `download`.

    Example:
        >>> open_builder("cifar10", "/data/tfds").info.splits["test"].num_examples  # doctest: +SKIP
        10000
    """
    tfds = _import_tfds()
    data_dir = str(data_dir) if data_dir is not None else None
    where = data_dir or default_data_dir()
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise KzooError(
            f"unknown TFDS dataset {name!r} (data_dir {where}): check the name in the TFDS catalog "
            "(e.g. tfds:cifar100, tfds:caltech_birds2011), or point --data at an image folder"
        ) from None
    except Exception as err:  # bad config/version strings raise assorted types
        raise KzooError(f"cannot open TFDS dataset {name!r} in {where}: {_one_line(err)}") from None

    if not builder.is_prepared():
        if not download:
            raise KzooError(
                f"TFDS dataset {name!r} is not prepared in {where} (looked for {builder.data_dir}): "
                "run with --download on a machine with internet, or copy the prepared dataset to DATA_DIR, "
                "or point --data at an image folder or archive"
            )
        log.info("downloading and preparing TFDS dataset %s into %s", name, where)
        try:
            builder.download_and_prepare()
        except Exception as err:  # network, checksum and manual-download errors alike
            raise KzooError(
                f"could not download TFDS dataset {name!r} into {where}: {_one_line(err)}; "
                "prepare it on a machine with internet and copy DATA_DIR here, or point --data at an image folder"
            ) from None
    return builder


def split_map(name: str, available: list[str]) -> dict[str, str]:
    """kzoo split -> TFDS split, for the splits this dataset has (without val_split)."""
    mapping = {}
    if "train" in available:
        mapping["train"] = "train"
    if "validation" in available:
        mapping["val"] = "validation"
    base_name = name.split("/")[0].split(":")[0]
    if "test" in available and base_name not in _UNLABELLED_TEST:
        mapping["test"] = "test"
    elif "validation" in available:
        mapping["test"] = "validation"
    return mapping


def tfds_splits(name: str, data_dir: str | os.PathLike | None = None, download: bool = False) -> tuple[str, ...]:
    """The kzoo splits ("train", "val", "test") dataset `name` provides without val_split."""
    mapping = split_map(name, list(open_builder(name, data_dir, download).info.splits.keys()))
    return tuple(s for s in ("train", "val", "test") if s in mapping)


def tfds_examples(
    name: str,
    split: str,
    *,
    val_split: float | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    download: bool = False,
) -> Examples:
    """One split of a TFDS dataset as `Examples` with a lazy dataset of (uint8 image, label).

    Example:
        >>> ex = tfds_examples("cifar10", "test", data_dir="/data/tfds")  # doctest: +SKIP
        >>> ex.num_examples, len(ex.class_names)
        (10000, 10)
    """
    builder = open_builder(name, data_dir, download)
    info = builder.info
    keys = info.supervised_keys
    if not keys or len(keys) < 2 or not all(isinstance(k, str) for k in keys[:2]):
        raise KzooError(
            f"TFDS dataset {name!r} has no (image, label) supervised keys: it is not an image-classification "
            "dataset kzoo can read; export it as an image folder"
        )
    label_key = keys[1]
    label_feature = info.features[label_key]
    class_names = list(getattr(label_feature, "names", None) or [])
    if not class_names:
        raise KzooError(f"TFDS dataset {name!r} label {label_key!r} is not a ClassLabel: expected class ids")

    available = list(info.splits.keys())
    mapping = split_map(name, available)
    wanted = "train" if split == "val" and val_split is not None else split
    if wanted not in mapping:
        fix = "pass val_split=0.1 to hold out part of train" if split == "val" else "use split='val' with val_split"
        missing = {"train": "train", "val": "validation", "test": "test"}[wanted]
        raise KzooError(f"TFDS dataset {name!r} has no {missing} split (splits: {', '.join(available)}): {fix}")
    tfds_split = mapping[wanted]
    if split == "test" and tfds_split == "validation":
        log.info("TFDS dataset %s: evaluating on its labelled 'validation' split as the test split", name)

    total = info.splits[tfds_split].num_examples
    keep = None
    if split != "test" and val_split is not None:
        # A seeded permutation of example indices; the file order is fixed (shuffle_files=False),
        # so the same seed selects the same examples on every run and machine.
        train_idx, val_idx = split_indices(np.zeros(total, dtype=np.int64), val_split, seed)
        keep = np.zeros(total, dtype=bool)
        keep[val_idx if split == "val" else train_idx] = True
    count = int(keep.sum()) if keep is not None else total

    def make_dataset():
        import tensorflow as tf

        ds = builder.as_dataset(split=tfds_split, as_supervised=True, shuffle_files=False)
        if keep is not None:
            table = tf.constant(keep)

            def kept(index, example):
                return tf.gather(table, index)

            def drop_index(index, example):
                return example

            ds = ds.enumerate().filter(kept).map(drop_index)
        return ds

    return Examples(
        class_names=class_names,
        source=f"tfds:{name} {tfds_split} split ({builder.data_dir})",
        make_dataset=make_dataset,
        count=count,
    )
