"""ResNet builder: torchvision v1.5 layout, torch-exact padding, stems, stochastic depth."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from model_checks import images, shape_only

from kzoo.errors import KzooError
from kzoo.models.resnet import build_resnet


def _conv_nhwc(x, w, stride, pad):
    """Reference convolution with torch's symmetric zero padding (numpy, NHWC / HWIO)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = w.shape[0]
    out_h = (x.shape[1] - k) // stride + 1
    out_w = (x.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], out_h, out_w, w.shape[-1]), "float64")
    for i in range(out_h):
        for j in range(out_w):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            out[:, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


def test_imagenet_stem_and_bottleneck_layout():
    with shape_only():
        model = build_resnet("bottleneck", (3, 4, 6, 3))
    names = [layer.name for layer in model.layers]
    assert names[:8] == ["images", "normalization", "conv1_pad", "conv1", "bn1", "relu", "maxpool_pad", "maxpool"]
    conv1 = model.get_layer("conv1")
    assert (conv1.kernel_size, conv1.strides, conv1.padding, conv1.use_bias) == ((7, 7), (2, 2), "valid", False)
    assert model.get_layer("conv1_pad").padding == ((3, 3), (3, 3))
    assert model.get_layer("maxpool_pad").padding == ((1, 1), (1, 1))
    # v1.5: the stride is on the 3x3 conv of the first bottleneck of a stage.
    assert model.get_layer("layer2_0_conv1").strides == (1, 1)
    assert model.get_layer("layer2_0_conv2").strides == (2, 2)
    assert model.get_layer("layer2_0_conv2_pad").padding == ((1, 1), (1, 1))
    down = model.get_layer("layer2_0_downsample_0")
    assert (down.kernel_size, down.strides, down.padding) == ((1, 1), (2, 2), "valid")
    assert "layer1_0_downsample_0" in names and "layer1_1_downsample_0" not in names
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            assert (layer.epsilon, layer.momentum) == (1e-5, 0.9)
        if isinstance(layer, keras.layers.Conv2D):
            assert not layer.use_bias
    assert [model.get_layer(f"stage{k}").output.shape[1] for k in range(1, 5)] == [56, 28, 14, 7]
    assert model.get_layer("stage4").output.shape[-1] == 2048
    assert names[-2:] == ["pool", "head"]


def test_basic_block_strides_first_conv():
    with shape_only():
        model = build_resnet("basic", (2, 2, 2, 2))
    assert model.get_layer("layer3_0_conv1").strides == (2, 2)
    assert model.get_layer("layer3_0_conv1_pad").padding == ((1, 1), (1, 1))
    assert model.get_layer("layer3_0_conv2").strides == (1, 1)
    assert "layer1_0_downsample_0" not in [layer.name for layer in model.layers]
    assert model.get_layer("stage4").output.shape[-1] == 512


def test_cifar_stem():
    with shape_only():
        model = build_resnet("basic", (2, 2, 2, 2), input_shape=(32, 32, 3), stem="cifar", num_classes=10)
    names = [layer.name for layer in model.layers]
    assert "maxpool" not in names and "conv1_pad" not in names
    conv1 = model.get_layer("conv1")
    assert (conv1.kernel_size, conv1.strides, conv1.padding) == ((3, 3), (1, 1), "same")
    assert [model.get_layer(f"stage{k}").output.shape[1] for k in range(1, 5)] == [32, 16, 8, 4]


def test_strided_convs_pad_like_torch():
    model = build_resnet("basic", (1, 1), input_shape=(16, 16, 3), width=4, num_classes=0)
    taps = [
        model.get_layer("normalization").output,
        model.get_layer("conv1").output,
        model.get_layer("layer2_0_conv1_pad").input,
        model.get_layer("layer2_0_conv1").output,
    ]
    probe = keras.Model(model.input, taps)
    x = images(1, (16, 16, 3))
    normalized, stem, block_in, block_out = [np.asarray(t, "float64") for t in probe.predict(x, verbose=0)]
    w = keras.ops.convert_to_numpy(model.get_layer("conv1").kernel)
    np.testing.assert_allclose(stem, _conv_nhwc(normalized, w, 2, 3), rtol=1e-4, atol=1e-4)
    w = keras.ops.convert_to_numpy(model.get_layer("layer2_0_conv1").kernel)
    np.testing.assert_allclose(block_out, _conv_nhwc(block_in, w, 2, 1), rtol=1e-4, atol=1e-4)


def test_drop_path_schedule():
    with shape_only():
        model = build_resnet("basic", (1, 1, 1), input_shape=(32, 32, 3), drop_path=0.2, num_classes=2)
    names = [layer.name for layer in model.layers]
    assert "layer1_0_drop_path" not in names
    assert model.get_layer("layer2_0_drop_path").rate == pytest.approx(0.1)
    assert model.get_layer("layer3_0_drop_path").rate == pytest.approx(0.2)


def test_user_errors():
    with pytest.raises(KzooError, match="unknown block"):
        build_resnet("wide")
    with pytest.raises(KzooError, match="unknown stem"):
        build_resnet(stem="tiny")
    with pytest.raises(KzooError, match="positive block counts"):
        build_resnet(layers=(2, 0))
    with pytest.raises(KzooError, match="num_classes"):
        build_resnet(num_classes=-1)
    with pytest.raises(KzooError, match="input_shape"):
        build_resnet(input_shape=(32, 32))
