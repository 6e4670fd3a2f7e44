"""Deterministic seeded splits and GTSRB track grouping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kzoo.data
from kzoo.data.api import resolve
from kzoo.data.splits import gtsrb_tracks, split_indices
from kzoo.errors import KzooError
from kzoo_data_helpers import assert_one_line, solid, write_image


def test_split_indices_deterministic_disjoint_stratified():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    train, val = split_indices(labels, 0.2, seed=3)
    again_train, again_val = split_indices(labels, 0.2, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert not set(train) & set(val) and len(train) + len(val) == 100
    assert np.bincount(labels[val]).tolist() == [2, 4, 6, 8]
    other_train, other_val = split_indices(labels, 0.2, seed=4)
    assert not np.array_equal(val, other_val) and len(other_val) == 20


def test_split_never_empties_a_class():
    labels = np.array([0, 1, 1, 1])
    train, val = split_indices(labels, 0.9, seed=0)
    assert 0 in labels[train] and 1 in labels[train]


def test_folder_split_same_seed_same_files(make_tree):
    root = make_tree({"a": 12, "b": 8})
    val1 = resolve(root, "val", val_split=0.25, seed=7).paths
    val2 = resolve(root, "val", val_split=0.25, seed=7).paths
    train = resolve(root, "train", val_split=0.25, seed=7).paths
    assert val1 == val2 and len(val1) == 5 and len(train) == 15 and not set(val1) & set(train)
    assert resolve(root, "val", val_split=0.25, seed=8).paths != val1


@pytest.mark.parametrize("cache", [True, False])
def test_shuffle_is_seeded_and_reshuffles_each_epoch(tmp_path, cache):
    for i in range(40):  # one distinct image per file, so the order is visible in pixels
        write_image(tmp_path / "d" / ("a" if i < 20 else "b") / f"{i}.png", solid((i, 0, 0), (4, 4)))

    def orders(seed):
        bundle = kzoo.data.load(tmp_path / "d", "train", batch_size=None, seed=seed, cache=cache)
        return [[int(x.numpy()[0, 0, 0]) for x, _ in bundle.dataset] for _ in range(2)]

    first, second = orders(1)
    assert sorted(first) == list(range(40)) and first != sorted(first)
    assert first != second  # a new order every epoch
    assert orders(1) == [first, second] and orders(2)[0] != first
    # kzoo.train iterates the pipeline repeated, one iterator for all epochs: still a new order per pass
    bundle = kzoo.data.load(tmp_path / "d", "train", batch_size=None, seed=1, cache=cache)
    assert [int(x.numpy()[0, 0, 0]) for x, _ in bundle.dataset.repeat().take(80)] == first + second


def test_gtsrb_tracks_from_numbers_and_track_frame_names():
    paths = [f"t/00/{i:05d}.png" for i in range(60)] + [f"t/01/{i:05d}.png" for i in range(210, 240)]
    labels = [0] * 60 + [1] * 30
    tracks = gtsrb_tracks(paths, labels)
    assert tracks[0] == tracks[29] == (0, 0) and tracks[30] == tracks[59] == (0, 1)
    assert set(tracks[60:]) == {(1, 0)}  # counted from the class's first file, not from 0
    assert gtsrb_tracks(["x/00003_00029.ppm", "x/00003_00000.ppm", "x/00004_00000.ppm"], [0, 0, 0]) == [
        (0, 3), (0, 3), (0, 4)
    ]
    with pytest.raises(KzooError) as excinfo:
        gtsrb_tracks(["x/frame.png"], [0])
    assert_one_line(excinfo, "frame.png", "gtsrb_tracks")


def _gtsrb_tree(root: Path, tracks_per_class=(4, 6), frames=30) -> Path:
    # Global numbering across classes (as in the shared GTSRB copy); every frame of one track
    # has the same, track-specific colour so leaks are visible in pixels too.
    number = 0
    for label, n_tracks in enumerate(tracks_per_class):
        for track in range(n_tracks):
            for _ in range(frames):
                write_image(root / "train" / f"{label:02d}" / f"{number:05d}.png", solid((label * 50, track * 20, 0), (4, 4)))
                number += 1
    write_image(root / "test" / "00" / "00000.png", solid((0, 0, 0), (4, 4)))
    return root


def _track_of(root: Path) -> dict[str, tuple[int, int]]:
    # The true track of every file, from the colour _gtsrb_tree painted it with.
    everything = resolve(root, "train")
    return {p: (int(label), int(Image.open(p).getpixel((0, 0))[1]) // 20) for p, label in zip(everything.paths, everything.labels)}


@pytest.mark.parametrize("group_by", ["auto", "gtsrb_tracks"])
def test_gtsrb_tracks_never_straddle_train_and_val(tmp_path, group_by):
    root = _gtsrb_tree(tmp_path / ("GTSRB" if group_by == "auto" else "signs"))
    train = resolve(root, "train", val_split=0.25, seed=0, group_by=group_by)
    val = resolve(root, "val", val_split=0.25, seed=0, group_by=group_by)
    assert len(train.paths) + len(val.paths) == 300 and not set(train.paths) & set(val.paths)
    track_of = _track_of(root)
    train_tracks = {track_of[p] for p in train.paths}
    val_tracks = {track_of[p] for p in val.paths}
    assert val_tracks and not train_tracks & val_tracks
    assert len(val.paths) % 30 == 0 and {label for label, _ in val_tracks} == {0, 1}


def test_without_grouping_tracks_straddle(tmp_path):
    # The control for the test above: per-image splitting leaks frames of one track into both.
    root = _gtsrb_tree(tmp_path / "signs")
    train = resolve(root, "train", val_split=0.25, seed=0, group_by=None)
    val = resolve(root, "val", val_split=0.25, seed=0, group_by=None)
    track_of = _track_of(root)
    assert {track_of[p] for p in train.paths} & {track_of[p] for p in val.paths}


def test_callable_group_by(make_tree):
    root = make_tree({"a": 8, "b": 8})
    group = lambda path: int(Path(path).stem) // 4  # noqa: E731
    val = resolve(root, "val", val_split=0.5, seed=1, group_by=group)
    stems = sorted(int(Path(p).stem) // 4 for p in val.paths)
    assert len(val.paths) == 8 and all(stems.count(g) % 4 == 0 for g in set(stems))


def test_tiny_val_split_that_empties_val_is_an_error(make_tree):
    root = make_tree({"a": 3, "b": 3})
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(root, "val", val_split=0.01)
    assert_one_line(excinfo, "val_split=0.01", "empty")
