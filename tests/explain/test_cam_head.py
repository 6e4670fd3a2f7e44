"""CAMHead and the vgg*_cam models: same-pass heatmap, fit, .keras round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kzoo
from kzoo.errors import KzooError
from kzoo.explain import explain
from kzoo.layers import CAMHead


def _images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _tiny_cam_model(num_classes=3):
    keras.utils.set_random_seed(5)
    return kzoo.create_model("vgg11_bn_cam_cifar", num_classes=num_classes, width_multiplier=0.125)


def test_cam_head_outputs_and_map_matches_cam_method():
    model, images = _tiny_cam_model(), _images()
    logits, heatmap = model.predict(images, verbose=0)
    assert logits.shape == (4, 3) and heatmap.shape == (4, 32, 32) and logits.dtype == np.float32
    assert heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6
    result = explain(model, images, method="cam")  # layer auto-chosen: stage4, the head's input
    assert result.layer == "stage4"
    np.testing.assert_allclose(result.logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(result.heatmaps, heatmap, atol=1e-4)


def test_cam_head_given_class_and_reusable_map():
    keras.utils.set_random_seed(6)
    features = np.random.default_rng(1).uniform(0, 1, (2, 4, 4, 8)).astype("float32")
    head = CAMHead(5)
    logits, cam_pred = head(features)
    _, cam_given = head([features, np.array([3, 3])])
    kernel = np.asarray(head.classifier.kernel)
    expected = np.maximum(np.einsum("bhwc,c->bhw", features, kernel[:, 3]), 0)
    expected = (expected - expected.min((1, 2), keepdims=True)) / (expected.max((1, 2), keepdims=True) - expected.min((1, 2), keepdims=True))
    np.testing.assert_allclose(np.asarray(cam_given), expected, atol=1e-5)
    raw = head.class_activation_map(features, head.class_weights(np.array([3, 3])))
    np.testing.assert_allclose(np.asarray(raw), np.maximum(np.einsum("bhwc,c->bhw", features, kernel[:, 3]), 0), rtol=1e-5)
    pred = np.asarray(logits).argmax(-1)
    _, cam_explicit = head([features, pred])
    np.testing.assert_allclose(np.asarray(cam_pred), np.asarray(cam_explicit), atol=1e-6)


def test_cam_model_trains_with_fit_and_round_trips(tmp_path):
    model = _tiny_cam_model()
    assert model.output_names == ["logits", "heatmap"]
    x = _images(16, seed=2)
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    model.compile("adam", loss=[keras.losses.CategoricalCrossentropy(from_logits=True), None])
    before = [w.copy() for w in model.get_layer("cam_head").get_weights()]
    history = model.fit(x, (y, None), epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = model.get_layer("cam_head").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    path = str(tmp_path / "cam.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    for a, b in zip(model.predict(x, verbose=0), loaded.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_cam_model_fit_with_loss_dict():
    model = _tiny_cam_model()
    model.compile("adam", loss={"logits": keras.losses.CategoricalCrossentropy(from_logits=True), "heatmap": None})
    y = keras.utils.to_categorical(np.arange(8) % 3, 3)
    model.fit(_images(8), {"logits": y, "heatmap": np.zeros((8, 32, 32), "float32")}, epochs=1, batch_size=8, verbose=0)


def test_registered_variants_and_bad_config():
    assert {"vgg11_cam", "vgg16_cam", "vgg11_bn_cam_cifar"} <= set(kzoo.list_models("vgg*cam*"))
    model = kzoo.create_model("vgg11_cam", num_classes=4, input_shape=(64, 64, 3), width_multiplier=0.0625)
    assert [tuple(s) for s in model.output_shape] == [(None, 4), (None, 64, 64)]
    assert kzoo.create_model("vgg11_cam", num_classes=0, input_shape=(32, 32, 3), width_multiplier=0.0625).output_shape == (None, 32)
    with pytest.raises(KzooError):
        CAMHead(0)
    with pytest.raises(KzooError):
        CAMHead(3)(np.zeros((2, 8), "float32"))
    config = CAMHead(7, output_size=(16, 16), name="h").get_config()
    assert CAMHead.from_config(config).output_size == (16, 16)
