"""`fit_run` builds the optimizer's and the metrics' variables first, so that TensorFlow traces the
train step once (Keras alone creates them inside the first trace, and tf.function traces again)."""

import keras
import numpy as np
import pytest

from kzoo.training.fitting import build_before_tracing

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="a TensorFlow trainer's tracing")


class CountingModel(keras.Model):
    traces = 0

    def train_step(self, data):
        CountingModel.traces += 1  # Python runs once per trace, not per step
        return super().train_step(data)


@pytest.mark.parametrize("build_first, traces", [(False, 2), (True, 1)])
def test_the_train_step_is_traced_once_when_built_first(build_first, traces):
    inputs = keras.Input((8, 8, 3))
    model = CountingModel(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)))
    model.compile(optimizer="adamw", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
    x = np.random.default_rng(0).uniform(size=(32, 8, 8, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(32) % 3)).batch(8, drop_remainder=True)
    CountingModel.traces = 0
    if build_first:
        build_before_tracing(model, ds.element_spec)
        assert model.optimizer.built and len(model.optimizer.variables) > 1
    history = model.fit(ds, epochs=2, verbose=0)
    # The first case pins Keras' behaviour that the second one works around.
    assert CountingModel.traces == traces and np.isfinite(history.history["loss"]).all()
