"""Helpers shared by the kzoo.data tests (imported by name: tests/ has no packages)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kzoo.errors import KzooError


def solid(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> np.ndarray:
    """An (H, W, 3) uint8 image of one colour."""
    return np.broadcast_to(np.array(color, np.uint8), (*size, 3)).copy()


def class_color(k: int) -> tuple[int, int, int]:
    """The colour make_tree gives class index k: labels and pixels can be checked together."""
    return (40 * k + 10, 100, 200)


def write_image(path: Path, pixels: np.ndarray, mode: str | None = None, **save_kw) -> Path:
    """Save `pixels` (H, W, 3 uint8) at `path`, converted to PIL `mode` (e.g. "L", "RGBA", "CMYK")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    image.save(path, **save_kw)
    return path


def assert_one_line(excinfo: pytest.ExceptionInfo, *fragments: str) -> str:
    """The error is a KzooError with a single-line message containing every fragment."""
    assert issubclass(excinfo.type, KzooError), excinfo.type
    message = str(excinfo.value)
    assert message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def first_batch(bundle):
    images, labels = next(iter(bundle.dataset))
    return images.numpy(), labels.numpy()


def all_batches(bundle):
    xs, ys = [], []
    for x, y in bundle.dataset:
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)
