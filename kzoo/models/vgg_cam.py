"""VGG with a CAM head ("VGG16 with a Grad-CAM layer"): logits and a heatmap from one forward pass.

The backbone is `build_vgg(features_only=True)` (layers named as in `kzoo.models.vgg`); the last
(or `cam_stage`) pre-pool feature map goes into `kzoo.layers.CAMHead`. The model has two
outputs, `logits` (float32) and `heatmap` (B, H, W) in [0, 1] at the input resolution; train it
with a loss on `logits` only: `compile(loss=[ce, None])` and `fit(x, (y, None))`.
"""

from __future__ import annotations

from typing import Sequence

import keras

from kzoo.layers.cam import CAMHead
from kzoo.models.common import check_num_classes
from kzoo.models.vgg import build_vgg


def build_vgg_cam(
    depth: int | Sequence[int | str] = 16,
    batch_norm: bool = False,
    num_classes: int = 1000,
    input_shape: Sequence[int] = (224, 224, 3),
    cam_stage: int = -1,
    width_multiplier: float = 1.0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """VGG conv stages + `CAMHead` on stage `cam_stage` (negative counts from the end).

    `num_classes=0` returns the globally pooled features of that stage (no head, one output);
    `features_only` returns the backbone's stage maps exactly as `build_vgg` does.

    Example:
        >>> model = build_vgg_cam(11, num_classes=10, input_shape=(32, 32, 3), width_multiplier=0.25)
        >>> [tuple(s) for s in model.output_shape]
        [(None, 10), (None, 32, 32)]
    """
    check_num_classes(num_classes, "vgg_cam")
    name = name or "vgg_cam"
    common = dict(depth=depth, batch_norm=batch_norm, input_shape=input_shape, width_multiplier=width_multiplier,
                  mean=mean, std=std, name=name)
    if features_only:
        return build_vgg(num_classes=0, features_only=True, out_indices=out_indices, **common)
    backbone = build_vgg(num_classes=0, features_only=True, out_indices=(cam_stage,), **common)
    features = backbone.outputs[0]  # features_only returns a list, even of one map
    if num_classes == 0:
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
        return keras.Model(backbone.input, pooled, name=name)
    logits, heatmap = CAMHead(
        num_classes, output_size=tuple(input_shape[:2]), kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        name="cam_head",
    )(features)
    logits = keras.layers.Identity(dtype="float32", name="logits")(logits)
    heatmap = keras.layers.Identity(dtype="float32", name="heatmap")(heatmap)
    return keras.Model(backbone.input, [logits, heatmap], name=name)
