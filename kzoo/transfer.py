"""Transfer learning: freeze a model up to a stage, or give it a new classifier.

Both work on the layer-naming conventions of `kzoo.models.common` (stage outputs `stage{k}` /
`block_{i}`, stage members prefixed `stage{k}_`, `layer{k}_`, `block{k}_` or `block_{i}_`,
feature pooling `pool`, classifier `head`), so they also work on a model loaded from a
`.keras` file.
"""

from __future__ import annotations

import math

import keras

from kzoo.errors import KzooError
from kzoo.models.common import HEAD_NAME, POOL_NAME, STAGE_MEMBER, STAGE_OUTPUT

_HEAD_RANK = math.inf


def _ranks(model: keras.Model) -> tuple[dict[str, float], list[str], int]:
    """Rank every layer by where it sits: 0 = stem, k = k-th stage/block, inf = classifier.

    Layers outside any stage take the rank of the stage before them (the stem before the
    first one, e.g. ViT's final norm after the last block); `model.layers` of a functional
    model is in topological order, so "before" is well defined.
    """
    ranks: dict[str, float] = {}
    units: list[int] = []
    stage_names: list[str] = []
    rank: float = 0
    for layer in model.layers:
        if layer.name == POOL_NAME:
            rank = _HEAD_RANK
        elif rank != _HEAD_RANK:
            match = STAGE_MEMBER.match(layer.name)
            if match:
                unit = int(match.group(1))
                if unit not in units:
                    units.append(unit)
                rank = units.index(unit) + 1
            if STAGE_OUTPUT.match(layer.name):
                stage_names.append(layer.name)
        ranks[layer.name] = rank
    return ranks, stage_names, len(units)


def freeze(model: keras.Model, until: str | int | None = "head") -> keras.Model:
    """Make only the part of `model` from `until` onwards trainable (in place; returns `model`).

    Args:
        until: `"head"`: only the classifier (the layers after `pool`) trains.
            A stage name (`"stage3"` for ResNet/VGG, `"block_9"` for ViT): that stage, the
            ones after it and the classifier train.
            An int N: the last N stages (ViT blocks, VGG conv blocks, ResNet stages) and the
            classifier train; 0 is the same as `"head"`.
            `None`: everything trains again.

    Frozen BatchNormalization layers also run in inference mode (Keras 3 semantics of
    `trainable=False`), so fine-tuning does not disturb their moving statistics. Call
    `model.compile(...)` after `freeze` for the change to take effect in `fit`.

    Example:
        >>> model = kzoo.create_model("resnet18_cifar", num_classes=10)
        >>> kzoo.freeze(model, until="stage4").get_layer("layer3_0_conv1").trainable
        False
    """
    ranks, stage_names, num_units = _ranks(model)
    if until is None:
        threshold: float = -1
    elif isinstance(until, bool):
        raise KzooError(f"freeze: until must be 'head', a stage name or an int, got {until!r}")
    elif isinstance(until, int):
        if not 0 <= until <= num_units:
            raise KzooError(
                f"freeze: until={until} is out of range for {model.name}, which has {num_units} "
                f"stages/blocks; use 0..{num_units}"
            )
        threshold = num_units - until + 1 if until else _HEAD_RANK
    elif until == "head":
        threshold = _HEAD_RANK
    elif until in stage_names:
        threshold = ranks[until]
    else:
        valid = ["head", *stage_names]
        shown = valid if len(valid) <= 8 else [*valid[:4], "...", *valid[-2:]]
        raise KzooError(
            f"freeze: unknown stage {until!r} for {model.name}; valid: {', '.join(shown)} "
            f"or an int 0..{num_units}"
        )
    if threshold == _HEAD_RANK and POOL_NAME not in ranks:
        raise KzooError(f"freeze: {model.name} has no classifier (features_only?); freeze up to a stage instead")
    for layer in model.layers:
        layer.trainable = ranks[layer.name] >= threshold
    return model


def replace_head(model: keras.Model, num_classes: int) -> keras.Model:
    """A new model sharing every layer and weight of `model` except a fresh float32 `head`.

    The new `head` has the old one's initialiser; `num_classes=0` returns the pre-logit
    features. A model built with `num_classes=0` gets a head on its pooled output.
    Trainable flags of the shared layers are kept, so `freeze` then `replace_head` works.

    Example:
        >>> model = kzoo.create_model("resnet18_cifar", num_classes=10)
        >>> kzoo.replace_head(model, 5).output_shape
        (None, 5)
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise KzooError(f"replace_head: num_classes must be an int >= 0, got {num_classes!r}")
    names = [layer.name for layer in model.layers]
    if HEAD_NAME in names:
        old = model.get_layer(HEAD_NAME)
        features = old.input
        config = old.get_config()
    elif POOL_NAME in names:
        features = model.outputs[0]
        config = keras.layers.Dense(1, name=HEAD_NAME).get_config()
    else:
        raise KzooError(f"replace_head: {model.name} has no classifier or pooled output (features_only?)")
    if num_classes == 0:
        return keras.Model(model.inputs, features, name=model.name)
    config.update(units=num_classes, name=HEAD_NAME, dtype="float32", trainable=True)
    head = keras.layers.Dense.from_config(config)
    return keras.Model(model.inputs, head(features), name=model.name)
