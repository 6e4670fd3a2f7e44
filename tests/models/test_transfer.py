"""kzoo.freeze / kzoo.replace_head on every family."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from model_checks import fit_one_step, images, one_hot, shape_only

import kzoo
from kzoo.errors import KzooError

TINY_RESNET = dict(num_classes=4, input_shape=(32, 32, 3), width=4, layers=(1, 1, 1, 1))
TINY_VIT = dict(num_classes=4, input_shape=(32, 32, 3), dim=16, depth=3, heads=2, mlp_dim=32, patch_size=8)
TINY_VGG = dict(num_classes=4, input_shape=(32, 32, 3), width_multiplier=0.125, fc_units=8)


def _trainable_layers(model):
    return {layer.name for layer in model.layers if layer.trainable and layer.weights}


def test_freeze_head():
    with shape_only():
        model = kzoo.create_model("resnet18", **TINY_RESNET)
    assert kzoo.freeze(model) is model
    assert _trainable_layers(model) == {"head"}
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]


def test_freeze_resnet_stage():
    with shape_only():
        model = kzoo.create_model("resnet50", **TINY_RESNET)
    kzoo.freeze(model, until="stage3")
    trainable = _trainable_layers(model)
    assert "head" in trainable and "layer3_0_conv2" in trainable and "layer4_0_bn3" in trainable
    assert not {"conv1", "bn1", "layer1_0_conv1", "layer2_0_downsample_1"} & trainable
    kzoo.freeze(model, until="stage4")
    assert "layer3_0_conv2" not in _trainable_layers(model)
    kzoo.freeze(model, until=None)
    assert _trainable_layers(model) == {layer.name for layer in model.layers if layer.weights}


def test_freeze_last_vit_blocks():
    with shape_only():
        model = kzoo.create_model("vit_tiny_patch16_224", **TINY_VIT)
    kzoo.freeze(model, until=2)
    trainable = _trainable_layers(model)
    assert {"block_1_attn", "block_2_mlp_fc2", "norm", "head"} <= trainable
    assert not {"patch_embed", "cls_token", "pos_embed", "block_0_attn", "block_0_norm1"} & trainable
    assert model.get_layer("block_1_attn").qkv.trainable
    kzoo.freeze(model, until=0)
    assert _trainable_layers(model) == {"head"}
    kzoo.freeze(model, until="block_2")
    assert "block_2_attn" in _trainable_layers(model) and "block_1_attn" not in _trainable_layers(model)


def test_freeze_last_vgg_blocks():
    with shape_only():
        model = kzoo.create_model("vgg11_bn", **TINY_VGG)
    kzoo.freeze(model, until=1)
    trainable = _trainable_layers(model)
    assert {"block5_conv1", "block5_bn2", "fc1", "fc2", "head"} <= trainable
    assert not {"block4_conv2", "block1_bn1"} & trainable
    kzoo.freeze(model, until="head")
    assert _trainable_layers(model) == {"fc1", "fc2", "head"}


def test_freeze_errors():
    with shape_only():
        model = kzoo.create_model("resnet18", **TINY_RESNET)
        features = kzoo.create_model("resnet18", features_only=True, **TINY_RESNET)
    message = r"unknown stage 'stage5' for resnet18; valid: head, stage1, stage2, stage3, stage4 or an int 0\.\.4"
    with pytest.raises(KzooError, match=message):
        kzoo.freeze(model, until="stage5")
    with pytest.raises(KzooError, match="out of range"):
        kzoo.freeze(model, until=5)
    with pytest.raises(KzooError):
        kzoo.freeze(model, until=True)
    with pytest.raises(KzooError, match="no classifier"):
        kzoo.freeze(features, until="head")
    kzoo.freeze(features, until=1)
    assert "layer4_0_conv1" in _trainable_layers(features)


def test_frozen_batchnorm_keeps_its_statistics():
    model = kzoo.create_model("resnet18", **TINY_RESNET)
    kzoo.freeze(model, until="stage3")
    frozen_bn, live_bn = model.get_layer("layer1_0_bn1"), model.get_layer("layer3_0_bn1")
    frozen_before = [keras.ops.convert_to_numpy(w).copy() for w in frozen_bn.weights]
    live_before = keras.ops.convert_to_numpy(live_bn.moving_mean).copy()
    frozen_conv = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel).copy()
    fit_one_step(model, images(4), one_hot([0, 1, 2, 3], 4))
    for before, after in zip(frozen_before, frozen_bn.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(after), before)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("conv1").kernel), frozen_conv)
    assert not np.array_equal(keras.ops.convert_to_numpy(live_bn.moving_mean), live_before)


def test_replace_head_reuses_the_network():
    model = kzoo.create_model("resnet18", **TINY_RESNET)
    new = kzoo.replace_head(model, 7)
    assert new.output_shape == (None, 7) and new.name == model.name
    assert new.get_layer("conv1") is model.get_layer("conv1")
    assert new.get_layer("head") is not model.get_layer("head")
    assert new.get_layer("head").dtype_policy.name == "float32"
    x = images(2)
    pooled = keras.Model(model.input, model.get_layer("pool").output).predict(x, verbose=0)
    head = new.get_layer("head")
    expected = pooled @ keras.ops.convert_to_numpy(head.kernel) + keras.ops.convert_to_numpy(head.bias)
    np.testing.assert_allclose(new.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert kzoo.replace_head(model, 0).output_shape == (None, 32)


def test_replace_head_on_headless_and_frozen_models():
    with shape_only():
        headless = kzoo.create_model("vit_tiny_patch16_224", **{**TINY_VIT, "num_classes": 0})
        assert kzoo.replace_head(headless, 3).output_shape == (None, 3)
        model = kzoo.freeze(kzoo.create_model("vgg11", **TINY_VGG))
        new = kzoo.replace_head(model, 2)
        assert _trainable_layers(new) == {"fc1", "fc2", "head"}
        features = kzoo.create_model("vgg11", features_only=True, **TINY_VGG)
    with pytest.raises(KzooError, match="no classifier"):
        kzoo.replace_head(features, 3)
    with pytest.raises(KzooError, match="num_classes"):
        kzoo.replace_head(model, -1)


def test_replace_head_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = kzoo.create_model("resnet18", **TINY_RESNET)
        new = kzoo.replace_head(model, 3)
        assert new.output.dtype == "float32"
        assert new.predict(images(2), verbose=0).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_freeze_after_save_and_load(tmp_path):
    model = kzoo.create_model("vit_tiny_patch16_224", **TINY_VIT)
    path = tmp_path / "vit.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    kzoo.freeze(loaded, until=1)
    assert {"block_2_attn", "norm", "head"} <= _trainable_layers(loaded)
    assert "block_1_attn" not in _trainable_layers(loaded)
