"""The fused ViT + CAM-guided CNN model (kzoo.models.fusion) and its layers (kzoo.layers.fusion)."""

from __future__ import annotations

import pathlib

import keras
import numpy as np
import pytest
from model_checks import images, one_hot, shape_only

import kzoo
from kzoo.errors import KzooError
from kzoo.layers import CAMGuidedPooling, saliency_pool
from kzoo.models.fusion import freeze_branch, fusion_weights

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "weights"
# Branches small enough to compile in seconds; same families as fusion_tiny.
TINY_VIT = dict(dim=16, depth=1, heads=2, mlp_dim=32, patch_size=8)
TINY_CNN = dict(depth=(8, "M", 16, "M"), batch_norm=True)


def tiny(**overrides) -> keras.Model:
    keras.utils.set_random_seed(0)
    config = dict(num_classes=3, vit_options=TINY_VIT, cnn_options=TINY_CNN, dim=16)
    return kzoo.create_model("fusion_tiny", **{**config, **overrides})


def numpy_weights(layer) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(w).copy() for w in layer.weights]


def fit_step(model: keras.Model, n: int = 4) -> None:
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    model.fit(images(n), one_hot(np.arange(n) % 3, 3), batch_size=n, epochs=1, verbose=0)


@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_output_shapes(fusion):
    model = tiny(fusion=fusion, return_cam=True)
    logits, heatmap = model.predict(images(4), verbose=0)
    assert model.output_names == ["logits", "heatmap"]
    assert logits.shape == (4, 3) and logits.dtype == np.float32
    assert heatmap.shape == (4, 32, 32) and heatmap.min() >= 0 and heatmap.max() <= 1 + 1e-6
    names = {layer.name for layer in model.layers}
    assert {"vit", "cnn", "cam_pool", "pool", "head"} <= names and ("fusion_gate" in names) == (fusion == "attention")
    assert tiny(fusion=fusion).output_shape == (None, 3)  # default: one output, the logits
    features = tiny(features_only=True)
    assert [tuple(t.shape) for t in features.outputs] == [(None, 4, 4, 16), (None, 16, 16, 16)]
    assert [tuple(t.shape) for t in tiny(features_only=True, out_indices=(1,)).outputs] == [(None, 16, 16, 16)]


