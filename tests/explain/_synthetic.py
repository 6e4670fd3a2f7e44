"""Synthetic 'coloured square on clutter' data for the pointing tests (seeded, numpy only)."""

from __future__ import annotations

import numpy as np

COLOURS = np.array([[230, 30, 30], [30, 210, 30], [40, 60, 240]], dtype="float32")


def squares(n: int, size: int = 32, square: int = 6, seed: int = 0):
    """Images (n, size, size, 3) in [0, 255], labels (n,), boxes (n, 4) = (top, left, bottom, right).

    The class is the colour of one small square at a random position; the background is grey
    noise with grey rectangles of random size and shade (clutter that carries no label).
    """
    rng = np.random.default_rng(seed)
    grey = rng.uniform(60, 200, (n, size, size, 1)) + rng.normal(0, 12, (n, size, size, 3))
    images = np.repeat(grey[..., :1], 3, axis=-1) + grey[..., 1:2] * 0 + rng.normal(0, 6, (n, size, size, 3))
    for i in range(n):
        for _ in range(3):
            h, w = rng.integers(4, 12, size=2)
            t, l = rng.integers(0, size - h), rng.integers(0, size - w)
            images[i, t:t + h, l:l + w] = rng.uniform(0, 255)
    labels = rng.integers(0, len(COLOURS), n)
    boxes = np.zeros((n, 4), dtype="int64")
    for i in range(n):
        t, l = rng.integers(0, size - square + 1, size=2)
        images[i, t:t + square, l:l + square] = COLOURS[labels[i]] + rng.normal(0, 8, 3)
        boxes[i] = (t, l, t + square, l + square)
    return np.clip(images, 0, 255).astype("float32"), labels, boxes


def pointing_rate(heatmaps: np.ndarray, boxes: np.ndarray) -> float:
    """Fraction of `(n, H, W)` input-resolution heatmaps whose maximum pixel lies inside the box."""
    n, h, w = heatmaps.shape
    rows, cols = np.unravel_index(heatmaps.reshape(n, -1).argmax(axis=1), (h, w))
    top, left, bottom, right = boxes.T
    return float(np.mean((rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)))
