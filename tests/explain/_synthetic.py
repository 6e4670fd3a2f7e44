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


def pointing_accuracy(raw_maps: np.ndarray, boxes: np.ndarray, image_size: int) -> float:
    """Fraction of maps whose argmax cell (at feature resolution) overlaps the square's box."""
    n, h, w = raw_maps.shape
    cell_h, cell_w = image_size / h, image_size / w
    hits = 0
    for m, (t, l, b, r) in zip(raw_maps, boxes):
        i, j = np.unravel_index(np.argmax(m), m.shape)
        top, left = i * cell_h, j * cell_w
        if top < b and top + cell_h > t and left < r and left + cell_w > l:
            hits += 1
    return hits / n
