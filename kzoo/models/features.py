"""`features_only`: one mechanism, shared by every family, to return stage feature maps."""

from __future__ import annotations

from typing import Callable, Sequence

import keras

from kzoo.errors import KzooError


def resolve_out_indices(
    out_indices: Sequence[int] | None, num_stages: int, model_name: str = "model"
) -> tuple[int, ...]:
    """Normalise `out_indices` (negative counts from the end; `None` = every stage) to indices >= 0.

    Example:
        >>> resolve_out_indices((-1, 1), 4)
        (3, 1)
    """
    if out_indices is None:
        return tuple(range(num_stages))
    if isinstance(out_indices, int):
        out_indices = (out_indices,)
    resolved = []
    for index in out_indices:
        if isinstance(index, bool) or not isinstance(index, int) or not -num_stages <= index < num_stages:
            raise KzooError(
                f"out_indices: {index!r} is out of range for {model_name} with {num_stages} "
                f"stages; valid are 0..{num_stages - 1} or -{num_stages}..-1"
            )
        resolved.append(index % num_stages)
    if not resolved:
        raise KzooError(f"out_indices is empty for {model_name}: pick at least one stage")
    return tuple(resolved)


def feature_model(
    inputs: keras.KerasTensor,
    stage_outputs: Sequence[keras.KerasTensor],
    out_indices: Sequence[int] | None,
    name: str,
    to_feature_map: Callable[[keras.KerasTensor, int], keras.KerasTensor] | None = None,
) -> keras.Model:
    """A model from `inputs` to the selected stage outputs, in `out_indices` order.

    Several stages come back as a list (timm's convention); Keras unwraps a single selected
    stage, so `out_indices=(-1,)` returns one tensor.

    Args:
        inputs: the image input of the network.
        stage_outputs: every stage's output tensor, in order.
        out_indices: which stages to return (see `resolve_out_indices`).
        name: the model name, also used in error messages.
        to_feature_map: optional `(tensor, stage_index) -> tensor` applied to each selected
            output, e.g. ViT tokens -> `(B, H/p, W/p, D)` via `TokensToGrid`.

    Only the layers the selected stages need are kept (Keras prunes the rest), so
    `out_indices=(1,)` of a ResNet does not carry stages 3 and 4.

    Example:
        >>> x = keras.Input((32, 32, 3))
        >>> s1 = keras.layers.Conv2D(4, 3, strides=2)(x)
        >>> s2 = keras.layers.Conv2D(8, 3, strides=2)(s1)
        >>> feature_model(x, [s1, s2], (0, -1), "toy").output_shape
        [(None, 15, 15, 4), (None, 7, 7, 8)]
    """
    indices = resolve_out_indices(out_indices, len(stage_outputs), name)
    outputs = []
    for index in indices:
        out = stage_outputs[index]
        outputs.append(to_feature_map(out, index) if to_feature_map else out)
    return keras.Model(inputs, outputs, name=name)
