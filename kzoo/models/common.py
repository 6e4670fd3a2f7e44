"""Pieces every family builder shares: the image input, the classifier, naming conventions.

Naming conventions (relied on by `kzoo.transfer` and Grad-CAM; keep them in new families):
- the input is `images`, followed by `ImageNormalization` named `normalization`;
- each stage's output layer is `stage{k}` (CNNs, k from 1) or `block_{i}` (ViT, i from 0), and
  every layer with weights inside a stage starts with `stage{k}_`, `layer{k}_`, `block{k}_` or
  `block_{i}_`;
- the layer that turns the last feature map into one vector per image is `pool`; everything
  after it is the classifier, whose last `Dense` is `head` (float32, absent when num_classes=0);
- a model made of branch sub-models (`kzoo.models.fusion`) keeps the input and stage conventions
  inside each branch, and `pool` / `head` at the top.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import keras

from kzoo.errors import KzooError
from kzoo.layers import ImageNormalization
from kzoo.registry import ModelEntry, register_model

HEAD_NAME = "head"
POOL_NAME = "pool"
# A stage-output name (`stage3`, `block_7`) or a name inside a stage (`layer3_1_conv2`, `block2_conv1`).
STAGE_MEMBER = re.compile(r"^(?:stage|layer|block_?)(\d+)(?:_|$)")
STAGE_OUTPUT = re.compile(r"^(?:stage\d+|block_\d+)$")


def image_input(
    input_shape: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    family: str = "model",
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """The `(inputs, normalised)` pair every kzoo model starts with; takes [0, 255] pixels.

    Example:
        >>> inputs, x = image_input((32, 32, 3))
        >>> x.shape
        (None, 32, 32, 3)
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or any(not isinstance(s, int) or s <= 0 for s in input_shape):
        raise KzooError(
            f"{family}: input_shape must be (height, width, channels) of positive ints, got {input_shape}"
        )
    inputs = keras.Input(input_shape, name="images")
    kwargs = {}
    if mean is not None:
        kwargs["mean"] = mean
    if std is not None:
        kwargs["std"] = std
    return inputs, ImageNormalization(name="normalization", **kwargs)(inputs)


def classifier(x: keras.KerasTensor, num_classes: int, kernel_initializer="glorot_uniform") -> keras.KerasTensor:
    """The final `Dense` named `head`, float32 even under mixed precision so logits stay float32.

    Example:
        >>> classifier(keras.Input((8,)), 3).shape
        (None, 3)
    """
    return keras.layers.Dense(
        num_classes, kernel_initializer=kernel_initializer, dtype="float32", name=HEAD_NAME
    )(x)


def check_num_classes(num_classes: int, family: str) -> None:
    """`num_classes` must be an int >= 0 (0 builds no head).

    Example:
        >>> check_num_classes(10, "resnet")
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise KzooError(f"{family}: num_classes must be an int >= 0 (0 = no head), got {num_classes!r}")


def register_variant(model_name: str, builder: Callable[..., keras.Model], **kwargs: Any) -> ModelEntry:
    """`kzoo.registry.register_model`, with the Keras model named after the variant
    (`create_model(..., name="x")` still overrides it). The fixed variants are data in
    `kzoo.catalog`; this serves variants made at run time (`kzoo.models.matched.register_matched`).

    Example:
        >>> register_variant("resnet10", build_resnet, family="resnet", layers=(1, 1, 1, 1))  # doctest: +SKIP
    """
    return register_model(model_name, builder, keras_name=model_name, **kwargs)
