"""Data sources and tf.data pipelines for kzoo.

Example:
    >>> import kzoo.data
    >>> train = kzoo.data.load("sample", "train", val_split=0.1, batch_size=64)  # doctest: +SKIP
    >>> images, labels = next(iter(train.dataset))  # float32 [0, 255] NHWC, one-hot float32

Importing this package does not import TensorFlow: `load` and `to_numpy` do, on first use.
See docs/data.md for sources, layouts, caching, splits and the corrupt-file policy.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "load": "kzoo.data.api",
    "to_numpy": "kzoo.data.api",
    "DataBundle": "kzoo.data.api",
    "available_splits": "kzoo.data.api",
    "split_indices": "kzoo.data.splits",
    "gtsrb_tracks": "kzoo.data.splits",
    "cache_dir": "kzoo.data.archives",
    "sample_archive": "kzoo.data.sample",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'kzoo.data' has no attribute {name!r}")
