"""FusedBatchNormalization: Keras' BatchNormalization's results, through TensorFlow's fused kernel."""

import keras
import numpy as np
import pytest

from kzoo.layers import FusedBatchNormalization

ON_TF = keras.backend.backend() == "tensorflow"


def _pair(**kwargs):
    """Keras' layer and the fused one, built on the same input with the same weights."""
    ref, fused = keras.layers.BatchNormalization(**kwargs), FusedBatchNormalization(**kwargs)
    for layer in (ref, fused):
        layer.build((None, 6, 6, 5))
    rng = np.random.default_rng(0)
    for rv, fv in zip(ref.weights, fused.weights):
        value = rng.uniform(0.5, 1.5, rv.shape).astype("float32")
        rv.assign(value)
        fv.assign(value)
    return ref, fused


def _batch(seed=1, dtype="float32"):
    x = np.random.default_rng(seed).normal(2.0, 3.0, (4, 6, 6, 5)).astype("float32")
    return keras.ops.cast(x, dtype)


def _ops_in_graph(layer, x, training):
    import tensorflow as tf

    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(
        tf.TensorSpec(x.shape, x.dtype)).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize("scale,center", [(True, True), (False, True)])
def test_training_steps_match_keras(scale, center):
    ref, fused = _pair(momentum=0.8, epsilon=1e-3, scale=scale, center=center)
    for seed in (1, 2):  # two steps: the second starts from the updated moving statistics
        x = _batch(seed)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=True)),
                                   keras.ops.convert_to_numpy(ref(x, training=True)), rtol=1e-4, atol=1e-4)
    for rv, fv in zip(ref.non_trainable_weights, fused.non_trainable_weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(fv), keras.ops.convert_to_numpy(rv), rtol=1e-5)
    x = _batch(3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=False)),
                               keras.ops.convert_to_numpy(ref(x, training=False)), rtol=1e-4, atol=1e-4)


def test_gradients_match_keras():
    ref, fused = _pair(epsilon=1e-3)
    x = _batch()
    grads = []
    for layer in (ref, fused):
        if ON_TF:
            import tensorflow as tf

            x_var = tf.Variable(x)
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(x_var, training=True) ** 3)
            grads.append([g.numpy() for g in tape.gradient(loss, [x_var, *layer.trainable_weights])])
        else:
            import jax

            def loss(x, gamma, beta, layer=layer):
                out, _ = layer.stateless_call([gamma, beta], [v.value for v in layer.non_trainable_weights], x,
                                              training=True)
                return (out**3).sum()

            grads.append(jax.grad(loss, argnums=(0, 1, 2))(x, *[w.value for w in layer.trainable_weights]))
    for g_ref, g_fused in zip(*grads):
        np.testing.assert_allclose(np.asarray(g_fused), np.asarray(g_ref), rtol=1e-3, atol=1e-3)


def test_frozen_layer_uses_and_keeps_moving_statistics():
    ref, fused = _pair(epsilon=1e-3)
    fused.trainable = ref.trainable = False
    before = [keras.ops.convert_to_numpy(w) for w in fused.non_trainable_weights]
    x = _batch()
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x, training=True)),
                               keras.ops.convert_to_numpy(ref(x, training=True)), rtol=1e-4, atol=1e-4)
    for b, w in zip(before, fused.non_trainable_weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(w), b)


@pytest.mark.skipif(not ON_TF, reason="the fused kernel is TensorFlow's; other backends run Keras' layer")
def test_tensorflow_runs_the_fused_kernel_unless_epsilon_is_below_its_floor():
    x = _batch()
    for training in (True, False):
        assert any(t.startswith("FusedBatchNorm") for t in _ops_in_graph(_pair(epsilon=1e-3)[1], x, training))
    # airbench's 1e-12: the fused kernel would clamp it to 1e-5, so Keras' path runs.
    tiny = _pair(epsilon=1e-12)[1]
    assert not any(t.startswith("FusedBatchNorm") for t in _ops_in_graph(tiny, x, True))


def test_bfloat16_input_close_to_keras():
    ref, fused = _pair(epsilon=1e-3, dtype="mixed_bfloat16")
    x = _batch(dtype="bfloat16")
    out_fused, out_ref = fused(x, training=True), ref(x, training=True)
    assert keras.backend.standardize_dtype(out_fused.dtype) == "bfloat16"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(keras.ops.cast(out_fused, "float32")),
                               keras.ops.convert_to_numpy(keras.ops.cast(out_ref, "float32")), atol=0.05)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_variance),
                               keras.ops.convert_to_numpy(ref.moving_variance), rtol=1e-2)


def test_keras_file_round_trip(tmp_path):
    inputs = keras.Input((6, 6, 5))
    model = keras.Model(inputs, FusedBatchNormalization(epsilon=1e-3, name="bn")(inputs))
    model.get_layer("bn").moving_mean.assign(np.arange(5, dtype="float32"))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.get_layer("bn")) is FusedBatchNormalization
    x = _batch()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
