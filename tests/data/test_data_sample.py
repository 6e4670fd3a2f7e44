"""The bundled CIFAR-10 sample and scripts/make_sample.py."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import tarfile
from pathlib import Path

import numpy as np
import pytest

import kzoo.data
from kzoo.data.sample import SAMPLE_ARCHIVE
from kzoo_data_helpers import first_batch

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
ROOT = Path(__file__).resolve().parents[2]


def test_sample_archive_ships_small_and_attributed():
    assert SAMPLE_ARCHIVE.is_file() and SAMPLE_ARCHIVE.stat().st_size < 4_000_000
    with tarfile.open(SAMPLE_ARCHIVE) as tar:
        names = tar.getnames()
        readme = tar.extractfile("cifar10/README.txt").read().decode()
    assert "Krizhevsky" in readme and "2009" in readme and "JPEG" in readme
    for split, per_class in (("train", 500), ("test", 100)):
        for cls in CIFAR10:
            assert sum(n.startswith(f"cifar10/{split}/{cls}/") and n.endswith(".jpg") for n in names) == per_class


def test_load_none_uses_the_sample_and_says_so(caplog, sample_cache, monkeypatch):
    # The note is said once per process: another test in this worker may have loaded the sample first.
    monkeypatch.setattr("kzoo.data.api._ANNOUNCED", set())
    with caplog.at_level(logging.INFO, logger="kzoo.data"):
        train = kzoo.data.load(None, "train", val_split=0.1, batch_size=32)
    assert any("bundled CIFAR-10 sample" in r.getMessage() for r in caplog.records)
    assert train.class_names == CIFAR10 and train.num_examples == 4500 and "sample" in train.source
    x, y = first_batch(train)
    assert x.shape == (32, 32, 32, 3) and y.shape == (32, 10) and 0 <= x.min() and x.max() <= 255
    test = kzoo.data.load("sample", "test", batch_size=100)
    assert test.num_examples == 1000 and np.array_equal(first_batch(test)[1].sum(0)[:1], [100.0])


def test_make_sample_is_reproducible(shared_data, tmp_path):
    source = shared_data / "cifar10-jpg.tar.gz"
    if not source.is_file():
        pytest.skip(f"{source} is absent (the shared real-data archives are not on this machine)")
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "scripts" / "make_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "s.tar.gz"
    module.make_sample(source, out, 500, 100, seed=0)
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert digest(out) == digest(SAMPLE_ARCHIVE), "the bundled sample differs from scripts/make_sample.py's output"
