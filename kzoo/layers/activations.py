"""Activations Keras lacks, registered so that models using them save and load as `.keras` files."""

from __future__ import annotations

from typing import Callable

import keras
from keras import ops

from kzoo.errors import KzooError


@keras.saving.register_keras_serializable(package="kzoo")
def quick_gelu(x):
    """OpenAI CLIP's GELU approximation `x * sigmoid(1.702 x)` (its checkpoints were trained with it).

    Example:
        >>> float(quick_gelu(keras.ops.convert_to_tensor(0.0)))
        0.0
    """
    return x * ops.sigmoid(1.702 * x)


CUSTOM = {"quick_gelu": quick_gelu}


def get_activation(name: str | None) -> str | Callable | None:
    """A Keras activation name, or one of kzoo's (`quick_gelu`), as `keras.layers.Dense` takes it.

    Example:
        >>> get_activation("quick_gelu").__name__
        'quick_gelu'
    """
    if name is None or name in CUSTOM:
        return CUSTOM.get(name)
    try:
        keras.activations.get(name)
    except ValueError:
        raise KzooError(f"unknown activation {name!r}; expected a Keras activation or one of {', '.join(CUSTOM)}") from None
    return name
