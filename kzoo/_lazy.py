"""Lazy package exports: a package's public names are imported on first use, so importing the
package (or one light submodule of it, such as `kzoo.augment.presets`) does not start Keras."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_getattr(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` serving `exports` (public name -> module that defines it).

    Example:
        >>> __getattr__ = lazy_getattr(__name__, {"TrainConfig": "kzoo.training.config"})  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
