"""Fixtures for kzoo.data tests: tiny image trees written with PIL, an isolated cache."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from kzoo_data_helpers import class_color, solid, write_image


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Every test extracts archives into its own cache folder."""
    cache = tmp_path / "kzoo-cache"
    monkeypatch.setenv("KZOO_CACHE", str(cache))
    return cache


@pytest.fixture
def make_tree(tmp_path) -> Callable[..., Path]:
    """make_tree({"train/cat": 4, "test/dog": 2}, root="name", ext=".png") -> root folder.

    Class index k (sorted class names) is a solid `class_color(k)` image.
    """

    def make(spec: dict[str, int], root: str = "tree", ext: str = ".png", size=(8, 8)) -> Path:
        base = tmp_path / root
        classes = sorted({key.split("/")[-1] for key in spec})
        for key, count in spec.items():
            k = classes.index(key.split("/")[-1])
            for i in range(count):
                write_image(base / key / f"{i:05d}{ext}", solid(class_color(k), size))
        return base

    return make


@pytest.fixture(scope="session")
def _sample_cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("kzoo-sample-cache")


@pytest.fixture
def sample_cache(_sample_cache_dir, monkeypatch) -> Path:
    """A cache shared by this session's tests of the bundled sample (extracted once, ~3 s)."""
    monkeypatch.setenv("KZOO_CACHE", str(_sample_cache_dir))
    return _sample_cache_dir
