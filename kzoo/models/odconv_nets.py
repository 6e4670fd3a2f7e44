"""ODConv networks: OD-ResNet (Li, Zhou, Yao, ICLR 2022) and a compact traffic-sign network.

- `odresnet18`, `odresnet50`: torchvision ResNets whose block convolutions (the 3x3 ones in
  basic blocks; the 1x1, 3x3, 1x1 ones in bottlenecks) are ODConv2D, as in the official
  implementation (stem and shortcut convolutions stay plain). `_1x`/`_4x` suffixes fix
  `kernel_num` to 1 or 4; the bare names use 1 (the official default). Trainable parameters
  equal the official PyTorch models: 11,943,944 / 44,901,640 (18, 1x / 4x) and
  28,635,112 / 90,670,888 (50, 1x / 4x) at 1000 classes.
- `odconv_gtsrb`: a compact network for 32x32 traffic signs (43 classes): a multi-scale stem
  (1/3/5/7 convolutions summed) and three ODConv stages. `conv_gtsrb` is its twin with plain
  Conv2D of the same widths, for comparisons.

Train with `ODConvTemperatureScheduler` (kzoo.layers.odconv) to anneal the attention temperature.
"""

from __future__ import annotations

from typing import Sequence

import keras

from kzoo.errors import KzooError
from kzoo.layers.batchnorm import FusedBatchNormalization
from kzoo.layers.multiscale import MultiScaleFusion
from kzoo.layers.odconv import FanOutNormal, ODConv2D
from kzoo.layers.preprocess import ImageNormalization
from kzoo.models.features import resolve_out_indices

BN = dict(momentum=0.9, epsilon=1e-5)  # PyTorch BatchNorm2d defaults
CONV_INIT = FanOutNormal()  # kaiming_normal(fan_out), drawn with NumPy (fast builds under JAX)


# ------------------------------------------------------------------------------------ shared
def _check_common(family: str, num_classes, input_shape, kernel_num, min_size: int) -> tuple[int, int, int]:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise KzooError(f"{family}: num_classes must be an int >= 0 (0 = no head), got {num_classes!r}")
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in input_shape):
        raise KzooError(f"{family}: input_shape must be (height, width, channels) of positive ints, got {input_shape}")
    if min(input_shape[:2]) < min_size:
        raise KzooError(
            f"{family}: input is {input_shape[0]}x{input_shape[1]}, the network needs at least {min_size}x{min_size}"
        )
    if kernel_num is not None and (isinstance(kernel_num, bool) or not isinstance(kernel_num, int) or kernel_num < 1):
        raise KzooError(f"{family}: kernel_num must be a positive int (1 or 4 in the paper), got {kernel_num!r}")
    return input_shape


def _finish(inputs, stages, num_classes, features_only, out_indices, dropout, name, head_init=None):
    """Features model, or GAP (`pool`) -> dropout -> float32 `head` (kzoo's naming conventions)."""
    if features_only:
        indices = resolve_out_indices(out_indices, len(stages), name)
        return keras.Model(inputs, [stages[i] for i in indices], name=name)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(stages[-1])
    if num_classes:
        if dropout:
            x = keras.layers.Dropout(dropout, name="head_drop")(x)
        x = keras.layers.Dense(num_classes, kernel_initializer=head_init or FanOutNormal(stddev=0.01),
                               dtype="float32", name="head")(x)
    return keras.Model(inputs, x, name=name)


# --------------------------------------------------------------------------------- OD-ResNet
def _odconv(x, filters, kernel_size, stride, name, kernel_num, reduction):
    # PyTorch padding (k // 2 on each side) inside the layer, so the attention's global pool
    # sees the unpadded input exactly as in the reference.
    return ODConv2D(
        filters, kernel_size, strides=stride, padding=kernel_size // 2, kernel_num=kernel_num,
        reduction=reduction, name=name,
    )(x)


def _bn(x, name, gamma="ones"):
    return FusedBatchNormalization(gamma_initializer=gamma, name=name, **BN)(x)


def _shortcut(x, filters, stride, name):
    # 1x1, stride s, no padding: "valid" is PyTorch's padding=0
    x = keras.layers.Conv2D(
        filters, 1, strides=stride, use_bias=False, kernel_initializer=CONV_INIT, name=name + "_conv"
    )(x)
    return _bn(x, name + "_bn")


