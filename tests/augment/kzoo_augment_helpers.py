"""Shared helpers for the augmentation tests (imported as a sibling module)."""

import numpy as np
import keras
from keras import ops


def np_(x):
    return np.asarray(ops.convert_to_numpy(x))


def t(x, dtype="float32"):
    return ops.convert_to_tensor(np.asarray(x), dtype=dtype)


def random_images(batch=4, size=16, seed=0, channels=3):
    """Integer-valued float32 pixels in [0, 255]."""
    return np.random.RandomState(seed).randint(0, 256, (batch, size, size, channels)).astype("float32")


def gradient_image(size=8):
    """A (1, size, size, 3) image whose value encodes its position: 8 * row + col, per channel offset."""
    rows, cols = np.mgrid[0:size, 0:size]
    base = (8 * rows + cols).astype("float32")
    return np.stack([base, base + 1, base + 2], axis=-1)[None]


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[np.asarray(labels)]
