"""Helpers shared by the model tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import math

import keras
import numpy as np

from kzoo.models.table import shape_only  # noqa: F401  (the tests' name for it)
from kzoo.training.fitting import build_before_tracing


def trainable_count(model: keras.Model) -> int:
    # torch's parameters() == Keras trainable weights (BatchNorm moving stats are buffers in torch).
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def images(n: int = 2, shape=(32, 32, 3), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, *shape)).astype("float32")


def one_hot(labels, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype="float32")[np.asarray(labels)]


def fit_one_step(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """One SGD step through `model.fit`; returns the loss and checks the head moved."""
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
    )
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    build_before_tracing(model, (x, y))  # one trace of the step under TensorFlow instead of two
    history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    loss = history.history["loss"][-1]
    assert np.isfinite(loss), f"{model.name}: loss {loss}"
    after = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after)), f"{model.name}: no weight changed"
    return loss


def dtype_of(tensor) -> str:
    return keras.backend.standardize_dtype(tensor.dtype)
