"""Loading weights into kzoo models: Keras files now; hub and foreign layouts later."""

from __future__ import annotations

import os

import keras

from kzoo.errors import KzooError


def load_weights(model: keras.Model, path: str) -> keras.Model:
    """Load `path` (`.keras` or `.weights.h5`) into `model` in place and return it.

    A file whose layers do not match the model raises a one-line `KzooError` naming the file.

    Example:
        >>> model = kzoo.create_model("resnet18_cifar", num_classes=10)
        >>> kzoo.weights.load_weights(model, "runs/r18/best.keras")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise KzooError(f"weights file not found: {path}")
    if path.endswith(".keras"):
        source = keras.saving.load_model(path, compile=False, safe_mode=True)
        try:
            model.set_weights(source.get_weights())
        except ValueError as err:
            raise KzooError(f"{path} does not match {model.name}: {_first_line(err)}") from None
        return model
    if path.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except ValueError as err:
            raise KzooError(f"{path} does not match {model.name}: {_first_line(err)}") from None
        return model
    raise KzooError(f"unsupported weights file {path}: expected .keras or .weights.h5")


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
