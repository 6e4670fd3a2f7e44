"""Pipeline stages: batching, dtypes, augmentation hook, caching, and imports without TF."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import kzoo.data
from kzoo.data import pipeline
from kzoo.errors import KzooError
from kzoo_data_helpers import all_batches, assert_one_line, first_batch


@pytest.fixture
def tree(make_tree):
    return make_tree({"train/a": 6, "train/b": 6, "test/a": 2, "test/b": 2})


def _mark(batch):
    """A recognisable augmentation: inverts images, swaps the two classes' labels."""
    return {"images": 255.0 - batch["images"], "labels": batch["labels"][:, ::-1]}


def test_callable_augment_runs_on_train_batches_only(tree):
    plain = kzoo.data.load(tree, "train", batch_size=4, shuffle=False)
    augmented = kzoo.data.load(tree, "train", batch_size=4, shuffle=False, augment=_mark)
    (x, y), (ax, ay) = all_batches(plain), all_batches(augmented)
    assert ax.dtype == np.float32 and ay.dtype == np.float32
    assert np.array_equal(ax, 255.0 - x) and np.array_equal(ay, y[:, ::-1])
    test = kzoo.data.load(tree, "test", batch_size=4, augment=_mark)
    assert np.array_equal(first_batch(test)[0], first_batch(kzoo.data.load(tree, "test", batch_size=4))[0])


def test_preset_name_goes_to_kzoo_augment_get_preset(tree, monkeypatch):
    calls = []

    def get_preset(name, *, num_classes, image_size, seed):
        calls.append((name, num_classes, image_size, seed))
        return None if name == "none" else _mark

    monkeypatch.setitem(sys.modules, "kzoo.augment", types.SimpleNamespace(get_preset=get_preset))
    x = first_batch(kzoo.data.load(tree, "train", batch_size=4, shuffle=False, augment="mine", seed=5, image_size=8))[0]
    plain = first_batch(kzoo.data.load(tree, "train", batch_size=4, shuffle=False, augment="none", image_size=8))[0]
    assert calls == [("mine", 2, (8, 8), 5), ("none", 2, (8, 8), 0)]
    assert np.array_equal(x, 255.0 - plain)


def test_real_presets_are_seeded_per_batch_and_vary_by_epoch(make_tree):
    pytest.importorskip("kzoo.augment.presets")
    rng = np.random.default_rng(0)
    root = make_tree({"a": 8, "b": 8}, size=(16, 16))
    for path in sorted(root.rglob("*.png")):  # textured images, so crops and flips show
        from PIL import Image

        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)

    def epochs(seed):
        bundle = kzoo.data.load(root, "train", batch_size=8, image_size=16, shuffle=False, augment="basic", seed=seed)
        return [all_batches(bundle)[0] for _ in range(2)]

    first, second = epochs(0)
    assert np.array_equal(epochs(0)[0], first)  # reproducible
    assert not np.array_equal(first, second)  # new draws each epoch
    assert first.shape == (16, 16, 16, 3)
    # kzoo.train iterates the pipeline repeated, one iterator for all epochs: still new draws per pass
    bundle = kzoo.data.load(root, "train", batch_size=8, image_size=16, shuffle=False, augment="basic", seed=0)
    passes = np.concatenate([x.numpy() for x, _ in bundle.dataset.repeat().take(4)])
    assert np.array_equal(passes[:16], first) and not np.array_equal(passes[16:], first)


def test_bad_augment_values(tree):
    with pytest.raises(KzooError) as excinfo:
        list(kzoo.data.load(tree, "train", batch_size=4, augment=lambda batch: batch["images"]).dataset)
    assert_one_line(excinfo, "returned", "expected a dict with 'images' and 'labels'")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(tree, "train", batch_size=None, augment=_mark)
    assert_one_line(excinfo, "augment needs batches")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(tree, "train", augment=3)
    assert_one_line(excinfo, "augment=3")


def test_drop_remainder_defaults(tree):
    assert kzoo.data.load(tree, "train", batch_size=5).steps_per_epoch == 2
    small = kzoo.data.load(tree, "train", batch_size=64)  # fewer images than a batch: keep them
    assert not small.drop_remainder and small.steps_per_epoch == 1 and len(first_batch(small)[0]) == 12
    assert kzoo.data.load(tree, "train", batch_size=5, drop_remainder=False).steps_per_epoch == 3


def test_unbatched_and_limit(tree):
    bundle = kzoo.data.load(tree, "train", batch_size=None, limit=5)
    assert bundle.num_examples == 5 and len(list(bundle.dataset)) == 5
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(tree, limit=0)
    assert_one_line(excinfo, "limit=0")


@pytest.mark.parametrize("cache", ["memory-over-limit", "file", False])
def test_cache_modes_give_the_same_data(tree, tmp_path, monkeypatch, caplog, cache):
    reference = all_batches(kzoo.data.load(tree, "test", batch_size=2))
    if cache == "memory-over-limit":
        monkeypatch.setattr(pipeline, "MEMORY_CACHE_LIMIT", 10)
        with caplog.at_level(logging.INFO, logger="kzoo.data"):
            bundle = kzoo.data.load(tree, "test", batch_size=2, cache=True)
        assert any("not caching" in r.getMessage() for r in caplog.records)
    else:
        bundle = kzoo.data.load(tree, "test", batch_size=2, cache=str(tmp_path / "c") if cache == "file" else False)
    for _ in range(2):
        got = all_batches(bundle)
        assert np.array_equal(got[0], reference[0]) and np.array_equal(got[1], reference[1])
    if cache == "file":
        assert list(tmp_path.glob("c.test-32x32-*"))
        train = kzoo.data.load(tree, "train", batch_size=2, cache=str(tmp_path / "c"), shuffle=False)
        assert all_batches(train)[0].shape[0] == 12  # the same path does not serve test's cache


def test_importing_kzoo_data_does_not_import_tensorflow():
    code = (
        "import sys, kzoo, kzoo.data, kzoo.data.api, kzoo.data.pipeline, kzoo.data.tfds_source;"
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_cardinality_is_known_for_keras(tree):
    for kwargs in ({"batch_size": 5}, {"batch_size": 5, "augment": _mark}, {"batch_size": None}, {"cache": False, "batch_size": 4}):
        bundle = kzoo.data.load(tree, "train", **kwargs)
        assert int(bundle.dataset.cardinality()) == bundle.steps_per_epoch, kwargs
