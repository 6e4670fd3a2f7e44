"""kzoo.selfsup.SimCLR trains with model.fit on TensorFlow and JAX (this directory runs under both)."""

import keras
import numpy as np
import pytest

from kzoo.augment import get_preset
from kzoo.errors import KzooError
from kzoo.losses import nt_xent
from kzoo.selfsup import SimCLR


def small_backbone(size=16):
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(16)(x), name="small")


def two_views(n=16, size=16, seed=0):
    """[view 1; view 2] of n random images: view 2 is view 1 plus a little noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    return np.concatenate([x, np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype("float32")])


def test_fit_lowers_nt_xent_on_pipeline_views():
    keras.utils.set_random_seed(0)
    model = SimCLR(small_backbone(), projection_dim=8, hidden_dim=32, temperature=0.5)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    x = two_views()
    # Training mode throughout: the projection head's BatchNorm uses batch statistics, as in fit.
    before = float(nt_xent(*np.split(np.asarray(model(x, training=True)), 2), 0.5))
    # One batch of 2B views; the labels are ignored.
    history = model.fit(x, np.zeros((len(x), 1), "float32"), batch_size=len(x), epochs=40, shuffle=False, verbose=0)
    losses = history.history["loss"]
    after = float(nt_xent(*np.split(np.asarray(model(x, training=True)), 2), 0.5))
    assert losses[-1] < losses[0] - 0.5 and after < before - 0.5, (losses[0], losses[-1], before, after)
    assert losses[0] == pytest.approx(before, abs=1e-4)  # the logged loss is NT-Xent of the two halves


def test_device_views_double_the_batch_and_inference_does_not():
    aug = get_preset("simclr", num_classes=1, image_size=(16, 16), seed=0)
    model = SimCLR(small_backbone(), projection_dim=8, hidden_dim=16, augment=aug)
    x = two_views(n=4)[:4]
    assert tuple(model(x, training=True).shape) == (8, 8)
    assert tuple(model(x, training=False).shape) == (4, 8)
    model.compile(optimizer="sgd")
    history = model.fit(x, np.zeros((4, 1), "float32"), batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_saved_model_loads_in_safe_mode(tmp_path):
    model = SimCLR(small_backbone(), projection_dim=8, hidden_dim=16, temperature=0.2)
    x = two_views(n=2)
    expected = np.asarray(model(x, training=False))
    model.save(tmp_path / "simclr.keras")
    again = keras.saving.load_model(tmp_path / "simclr.keras", safe_mode=True)
    assert again.temperature == pytest.approx(0.2)
    np.testing.assert_allclose(np.asarray(again(x, training=False)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(again.backbone(x)), np.asarray(model.backbone(x)), rtol=1e-5, atol=1e-5)


def test_refuses_a_backbone_with_feature_maps_and_a_bad_temperature():
    inputs = keras.Input((8, 8, 3))
    maps = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(KzooError, match="build it with num_classes=0"):
        SimCLR(maps)
    with pytest.raises(KzooError, match="temperature must be > 0"):
        SimCLR(small_backbone(), temperature=0)
