"""kzoo.export under Keras' JAX backend: SavedModel (jax2tf) for every family, LiteRT through that
SavedModel where the converter takes it, and one-line errors where it does not (docs/export.md)."""

from __future__ import annotations

import importlib.util

import keras
import numpy as np
import pytest
from tiny_models import FAMILY_EXAMPLES, tiny_model

import kzoo
from kzoo.deploy import load_exported
from kzoo.errors import KzooError
from kzoo.training.evaluation import first_output

pytestmark = [pytest.mark.backend_agnostic,
              pytest.mark.skipif(keras.backend.backend() != "jax", reason="the JAX pass")]

# Measured 2026-12-02 (docs/export.md): the LiteRT converter rejects the others' jax2tf graphs
# (a SeedGenerator's uint32 state, dynamic gathers/reductions).
LITERT_FROM_JAX = ["airbench", "odresnet", "resnet", "vgg_cam"]


def _check(model: keras.Model, path: str, fmt: str) -> None:
    report = kzoo.export(model, path, fmt)
    assert report["backend"] == "jax" and report["passed"] and report["max_abs_diff"] <= 1e-4
    x = np.random.default_rng(1).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    expected = np.asarray(first_output(model.predict_on_batch(x)), np.float32)
    np.testing.assert_allclose(load_exported(path).predict_on_batch(x), expected, atol=1e-4)


@pytest.mark.parametrize("family", sorted(FAMILY_EXAMPLES))
def test_saved_model_from_jax(family, tmp_path):
    _check(tiny_model(family), str(tmp_path / "m_saved_model"), "saved_model")


@pytest.mark.parametrize("family", LITERT_FROM_JAX)
def test_litert_from_jax(family, tmp_path):
    _check(tiny_model(family), str(tmp_path / "m.tflite"), "litert")


def test_what_does_not_convert_from_jax_fails_in_one_line_and_leaves_nothing(tmp_path):
    with pytest.raises(KzooError, match="could not export vgg11_bn to litert under jax.*KERAS_BACKEND=tensorflow") \
            as err:
        kzoo.export(tiny_model("vgg"), str(tmp_path / "vgg.tflite"), "litert")
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []
    if importlib.util.find_spec("jax2onnx") is None:
        with pytest.raises(KzooError, match="needs the jax2onnx package.*pip install jax2onnx"):
            kzoo.export(tiny_model("resnet"), str(tmp_path / "r.onnx"), "onnx")
        assert list(tmp_path.iterdir()) == []
