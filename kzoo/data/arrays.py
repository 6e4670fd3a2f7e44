"""`.npz` sources: arrays `x` (N, H, W[, C]) and `y` (N,) of integer labels.

Optional keys: `x_train`/`y_train` (same as x/y), `x_val`/`y_val`, `x_test`/`y_test` for
ready-made splits (keras.datasets style), and `class_names` (a string array). Files are read
with `allow_pickle=False`: an `.npz` from the internet must not be able to run code.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np

from kzoo.data.examples import Examples
from kzoo.data.splits import split_indices
from kzoo.errors import KzooError

log = logging.getLogger(__name__)


def _keys_for(split: str, files: set[str], use_train: bool) -> tuple[str, str] | None:
    if split == "train" or use_train:
        for x, y in (("x_train", "y_train"), ("x", "y")):
            if x in files and y in files:
                return x, y
        return None
    return (f"x_{split}", f"y_{split}") if {f"x_{split}", f"y_{split}"} <= files else None


def _as_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
        raise KzooError(
            f"{where} has shape {x.shape}: expected (N, H, W) or (N, H, W, C) with C in 1, 3, 4"
        )
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool or not np.issubdtype(x.dtype, np.number):
        raise KzooError(f"{where} has dtype {x.dtype}: expected uint8 or float pixels")
    x = x.astype(np.float32)
    if x.size and x.max() <= 1.0:
        # Float images in [0, 1] are common (x / 255); kzoo's contract is [0, 255].
        log.info("%s holds floats in [0, 1]: scaling by 255", where)
        x = x * 255.0
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _as_labels(y: np.ndarray, n: int, where: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # keras.datasets gives (N, 1)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise KzooError(f"{where} has shape {y.shape} and dtype {y.dtype}: expected (N,) integer class ids")
    if len(y) != n:
        raise KzooError(f"{where} holds {len(y)} labels for {n} images: expected one label per image")
    return y.astype(np.int64)


def _max_label(data, files: set[str], labels: np.ndarray) -> int:
    top = int(labels.max(initial=-1))
    for key in ("y", "y_train", "y_val", "y_test"):
        if key in files:
            y = data[key]
            if y.size and np.issubdtype(y.dtype, np.integer):
                top = max(top, int(y.max()))
    return top


def check_labels(y: np.ndarray, num_classes: int, where: str) -> None:
    """Raise a one-line KzooError naming the first label outside [0, num_classes)."""
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        i = int(bad[0])
        raise KzooError(
            f"{where}[{i}] = {int(y[i])} is not a class id: expected 0..{num_classes - 1} "
            f"({len(bad)} bad label(s)); fix the labels or pass the right num_classes"
        )


def npz_splits(path: Path) -> tuple[str, ...]:
    """The splits an `.npz` provides without val_split (from its array names)."""
    try:
        files = set(np.load(path, allow_pickle=False).files)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise KzooError(f"cannot read {path} as .npz: {' '.join(str(err).split())}") from None
    return tuple(s for s in ("train", "val", "test") if _keys_for(s, files, use_train=False))


def npz_examples(
    path: Path,
    split: str,
    *,
    val_split: float | None = None,
    seed: int = 0,
    num_classes: int | None = None,
) -> Examples:
    """Read one split of an `.npz` file.

    Example:
        >>> np.savez("tiny.npz", x=np.zeros((4, 8, 8, 3), np.uint8), y=np.array([0, 1, 0, 1]))
        >>> npz_examples(Path("tiny.npz"), "train").num_examples
        4
    """
    try:
        data = np.load(path, allow_pickle=False)
        files = set(data.files)
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise KzooError(f"cannot read {path} as .npz: {' '.join(str(err).split())}") from None
    keys = _keys_for(split, files, use_train=val_split is not None and split != "test")
    if keys is None:
        wanted = "x, y" if split == "train" or val_split is not None else f"x_{split}, y_{split}"
        fix = "; pass val_split=0.1 to hold out part of x, y" if split == "val" else ""
        raise KzooError(f"{path} has no arrays {wanted} for split {split!r} (found: {', '.join(sorted(files))}){fix}")
    try:
        x, y = data[keys[0]], data[keys[1]]
        names = [str(n) for n in data["class_names"]] if "class_names" in files else None
    except ValueError as err:  # object arrays need pickle, which is refused on purpose
        raise KzooError(
            f"cannot read {path}: {' '.join(str(err).split())}; save numeric arrays (and class_names as a str array)"
        ) from None
    where = f"{path}:{keys[1]}"
    images = _as_images(x, f"{path}:{keys[0]}")
    labels = _as_labels(y, len(images), where)
    if names is not None and num_classes is not None and len(names) != num_classes:
        raise KzooError(
            f"num_classes={num_classes} does not match {path}: its class_names list {len(names)} classes; "
            f"pass num_classes={len(names)} or omit it"
        )
    # Without names, the class count comes from every label array in the file, so a test split
    # missing the last class still gets the same num_classes as train.
    n_classes = num_classes or (len(names) if names else _max_label(data, files, labels) + 1)
    check_labels(labels, n_classes, where)
    examples = Examples(
        class_names=names or [str(i) for i in range(n_classes)],
        source=f"arrays file {path} ({keys[0]}, {keys[1]})",
        labels=labels,
        images=images,
    )
    if split == "test" or val_split is None:
        return examples
    train_idx, val_idx = split_indices(labels, val_split, seed)
    return examples.take(val_idx if split == "val" else train_idx)
