"""ResNet v1.5 (He et al. 2015) exactly as torchvision builds it, plus CIFAR-stem variants.

Layer names follow torchvision's module names with "." -> "_" (`conv1`, `bn1`,
`layer3_1_conv2`, `layer3_0_downsample_0`, ...), so weights map by name; the classifier
`fc` is `head`, and the last block of stage k outputs through a ReLU named `stage{k}`.

Every strided convolution or pool with a kernel > 1 pads explicitly with `ZeroPadding2D`
and then runs "valid": torch pads symmetrically, Keras "same" with stride 2 pads only
bottom/right, which would shift every feature map by a pixel against torch weights.
"""

from __future__ import annotations

from typing import Sequence

import keras

from kzoo.errors import KzooError
from kzoo.layers import DropPath, FusedBatchNormalization
from kzoo.models.common import check_num_classes, classifier, image_input
from kzoo.models.features import feature_model, resolve_out_indices

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu") for every conv.
CONV_INIT = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
BLOCKS = {"basic": 1, "bottleneck": 4}  # block type -> channel expansion
STEMS = ("imagenet", "cifar")


def _bn(name: str) -> FusedBatchNormalization:
    # torch BatchNorm2d(eps=1e-5, momentum=0.1) == Keras momentum 0.9 (weight on the old value).
    return FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name=name)


def _conv(x, filters: int, kernel: int, stride: int, name: str):
    """Conv without bias and with torch's symmetric padding of (kernel - 1) // 2."""
    pad = (kernel - 1) // 2
    if pad and stride > 1:
        x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        padding = "valid"
    elif pad:
        # Stride 1: "same" pads symmetrically for odd kernels, identical to torch.
        padding = "same"
    else:
        padding = "valid"
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding=padding, use_bias=False, kernel_initializer=CONV_INIT, name=name
    )(x)


def _block(x, kind: str, planes: int, stride: int, name: str, drop_path: float, out_name: str):
    expansion = BLOCKS[kind]
    shortcut = x
    if stride != 1 or x.shape[-1] != planes * expansion:
        shortcut = _conv(x, planes * expansion, 1, stride, f"{name}_downsample_0")
        shortcut = _bn(f"{name}_downsample_1")(shortcut)
    if kind == "basic":
        y = _conv(x, planes, 3, stride, f"{name}_conv1")
        y = _bn(f"{name}_bn1")(y)
        y = keras.layers.ReLU(name=f"{name}_relu1")(y)
        y = _conv(y, planes, 3, 1, f"{name}_conv2")
        y = _bn(f"{name}_bn2")(y)
    else:
        # v1.5: the stride sits on the 3x3 conv, not on the first 1x1.
        y = _conv(x, planes, 1, 1, f"{name}_conv1")
        y = _bn(f"{name}_bn1")(y)
        y = keras.layers.ReLU(name=f"{name}_relu1")(y)
        y = _conv(y, planes, 3, stride, f"{name}_conv2")
        y = _bn(f"{name}_bn2")(y)
        y = keras.layers.ReLU(name=f"{name}_relu2")(y)
        y = _conv(y, planes * expansion, 1, 1, f"{name}_conv3")
        y = _bn(f"{name}_bn3")(y)
    if drop_path:
        y = DropPath(drop_path, name=f"{name}_drop_path")(y)
    x = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=out_name)(x)


def build_resnet(
    block: str = "basic",
    layers: Sequence[int] = (2, 2, 2, 2),
    num_classes: int = 1000,
    input_shape: Sequence[int] = (224, 224, 3),
    stem: str = "imagenet",
    width: int = 64,
    drop_path: float = 0.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build a torchvision ResNet (v1.5).

    Args:
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101/152).
        layers: blocks per stage.
        num_classes: classifier outputs; 0 returns the pooled features.
        stem: "imagenet" (7x7/2 conv + 3x3/2 max-pool) or "cifar" (3x3/1 conv, no pool).
        width: stem width; stage k has width * 2**(k-1) planes (64 = the reference network).
        drop_path: stochastic depth on the residual branch, rising linearly over the blocks.
        features_only: return the outputs of the stages in `out_indices` (strides 4..32 with
            the ImageNet stem, 1..8 with the CIFAR stem).

    Example:
        >>> model = build_resnet("bottleneck", (3, 4, 6, 3))
        >>> sum(int(keras.ops.size(w)) for w in model.trainable_weights)
        25557032
    """
    check_num_classes(num_classes, "resnet")
    if block not in BLOCKS:
        raise KzooError(f"resnet: unknown block {block!r}; expected one of {', '.join(BLOCKS)}")
    if stem not in STEMS:
        raise KzooError(f"resnet: unknown stem {stem!r}; expected one of {', '.join(STEMS)}")
    layers = tuple(layers)
    if not layers or any(not isinstance(n, int) or n < 1 for n in layers):
        raise KzooError(f"resnet: layers must be positive block counts per stage, got {layers}")
    name = name or "resnet"
    if features_only:
        resolve_out_indices(out_indices, len(layers), name)  # fail before building anything
    inputs, x = image_input(input_shape, mean, std, "resnet")
    if stem == "imagenet":
        x = _conv(x, width, 7, 2, "conv1")
        x = _bn("bn1")(x)
        x = keras.layers.ReLU(name="relu")(x)
        # torch pads the max-pool with -inf; after a ReLU zeros are equivalent.
        x = keras.layers.ZeroPadding2D(1, name="maxpool_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="maxpool")(x)
    else:
        x = _conv(x, width, 3, 1, "conv1")
        x = _bn("bn1")(x)
        x = keras.layers.ReLU(name="relu")(x)

    total = sum(layers)
    index = 0
    stages = []
    for k, blocks in enumerate(layers, start=1):
        planes = width * 2 ** (k - 1)
        for j in range(blocks):
            stride = 2 if k > 1 and j == 0 else 1
            rate = drop_path * index / max(total - 1, 1)
            out_name = f"stage{k}" if j == blocks - 1 else f"layer{k}_{j}_out"
            x = _block(x, block, planes, stride, f"layer{k}_{j}", rate, out_name)
            index += 1
        stages.append(x)

    if features_only:
        return feature_model(inputs, stages, out_indices, name)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if num_classes:
        x = classifier(x, num_classes)
    return keras.Model(inputs, x, name=name)
