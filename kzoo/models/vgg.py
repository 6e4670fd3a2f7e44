"""VGG (Simonyan & Zisserman 2014) exactly as torchvision builds it, plus small-image variants.

Layer names: block k's convolutions `block{k}_conv{j}` (+ `block{k}_bn{j}`, `block{k}_relu{j}`);
the ReLU before block k's max-pool is the stage output `stage{k}`; the pool is `block{k}_pool`.
Classic head: `pool` (adaptive average to 7x7), `flatten`, `fc1`, `fc2`, `head`
(torchvision's classifier.0 / .3 / .6). torchvision's `features.{i}` indices follow from the
order of the conv (and BN) layers; the weights loader maps them.
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras

from kzoo.errors import KzooError
from kzoo.layers.batchnorm import FusedBatchNormalization
from kzoo.models.common import check_num_classes, classifier, image_input
from kzoo.models.features import feature_model, resolve_out_indices

# torchvision's configurations "A", "B", "D", "E": conv widths, "M" = 2x2 max-pool.
VGG_CONFIGS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}

# torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu") for convs, N(0, 0.01) for Linear.
CONV_INIT = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")
DENSE_INIT = keras.initializers.RandomNormal(stddev=0.01)

# A head turns the last feature map into logits (or into pre-logit features if num_classes=0).
# Signature: head(x, num_classes, dropout=..., fc_units=...) -> tensor. It must name its
# pooling layer "pool" and its final Dense "head" (`kzoo.models.common.classifier`).
HeadBuilder = Callable[..., keras.KerasTensor]
VGG_HEADS: dict[str, HeadBuilder] = {}


def vgg_head(name: str) -> Callable[[HeadBuilder], HeadBuilder]:
    """Register a VGG head under `name` (how the CAM head plugs in: `build_vgg(head="cam")`).

    Example:
        >>> @vgg_head("gmp")  # doctest: +SKIP
        ... def _gmp(x, num_classes, dropout=0.0, fc_units=4096):
        ...     x = keras.layers.GlobalMaxPooling2D(name="pool")(x)
        ...     return classifier(x, num_classes) if num_classes else x
    """

    def register(fn: HeadBuilder) -> HeadBuilder:
        if name in VGG_HEADS:
            raise KzooError(f"VGG head {name!r} is registered twice")
        VGG_HEADS[name] = fn
        return fn

    return register


@vgg_head("classic")
def _classic_head(x, num_classes: int, dropout: float = 0.5, fc_units: int = 4096):
    # torchvision: AdaptiveAvgPool2d((7, 7)) -> flatten -> (Linear ReLU Dropout) x 2 -> Linear.
    # Keras flattens NHWC where torch flattens NCHW; the weights loader permutes fc1's rows.
    height, width = x.shape[1], x.shape[2]
    if height % 7 == 0 and width % 7 == 0:
        # Same result as adaptive pooling here, and Keras 3.15's AdaptiveAveragePooling2D returns
        # NaN under JAX when the input size is a multiple of 7 (224x224 input: a 7x7 map).
        x = keras.layers.AveragePooling2D((height // 7, width // 7), name="pool")(x)
    else:
        x = keras.layers.AdaptiveAveragePooling2D((7, 7), name="pool")(x)
    return fc_classifier(keras.layers.Flatten(name="flatten")(x), num_classes, dropout, fc_units)


def fc_classifier(x, num_classes: int, dropout: float, fc_units: int,
                  hidden_init: keras.initializers.Initializer = DENSE_INIT):
    """VGG's classifier on pooled features: (Dense ReLU Dropout) x 2, then the logits (if any).
    The logits layer always starts N(0, 0.01); `hidden_init` starts the two hidden layers."""
    for j in (1, 2):
        x = keras.layers.Dense(fc_units, activation="relu", kernel_initializer=hidden_init, name=f"fc{j}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"fc{j}_drop")(x)
    return classifier(x, num_classes, DENSE_INIT) if num_classes else x


@vgg_head("gap")
def _gap_head(x, num_classes: int, dropout: float = 0.0, fc_units: int = 4096):
    # Global average pooling straight into the classifier: small images, few parameters.
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_drop")(x)
    return classifier(x, num_classes, DENSE_INIT) if num_classes else x


def build_vgg(
    depth: int | Sequence[int | str] = 16,
    batch_norm: bool = False,
    num_classes: int = 1000,
    input_shape: Sequence[int] = (224, 224, 3),
    head: str = "classic",
    dropout: float = 0.5,
    width_multiplier: float = 1.0,
    fc_units: int = 4096,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build a torchvision VGG: 3x3 convs (+BN) + ReLU, 2x2 max-pools, then a head.

    Args:
        depth: 11, 13, 16 or 19, or a custom configuration like `(64, "M", 128, "M")`.
        batch_norm: BatchNorm (eps 1e-5, torch momentum 0.1) between each conv and its ReLU.
        num_classes: classifier outputs; 0 drops only the final Dense (`head`).
        head: a name in `VGG_HEADS`: "classic" (torchvision) or "gap".
        dropout: dropout in the head.
        width_multiplier: scales every conv width (1.0 = the reference network).
        fc_units: width of the classic head's two hidden Dense layers.
        features_only: return the stage outputs (pre-pool ReLUs) in `out_indices`.

    Example:
        >>> build_vgg(16).count_params()
        138357544
    """
    check_num_classes(num_classes, "vgg")
    if isinstance(depth, int):
        if depth not in VGG_CONFIGS:
            raise KzooError(f"vgg: depth must be one of {sorted(VGG_CONFIGS)} or a config tuple, got {depth}")
        cfg = VGG_CONFIGS[depth]
    else:
        cfg = tuple(depth)
    widths_ok = all(v == "M" or (isinstance(v, int) and v > 0) for v in cfg)
    # Every pool follows a conv (no leading or doubled "M") and the config ends with one.
    pools_ok = bool(cfg) and cfg[0] != "M" and cfg[-1] == "M" and ("M", "M") not in set(zip(cfg, cfg[1:]))
    if not (widths_ok and pools_ok):
        raise KzooError(
            f"vgg: a config is positive conv widths and 'M' pools, each pool after a conv, ending with 'M'; got {cfg}"
        )
    if head not in VGG_HEADS:
        raise KzooError(f"vgg: unknown head {head!r}; expected one of {', '.join(sorted(VGG_HEADS))}")
    name = name or "vgg"
    if features_only:
        resolve_out_indices(out_indices, cfg.count("M"), name)  # fail before building anything
    inputs, x = image_input(input_shape, mean, std, "vgg")

    stages = []
    block, conv = 1, 0
    for index, value in enumerate(cfg):
        if value == "M":
            stages.append(x)
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
            block, conv = block + 1, 0
            continue
        conv += 1
        p = f"block{block}"
        width = max(1, round(value * width_multiplier))
        x = keras.layers.Conv2D(width, 3, padding="same", kernel_initializer=CONV_INIT, name=f"{p}_conv{conv}")(x)
        if batch_norm:
            x = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, name=f"{p}_bn{conv}")(x)
        # The ReLU before each pool is the stage output: full resolution for Grad-CAM (timm's choice).
        last_in_block = cfg[index + 1] == "M"
        x = keras.layers.ReLU(name=f"stage{block}" if last_in_block else f"{p}_relu{conv}")(x)

    if features_only:
        return feature_model(inputs, stages, out_indices, name)
    x = VGG_HEADS[head](x, num_classes, dropout=dropout, fc_units=fc_units)
    return keras.Model(inputs, x, name=name)
