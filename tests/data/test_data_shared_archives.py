"""The real archives in ../shared/data load directly (skipped where they are absent).

These reuse the user's kzoo cache (extracting CIFAR-10 and GTSRB takes ~25 s once; later
runs only list the files), so only metadata and one batch are read.
"""

from __future__ import annotations

import os

import pytest

import kzoo.data
from kzoo.data.api import resolve
from kzoo.data.splits import gtsrb_tracks
from kzoo_data_helpers import first_batch

# Read at collection, before the autouse fixture points KZOO_CACHE at a temporary folder.
USER_KZOO_CACHE = os.environ.get("KZOO_CACHE")


@pytest.fixture(autouse=True)
def user_cache(monkeypatch):
    if USER_KZOO_CACHE:
        monkeypatch.setenv("KZOO_CACHE", USER_KZOO_CACHE)
    else:
        monkeypatch.delenv("KZOO_CACHE", raising=False)


def _archive(shared_data, name):
    path = shared_data / name
    if not path.is_file():
        pytest.skip(f"{path} is absent (the shared real-data archives are not on this machine)")
    return path


def test_cifar10_test_split(shared_data):
    bundle = kzoo.data.load(_archive(shared_data, "cifar10-jpg.tar.gz"), split="test", batch_size=256)
    assert bundle.num_examples == 10_000 and bundle.num_classes == 10
    assert bundle.class_names[:3] == ["airplane", "automobile", "bird"]
    x, y = first_batch(bundle)
    assert x.shape == (256, 32, 32, 3) and y.shape == (256, 10) and x.max() > 100


def test_gtsrb_test_split_names_and_track_grouped_val(shared_data):
    archive = _archive(shared_data, "gtsrb-png.tar.gz")
    bundle = kzoo.data.load(archive, split="test", batch_size=64)
    assert bundle.num_examples == 12_630 and bundle.num_classes == 43
    assert bundle.class_names[0] == "Speed limit (20km/h)"
    assert first_batch(bundle)[0].shape == (64, 32, 32, 3)
    full = resolve(archive, "train")
    track_of = dict(zip(full.paths, gtsrb_tracks(full.paths, full.labels)))
    val = set(resolve(archive, "val", val_split=0.1).paths)  # grouped by track automatically
    train = set(full.paths) - val
    assert len(full.paths) == 39_209 and 0.08 < len(val) / len(full.paths) < 0.12
    assert not {track_of[p] for p in train} & {track_of[p] for p in val}