def test_attention_weights_sum_to_one_per_sample():
    model = tiny(fusion="attention")
    weights = fusion_weights(model, images(5))
    assert weights.shape == (5, 2) and (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(weights, 0.5, atol=1e-6)  # the gate starts uniform (zero-initialised)
    fit_step(model)
    trained = fusion_weights(model, images(5, seed=1))
    np.testing.assert_allclose(trained.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(trained, 0.5)
    with pytest.raises(KzooError, match="fusion_gate"):
        fusion_weights(tiny(fusion="concat"), images(1))


def test_cam_guided_pooling_uniform_map_is_average_pooling():
    features = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    mean = features.mean(axis=(1, 2))
    for saliency in (np.ones((2, 4, 4), "float32"), np.zeros((2, 4, 4), "float32")):
        np.testing.assert_allclose(np.asarray(saliency_pool(features, saliency)), mean, atol=1e-5)
        pooled, _ = CAMGuidedPooling(3)([features, 7.0 * (saliency + 1)])
        np.testing.assert_allclose(np.asarray(pooled), mean, atol=1e-5)
    peaked = np.zeros((2, 4, 4), "float32")
    peaked[:, 1, 2] = 1.0
    np.testing.assert_allclose(np.asarray(saliency_pool(features, peaked)), features[:, 1, 2], atol=1e-4)


def test_cam_guided_pooling_uses_the_predicted_class_cam():
    keras.utils.set_random_seed(1)
    features = np.random.default_rng(2).uniform(0, 1, (3, 4, 4, 8)).astype("float32")
    layer = CAMGuidedPooling(5, output_size=(16, 16))
    pooled, heatmap = layer(features)
    kernel = keras.ops.convert_to_numpy(layer.cam_head.classifier.kernel)
    k = (features.mean(axis=(1, 2)) @ kernel).argmax(-1)  # no bias: it would only move the argmax
    cam = np.maximum(np.einsum("bhwc,cb->bhw", features, kernel[:, k]), 0) + 1e-6
    expected = np.einsum("bhwc,bhw->bc", features, cam / cam.sum(axis=(1, 2), keepdims=True))
    np.testing.assert_allclose(np.asarray(pooled), expected, rtol=1e-4, atol=1e-5)
    assert tuple(heatmap.shape) == (3, 16, 16)


def test_gradient_reaches_both_branches_and_the_cam():
    model = tiny(fusion="attention")
    parts = ("vit", "cnn", "cam_pool", "fusion_gate")
    before = {p: numpy_weights(model.get_layer(p)) for p in parts}
    fit_step(model)
    for part in parts:
        after = numpy_weights(model.get_layer(part))
        assert any(not np.array_equal(b, a) for b, a in zip(before[part], after)), f"{part} did not train"


@pytest.mark.parametrize("branch, other", [("cnn", "vit"), ("vit", "cnn")])
def test_frozen_branch_unchanged_after_fit(branch, other):
    model = freeze_branch(tiny(), branch)
    frozen, trained = numpy_weights(model.get_layer(branch)), numpy_weights(model.get_layer(other))
    fit_step(model)
    # All weights, BatchNorm statistics included: a frozen branch runs BN in inference mode.
    for b, a in zip(frozen, numpy_weights(model.get_layer(branch))):
        np.testing.assert_array_equal(b, a)
    assert any(not np.array_equal(b, a) for b, a in zip(trained, numpy_weights(model.get_layer(other))))
    assert freeze_branch(model, branch, trainable=True).get_layer(branch).trainable


def test_kzoo_freeze_head_and_replace_head_work_on_fused_model():
    model = kzoo.freeze(tiny(), until="head")
    assert not model.get_layer("vit").trainable and not model.get_layer("cam_pool").trainable
    assert model.get_layer("head").trainable
    assert kzoo.replace_head(model, 7).output_shape == (None, 7)


@pytest.mark.parametrize("overrides", [dict(fusion="attention", return_cam=True), dict(cam_guided=False)])
def test_keras_round_trip(tmp_path, overrides):
    model = tiny(**overrides)
    x = images(3)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "fusion.keras")
    loaded = keras.saving.load_model(tmp_path / "fusion.keras", safe_mode=True, compile=False)
    got = loaded.predict(x, verbose=0)
    for e, g in zip(keras.tree.flatten(expected), keras.tree.flatten(got)):
        np.testing.assert_array_equal(e, g)


def test_branches_from_models_and_imported_weights():
    arch = dict(patch_size=8, dim=32, depth=2, heads=2, mlp_dim=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    reference = kzoo.create_model("vit_cifar_tiny", num_classes=0, weights=str(FIXTURES / "timm_vit.safetensors"),
                                  **arch)
    fused = tiny(vit_options={**arch, "weights": str(FIXTURES / "timm_vit.safetensors")})
    for r, f in zip(numpy_weights(reference), numpy_weights(fused.get_layer("vit"))):
        np.testing.assert_array_equal(r, f)
    # A model object is used as it is: its layers (and weights) are shared, a classifier is cut at `head`.
    vit = kzoo.create_model("vit_cifar_tiny", num_classes=5, **TINY_VIT)
    cnn = kzoo.create_model("vgg11_bn_cifar", num_classes=5, width_multiplier=0.125)
    model = kzoo.build_fusion(3, vit=vit, cnn=cnn, dim=8)
    assert model.input_shape == (None, 32, 32, 3)
    assert model.get_layer("vit").output.shape[-1] == 16 and model.get_layer("cnn").output.shape[1:] == (2, 2, 64)
    assert model.get_layer("vit").get_layer("block_0_attn") is vit.get_layer("block_0_attn")


def test_registered_fusion_models_and_modes():
    with shape_only():
        for fusion in ("concat", "attention"):
            model = kzoo.create_model("fusion_vit_b16_vgg16", fusion=fusion)
            assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 2)
            assert model.get_layer("cnn").output.shape[1:] == (14, 14, 512)
            assert model.get_layer("vit").output.shape[1:] == (768,)
        assert "fusion_gate" in [layer.name for layer in model.layers]


def _one_line_error(match: str, build) -> None:
    with pytest.raises(KzooError, match=match) as info:
        build()
    assert "\n" not in str(info.value)


def test_bad_configuration_one_line_errors():
    with shape_only():
        vit32 = kzoo.create_model("vit_cifar_tiny", num_classes=0, **TINY_VIT)
        cnn64 = kzoo.create_model("vgg11_bn_cifar", num_classes=0, input_shape=(64, 64, 3), width_multiplier=0.125)
        _one_line_error(r"unknown fusion 'sum'; expected one of concat, attention", lambda: tiny(fusion="sum"))
        _one_line_error(r"different input sizes \(vit .* \(32, 32, 3\), cnn .* \(64, 64, 3\)\)",
                        lambda: kzoo.build_fusion(3, vit=vit32, cnn=cnn64))
        _one_line_error(r"vit branch .* takes \(32, 32, 3\) images, but input_shape is \(64, 64, 3\)",
                        lambda: kzoo.build_fusion(3, (64, 64, 3), vit=vit32, cnn="vgg11_bn_cifar"))
        _one_line_error(r"return_cam=True needs cam_guided=True", lambda: tiny(return_cam=True, cam_guided=False))
        _one_line_error(r"cnn branch 'vgg17': unknown model", lambda: tiny(cnn="vgg17"))
        _one_line_error(r"vit_options cannot set input_shape", lambda: tiny(vit_options={"input_shape": (8, 8, 3)}))
        _one_line_error(r"vit branch 'vit_cifar_tiny': vit: image size \(30, 30\)",
                        lambda: tiny(input_shape=(30, 30, 3)))
        _one_line_error(r"no branch 'cam'; its branches: cnn, vit", lambda: freeze_branch(tiny(), "cam"))


def test_explain_shows_local_cam_and_grad_cam(tmp_path):
    from PIL import Image

    from kzoo.explain.commands import explain_images, local_branch_cam

    with_cam = tiny(return_cam=True)
    model = keras.Model(with_cam.inputs, with_cam.outputs[0])  # same layers, logits only
    batch = images(2)
    # The local CAM is read from cam_pool in the logits' forward pass: equal to the exposed output.
    np.testing.assert_allclose(local_branch_cam(model, batch), with_cam.predict(batch, verbose=0)[1], atol=1e-5)
    assert local_branch_cam(kzoo.create_model("vgg11_bn_cam_cifar", num_classes=3), batch) is None

    checkpoint = tmp_path / "fused.keras"
    model.save(checkpoint)
    paths = []
    for i, image in enumerate(batch.astype("uint8")):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(image).save(paths[-1])
    report = explain_images(str(checkpoint), paths, str(tmp_path / "out"))
    assert pathlib.Path(report["grid"]).is_file() and pathlib.Path(report["local_grid"]).is_file()
    assert all(pathlib.Path(e["local_cam"]).is_file() and pathlib.Path(e["overlay"]).is_file() for e in report["images"])
