"""VGG builder: torchvision layout, heads (and the hook for more), small-image variants."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from model_checks import images, shape_only

import kzoo
from kzoo.errors import KzooError
from kzoo.models.common import classifier
from kzoo.models.vgg import VGG_HEADS, build_vgg, vgg_head


def test_vgg16_layout():
    with shape_only():
        model = build_vgg(16)
    names = [layer.name for layer in model.layers]
    assert names[2:7] == ["block1_conv1", "block1_relu1", "block1_conv2", "stage1", "block1_pool"]
    assert names[-7:] == ["pool", "flatten", "fc1", "fc1_drop", "fc2", "fc2_drop", "head"]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 13
    assert all(c.kernel_size == (3, 3) and c.padding == "same" and c.use_bias for c in convs)
    pool = model.get_layer("block3_pool")
    assert (pool.pool_size, pool.strides, pool.padding) == ((2, 2), (2, 2), "valid")
    assert model.get_layer("pool").output.shape == (None, 7, 7, 512)
    assert model.get_layer("fc1").activation is keras.activations.relu
    assert model.get_layer("fc1_drop").rate == 0.5
    # Stage outputs are the ReLUs before each pool (full resolution, timm's feature_info).
    assert [model.get_layer(f"stage{k}").output.shape[1] for k in range(1, 6)] == [224, 112, 56, 28, 14]


def test_vgg_bn_layout():
    with shape_only():
        model = build_vgg(11, batch_norm=True)
    names = [layer.name for layer in model.layers]
    assert names[2:5] == ["block1_conv1", "block1_bn1", "stage1"]
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 8 and all((bn.epsilon, bn.momentum) == (1e-5, 0.9) for bn in bns)


def test_adaptive_pool_matches_torch_bins():
    # torch AdaptiveAvgPool2d: bin i spans [floor(i*H/7), ceil((i+1)*H/7)).
    x = np.random.default_rng(0).normal(size=(1, 10, 9, 2)).astype("float32")
    got = keras.ops.convert_to_numpy(keras.layers.AdaptiveAveragePooling2D((7, 7))(x))
    expected = np.zeros((1, 7, 7, 2), "float32")
    for i in range(7):
        for j in range(7):
            rows = slice(math.floor(i * 10 / 7), math.ceil((i + 1) * 10 / 7))
            cols = slice(math.floor(j * 9 / 7), math.ceil((j + 1) * 9 / 7))
            expected[0, i, j] = x[0, rows, cols].mean((0, 1))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_small_images_and_no_head():
    model = build_vgg((8, "M", 16, "M"), input_shape=(32, 32, 3), num_classes=0, fc_units=8)
    assert model.output_shape == (None, 8)
    assert model.get_layer("pool").output.shape == (None, 7, 7, 16)
    assert model.predict(images(1), verbose=0).shape == (1, 8)


def test_cifar_variants_use_gap_head():
    with shape_only():
        model = kzoo.create_model("vgg16_bn_cifar", num_classes=10)
    names = [layer.name for layer in model.layers]
    assert names[-2:] == ["pool", "head"]
    assert isinstance(model.get_layer("pool"), keras.layers.GlobalAveragePooling2D)
    assert model.get_layer("stage5").output.shape == (None, 2, 2, 512)


def test_head_hook():
    @vgg_head("test_gmp")
    def _gmp(x, num_classes, dropout=0.0, fc_units=4096):
        x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
        return classifier(x, num_classes) if num_classes else x

    try:
        with shape_only():
            model = build_vgg(11, head="test_gmp", num_classes=3)
        assert isinstance(model.get_layer("pool"), keras.layers.GlobalMaxPooling2D)
        assert model.output_shape == (None, 3)
        with pytest.raises(KzooError, match="registered twice"):
            vgg_head("test_gmp")(_gmp)
    finally:
        VGG_HEADS.pop("test_gmp")


def test_user_errors():
    with pytest.raises(KzooError, match="depth must be one of"):
        build_vgg(12)
    with pytest.raises(KzooError, match="ending with 'M'"):
        build_vgg((64, "M", 128))
    with pytest.raises(KzooError, match="each pool after a conv"):
        build_vgg((64, "M", "M"))
    with pytest.raises(KzooError, match="unknown head 'nope'; expected one of .*classic, gap"):
        build_vgg(11, head="nope")