def _basic_block(x, planes, stride, name, kernel_num, reduction, out_name=None):
    in_channels = x.shape[-1]
    shortcut = x
    if stride != 1 or in_channels != planes:
        shortcut = _shortcut(x, planes, stride, name + "_downsample")
    y = _odconv(x, planes, 3, stride, name + "_conv1", kernel_num, reduction)
    y = keras.layers.ReLU(name=name + "_relu1")(_bn(y, name + "_bn1"))
    y = _odconv(y, planes, 3, 1, name + "_conv2", kernel_num, reduction)
    y = _bn(y, name + "_bn2")
    y = keras.layers.Add(name=name + "_add")([y, shortcut])
    return keras.layers.ReLU(name=out_name or name + "_out")(y)


def _bottleneck(x, planes, stride, name, kernel_num, reduction, out_name=None):
    in_channels = x.shape[-1]
    shortcut = x
    if stride != 1 or in_channels != planes * 4:
        shortcut = _shortcut(x, planes * 4, stride, name + "_downsample")
    y = _odconv(x, planes, 1, 1, name + "_conv1", kernel_num, reduction)
    y = keras.layers.ReLU(name=name + "_relu1")(_bn(y, name + "_bn1"))
    y = _odconv(y, planes, 3, stride, name + "_conv2", kernel_num, reduction)
    y = keras.layers.ReLU(name=name + "_relu2")(_bn(y, name + "_bn2"))
    y = _odconv(y, planes * 4, 1, 1, name + "_conv3", kernel_num, reduction)
    y = _bn(y, name + "_bn3")
    y = keras.layers.Add(name=name + "_add")([y, shortcut])
    return keras.layers.ReLU(name=out_name or name + "_out")(y)


def build_odresnet(
    block: str = "basic",
    layers: Sequence[int] = (2, 2, 2, 2),
    num_classes: int = 1000,
    input_shape: Sequence[int] = (224, 224, 3),
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    kernel_num: int = 1,
    reduction: float = 0.0625,
    dropout: float = 0.0,
    widths: Sequence[int] = (64, 128, 256, 512),
    name: str = "odresnet",
) -> keras.Model:
    """OD-ResNet: torchvision ResNet-v1.5 layout with ODConv2D block convolutions.

    Args:
        block: "basic" (ResNet-18/34) or "bottleneck" (ResNet-50/101).
        layers: blocks per stage.
        kernel_num: kernels per ODConv (1 or 4 in the paper).
        reduction: attention hidden width ratio (hidden = max(int(C * reduction), 16)).
        dropout: before the classifier (the official script's default is 0).
        widths: planes of the four stages (torchvision's by default; the stem has widths[0]
            channels). Narrower widths give fast test-size versions of the same network.

    Example:
        >>> model = build_odresnet("basic", (1, 1, 1, 1), num_classes=10, input_shape=(32, 32, 3))
        >>> model.output_shape
        (None, 10)
    """
    if block not in ("basic", "bottleneck"):
        raise KzooError(f"{name}: block must be 'basic' or 'bottleneck', got {block!r}")
    if len(tuple(layers)) != 4 or any(not isinstance(n, int) or n < 1 for n in layers):
        raise KzooError(f"{name}: layers must be four positive block counts, got {layers!r}")
    widths = tuple(widths)
    if len(widths) != 4 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise KzooError(f"{name}: widths must be four positive ints, got {widths!r}")
    input_shape = _check_common(name, num_classes, input_shape, kernel_num, min_size=32)
    make_block = _basic_block if block == "basic" else _bottleneck
    inputs = keras.Input(input_shape, name="images")
    x = ImageNormalization(name="normalization")(inputs)
    x = keras.layers.ZeroPadding2D(3, name="stem_pad")(x)
    x = keras.layers.Conv2D(widths[0], 7, strides=2, use_bias=False, kernel_initializer=CONV_INIT, name="stem_conv")(x)
    x = keras.layers.ReLU(name="stem_relu")(_bn(x, "stem_bn"))
    x = keras.layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="stem_pool")(x)
    stages = []
    for s, (planes, blocks) in enumerate(zip(widths, layers), start=1):
        for b in range(blocks):
            stride = 2 if (s > 1 and b == 0) else 1
            out_name = f"stage{s}" if b == blocks - 1 else None
            x = make_block(x, planes, stride, f"stage{s}_block{b}", kernel_num, reduction, out_name=out_name)
        stages.append(x)
    return _finish(inputs, stages, num_classes, features_only, out_indices, dropout, name,
                   head_init=FanOutNormal(stddev=0.01))


