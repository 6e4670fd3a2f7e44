"""Loads a script of examples/ as a module (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_example(name: str) -> ModuleType:
    """examples/NAME.py, freshly executed (its `main(argv)` runs the example in this process)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "examples", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
