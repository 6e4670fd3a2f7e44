"""MultiScaleFusion: parallel 1/3/5/7 convolutions summed (fused into one kernel at stride 1)."""

import numpy as np
import pytest
import keras
from keras import ops

from kzoo.errors import KzooError
from kzoo.layers import MultiScaleFusion


def _branch_sum(layer, x):
    y = sum(ops.convert_to_numpy(ops.conv(x, k, strides=layer.strides, padding="same")) for k in layer.kernels)
    if layer.bias is not None:
        y = y + ops.convert_to_numpy(layer.bias)
    return y


@pytest.mark.parametrize("strides,size", [(1, 9), (2, 9), (2, 8)])
def test_equals_sum_of_parallel_convolutions(strides, size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, size, size, 3)).astype("float32")
    layer = MultiScaleFusion(4, strides=strides)
    layer.build(x.shape)
    layer.bias.assign(rng.normal(size=4).astype("float32"))
    y = ops.convert_to_numpy(layer(x))
    assert y.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, _branch_sum(layer, x), rtol=1e-4, atol=1e-4)


def test_parameters_and_custom_sizes():
    layer = MultiScaleFusion(8)
    layer.build((None, 16, 16, 3))
    assert layer.count_params() == (1 + 9 + 25 + 49) * 3 * 8 + 8
    assert [tuple(k.shape) for k in layer.kernels] == [(k, k, 3, 8) for k in (1, 3, 5, 7)]
    small = MultiScaleFusion(8, kernel_sizes=(3, 5), use_bias=False)
    small.build((None, 16, 16, 3))
    assert small.count_params() == (9 + 25) * 3 * 8


def test_serialisation_and_mixed_precision(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, MultiScaleFusion(4, kernel_sizes=(1, 3))(inputs))
    x = np.random.default_rng(1).normal(size=(1, 8, 8, 3)).astype("float32")
    model.save(tmp_path / "ms.keras")
    loaded = keras.saving.load_model(tmp_path / "ms.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-6, atol=1e-6)
    assert loaded.layers[1].get_config()["kernel_sizes"] == [1, 3]
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    y = MultiScaleFusion(4)(x)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(filters=0), "filters"), (dict(filters=4, kernel_sizes=(2, 3)), "odd"),
     (dict(filters=4, kernel_sizes=(3, 3)), "repeat"), (dict(filters=4, strides=0), "strides")],
)
def test_user_errors(kwargs, match):
    with pytest.raises(KzooError, match=match):
        MultiScaleFusion(**kwargs)