def odresnet18(num_classes=1000, input_shape=(224, 224, 3), features_only=False, out_indices=None, **kwargs):
    """ODConv ResNet-18 (kernel_num=1 unless given)."""
    kwargs.setdefault("name", "odresnet18")
    kwargs.setdefault("layers", (2, 2, 2, 2))
    return build_odresnet("basic", num_classes=num_classes, input_shape=input_shape, features_only=features_only,
                          out_indices=out_indices, **kwargs)


def odresnet50(num_classes=1000, input_shape=(224, 224, 3), features_only=False, out_indices=None, **kwargs):
    """ODConv ResNet-50 (kernel_num=1 unless given)."""
    kwargs.setdefault("name", "odresnet50")
    kwargs.setdefault("layers", (3, 4, 6, 3))
    return build_odresnet("bottleneck", num_classes=num_classes, input_shape=input_shape, features_only=features_only,
                          out_indices=out_indices, **kwargs)


# --------------------------------------------------------------------------- GTSRB networks
def build_gtsrb_net(
    num_classes: int = 43,
    input_shape: Sequence[int] = (32, 32, 3),
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    conv: str = "odconv",
    widths: Sequence[int] = (32, 64, 128, 256),
    kernel_num: int = 1,
    reduction: float = 0.0625,
    dropout: float = 0.2,
    name: str = "odconv_gtsrb",
) -> keras.Model:
    """Compact traffic-sign network for 32x32 inputs.

    stem: MultiScaleFusion(widths[0]) (1/3/5/7 summed) -> BN -> ReLU -> max-pool (16x16);
    stage1 (16x16): 2 convs widths[1]; stage2 (8x8): 2 convs widths[2]; stage3 (4x4): 1 conv
    widths[3]; max-pool between stages; GAP -> dropout -> Dense. Every 3x3 conv is ODConv2D
    (`conv="odconv"`) or Conv2D (`conv="conv"`), each followed by BN and ReLU. The feature
    stages are the stem and the three stages.

    Example:
        >>> build_gtsrb_net(conv="conv").count_params() < 1_000_000
        True
    """
    if conv not in ("odconv", "conv"):
        raise KzooError(f"{name}: conv must be 'odconv' or 'conv', got {conv!r}")
    widths = tuple(widths)
    if len(widths) != 4 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise KzooError(f"{name}: widths must be four positive ints, got {widths!r}")
    input_shape = _check_common(name, num_classes, input_shape, kernel_num, min_size=8)
    inputs = keras.Input(input_shape, name="images")
    x = ImageNormalization(name="normalization")(inputs)
    x = MultiScaleFusion(widths[0], use_bias=False, kernel_initializer=CONV_INIT, name="stem_fusion")(x)
    x = keras.layers.ReLU(name="stem_relu")(_bn(x, "stem_bn"))
    stages = [keras.layers.MaxPooling2D(2, name="stem")(x)]

    def conv_bn_relu(x, filters, prefix, out_name=None):
        if conv == "odconv":
            x = ODConv2D(
                filters, 3, padding="same", kernel_num=kernel_num, reduction=reduction, name=prefix + "_conv"
            )(x)
        else:
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=CONV_INIT,
                                    name=prefix + "_conv")(x)
        return keras.layers.ReLU(name=out_name or prefix + "_relu")(_bn(x, prefix + "_bn"))

    x = stages[0]
    for s, (filters, repeats) in enumerate(zip(widths[1:], (2, 2, 1)), start=1):
        if s > 1:
            x = keras.layers.MaxPooling2D(2, name=f"stage{s}_pool")(x)
        for r in range(repeats):
            x = conv_bn_relu(x, filters, f"stage{s}_{r}", out_name=f"stage{s}" if r == repeats - 1 else None)
        stages.append(x)
    return _finish(inputs, stages, num_classes, features_only, out_indices, dropout, name)


def odconv_gtsrb(num_classes=43, input_shape=(32, 32, 3), features_only=False, out_indices=None, **kwargs):
    """The compact ODConv traffic-sign network."""
    kwargs.setdefault("name", "odconv_gtsrb")
    return build_gtsrb_net(num_classes, input_shape, features_only, out_indices, **kwargs)


def conv_gtsrb(num_classes=43, input_shape=(32, 32, 3), features_only=False, out_indices=None, **kwargs):
    """`odconv_gtsrb`'s twin with plain Conv2D."""
    kwargs.setdefault("name", "conv_gtsrb")
    kwargs.setdefault("conv", "conv")
    return build_gtsrb_net(num_classes, input_shape, features_only, out_indices, **kwargs)
