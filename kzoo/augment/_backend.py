"""Which op namespace a kzoo augmentation runs with: `keras.ops`, or TF's when in tf.data under JAX.

Every augmentation body is written against a namespace `F` that looks like `keras.ops` (plus
`F.random` for the seed generator's backend). Normally `F` *is* `keras.ops`. Inside a `tf.data`
map while Keras runs on another backend (JAX), `keras.ops` would hand TF graph tensors to JAX, so
`F` is then Keras' own TensorFlow backend module, exactly as Keras core's preprocessing layers
(`keras.src.layers.preprocessing.data_layer.DataLayer`) switch backend in tf.data. The bodies stay
`keras.ops`-style code either way; nothing here imports TensorFlow unless a TF tensor shows up.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import keras


class _KerasOps:
    """`keras.ops`, with `random` and `backend_name` attached."""

    backend_name = keras.backend.backend()
    random = keras.random
    image = keras.ops.image

    def __getattr__(self, name: str) -> Any:
        return getattr(keras.ops, name)


class _BackendOps:
    """`keras.ops`-like access to one Keras backend's modules (`keras.src.backend.<name>`)."""

    _SUBMODULES = ("core", "numpy", "math", "nn", "linalg")

    def __init__(self, backend_name: str):
        self.backend_name = backend_name
        self._module = importlib.import_module(f"keras.src.backend.{backend_name}")
        self.random = importlib.import_module(f"keras.src.backend.{backend_name}.random")
        self.image = importlib.import_module(f"keras.src.backend.{backend_name}.image")
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        cache = self.__dict__.get("_cache")
        if cache is None or name.startswith("__"):
            raise AttributeError(name)
        if name not in cache:
            for sub in self._SUBMODULES:
                module: ModuleType = getattr(self._module, sub)
                if hasattr(module, name):
                    cache[name] = getattr(module, name)
                    break
            else:
                raise AttributeError(f"backend {self.backend_name!r} has no op {name!r}")
        return cache[name]


KERAS_OPS = _KerasOps()
_TF_OPS: _BackendOps | None = None


def is_foreign_tf_tensor(x: Any) -> bool:
    """True for a TensorFlow tensor when Keras itself runs on another backend (tf.data under JAX)."""
    return keras.backend.backend() != "tensorflow" and type(x).__module__.startswith("tensorflow")


def ops_for(x: Any):
    """The op namespace to use for tensor `x` (see the module docstring)."""
    global _TF_OPS
    if not is_foreign_tf_tensor(x):
        return KERAS_OPS
    if _TF_OPS is None:
        _TF_OPS = _BackendOps("tensorflow")
    return _TF_OPS
