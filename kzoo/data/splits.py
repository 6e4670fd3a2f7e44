"""Deterministic, seeded train/validation splits, stratified by class and optionally grouped.

Grouping keeps related images on one side of the split: GTSRB's training images come in tracks
of 30 frames of one physical sign, and a validation set holding frames whose neighbours were
trained on measures memory, not generalisation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Hashable, Sequence

import numpy as np

from kzoo.errors import KzooError

GTSRB_TRACK_LENGTH = 30
_TRACK_FRAME = re.compile(r"^(\d+)_(\d+)$")  # original GTSRB names: <track>_<frame>.ppm

GroupBy = Callable[[str], Hashable] | str | None


def check_val_split(val_split: float | None) -> None:
    """Raise a one-line KzooError unless `val_split` is None or a fraction in (0, 1)."""
    if val_split is None:
        return
    if isinstance(val_split, bool) or not isinstance(val_split, (int, float)) or not 0 < val_split < 1:
        raise KzooError(
            f"val_split={val_split!r} is not a fraction: expected a number strictly between 0 and 1 "
            "(e.g. 0.1 holds out 10% of the training data), or None to use a val/ folder"
        )


def split_indices(
    labels: Sequence[int] | np.ndarray,
    val_split: float,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and validation parts, each sorted.

    Each class is split on its own (so rare classes appear in validation too); with `groups`,
    whole groups move together and `val_split` is the fraction of groups held out per class.
    The same labels, groups, fraction and seed always give the same split.

    Example:
        >>> train, val = split_indices([0, 0, 0, 0, 1, 1, 1, 1], 0.25, seed=0)
        >>> len(train), len(val)
        (6, 2)
    """
    check_val_split(val_split)
    labels = np.asarray(labels)
    keys = np.arange(len(labels)) if groups is None else _group_codes(groups)
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        unique_keys = np.unique(keys[members])
        n_val = int(round(val_split * len(unique_keys)))
        n_val = min(n_val, len(unique_keys) - 1)  # never move a whole class into validation
        held = rng.permutation(unique_keys)[:n_val]
        val_mask[members[np.isin(keys[members], held)]] = True
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def _group_codes(groups: Sequence[Hashable]) -> np.ndarray:
    # Integer codes in first-seen order, so any hashable group key works and order is stable.
    codes: dict[Hashable, int] = {}
    return np.array([codes.setdefault(g, len(codes)) for g in groups], dtype=np.int64)


def gtsrb_tracks(paths: Sequence[str], labels: Sequence[int]) -> list[tuple[int, int]]:
    """Track ids (class, track) for GTSRB training files.

    Names `<track>_<frame>.<ext>` (the original release) give the track directly; plain numbered
    names (`00123.png`, the shared 32x32 copy) are grouped into runs of 30 consecutive numbers
    counted from the first file of each class.

    Example:
        >>> gtsrb_tracks(["a/00000.png", "a/00029.png", "a/00030.png"], [0, 0, 0])
        [(0, 0), (0, 0), (0, 1)]
    """
    numbers: list[int] = []
    tracks: list[int | None] = []
    for path in paths:
        stem = Path(path).stem
        match = _TRACK_FRAME.match(stem)
        if match:
            tracks.append(int(match.group(1)))
            numbers.append(int(match.group(2)))
        elif stem.isdigit():
            tracks.append(None)
            numbers.append(int(stem))
        else:
            raise KzooError(
                f"group_by='gtsrb_tracks' cannot read a frame number from {path}: expected names "
                "like 00123.png or 00012_00029.ppm; pass group_by=None or a callable(path) -> group"
            )
    first: dict[int, int] = {}
    for number, track, label in zip(numbers, tracks, labels):
        if track is None:
            first[label] = min(first.get(label, number), number)
    return [
        (label, track if track is not None else (number - first[label]) // GTSRB_TRACK_LENGTH)
        for number, track, label in zip(numbers, tracks, labels)
    ]


def resolve_groups(
    group_by: GroupBy, paths: Sequence[str], labels: Sequence[int]
) -> list[Hashable] | None:
    """Group keys for `paths` under `group_by` (None, "gtsrb_tracks" or a callable)."""
    if group_by is None or group_by == "none":
        return None
    if group_by == "gtsrb_tracks":
        return list(gtsrb_tracks(paths, labels))
    if callable(group_by):
        return [(label, group_by(path)) for path, label in zip(paths, labels)]
    raise KzooError(
        f"group_by={group_by!r} is not known: expected None, 'auto', 'gtsrb_tracks' "
        "or a callable(path) -> group key"
    )
