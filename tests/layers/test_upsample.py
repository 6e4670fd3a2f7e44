"""SubpixelConvTranspose2D computes Keras' 4x4 stride-2 "same" Conv2DTranspose exactly (outputs,
gradients, saved variables), under every backend."""

import keras
import numpy as np
import pytest

from kzoo.layers.upsample import SubpixelConvTranspose2D


def _pair(use_bias=True, filters=5):
    rng = np.random.default_rng(0)
    native = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=use_bias)
    subpixel = SubpixelConvTranspose2D(filters, use_bias=use_bias)
    x = rng.normal(size=(2, 6, 7, 3)).astype("float32")  # non-square: rows and columns are not swapped
    native.build(x.shape)
    subpixel.build(x.shape)
    weights = [rng.normal(size=w.shape).astype("float32") for w in native.get_weights()]
    native.set_weights(weights)
    subpixel.set_weights(weights)
    return native, subpixel, x


@pytest.mark.parametrize("use_bias", [True, False])
def test_outputs_equal_keras_conv2d_transpose(use_bias):
    native, subpixel, x = _pair(use_bias)
    expected = keras.ops.convert_to_numpy(native(x))
    assert expected.shape == (2, 12, 14, 5)
    # The sub-pixel arithmetic itself (what call() runs under JAX), on every backend.
    np.testing.assert_allclose(keras.ops.convert_to_numpy(subpixel.subpixel_call(x)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(subpixel(x)), expected, rtol=1e-5, atol=1e-5)
    assert [w.shape for w in subpixel.weights] == [w.shape for w in native.weights]


def test_gradients_equal_keras_conv2d_transpose():
    native, subpixel, x = _pair()
    upstream = np.random.default_rng(1).normal(size=(2, 12, 14, 5)).astype("float32")

    def grads(layer):
        if keras.backend.backend() == "jax":
            import jax

            def loss(kernel, inputs):
                out, _ = layer.stateless_call([kernel, layer.bias.value], [], inputs)  # sub-pixel under JAX
                return (out * upstream).sum()

            return jax.grad(loss, argnums=(0, 1))(layer.kernel.value, x)
        import tensorflow as tf

        inputs = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = layer.subpixel_call(inputs) if isinstance(layer, SubpixelConvTranspose2D) else layer(inputs)
            loss = tf.reduce_sum(outputs * upstream)
        return tape.gradient(loss, [layer.kernel, inputs])

    for a, b in zip(grads(subpixel), grads(native)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), rtol=1e-4, atol=1e-4)


def test_other_shapes_are_refused_and_the_layer_round_trips(tmp_path):
    with pytest.raises(ValueError, match="kernel_size=4, strides=2"):
        SubpixelConvTranspose2D(4, kernel_size=3)
    _, subpixel, x = _pair()
    model = keras.Sequential([keras.Input(x.shape[1:]), subpixel])
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), atol=1e-6)
