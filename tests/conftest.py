"""Shared test setup.

Tests under the backend-agnostic areas run twice by `make test`: once under TensorFlow and
once under JAX (`-m backend_agnostic`). Everything else needs tf.data and runs under TF only.
"""

import os
import pathlib

import pytest

BACKEND_AGNOSTIC_DIRS = {"models", "layers", "augment", "explain", "losses", "weights", "core", "generative", "vlm"}
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    for item in items:
        parts = pathlib.Path(str(item.fspath)).parts
        if "tests" in parts and parts[parts.index("tests") + 1] in BACKEND_AGNOSTIC_DIRS:
            item.add_marker(pytest.mark.backend_agnostic)


@pytest.fixture(autouse=True)
def _clear_keras_session():
    import keras

    yield
    # Without the garbage collection Keras adds by default: a full collection over TensorFlow's and
    # JAX's imported objects took 1-2 s after every test: 950 of the TF pass's 2,500 worker-seconds
    # (docs/benchmarks.md, "Session 20 suite time"). Python still collects cycles on its own.
    keras.backend.clear_session(free_memory=False)
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def shared_data():
    """Path to ../shared/data; tests that need an archive skip with the reason when absent."""
    return SHARED_DATA
