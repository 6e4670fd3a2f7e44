"""The model table of docs/models.md (`kzoo models --table`): parameters and forward GFLOPs.

FLOPs are counted from layer shapes (2 per multiply-add) for the layers that dominate compute:
convolutions, dense layers and attention's two token-token products. Normalisation, activations
and pooling are left out, as fvcore and timm's tables do.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterable, Iterator, Sequence

import keras


@contextlib.contextmanager
def shape_only() -> Iterator[None]:
    """Build models without creating their weights' values: exact shapes and counts in milliseconds
    (ViT-H in about 0.3 s instead of seconds of random initialisation).

    Keras defers variable initialisation inside a StatelessScope; with
    initialize_variables=False the values are never made.

    Example:
        >>> with shape_only():
        ...     kzoo.create_model("resnet50").count_params()  # doctest: +SKIP
        25610152
    """
    with keras.StatelessScope(initialize_variables=False):
        yield


def _sublayers(layer: keras.layers.Layer) -> Iterable[keras.layers.Layer]:
    if isinstance(layer, keras.Model):
        for inner in layer.layers:
            yield from _sublayers(inner)
    else:
        yield layer


def _spatial(shape: Sequence[int | None]) -> int:
    return math.prod(int(d) for d in shape[1:-1])


def layer_flops(layer: keras.layers.Layer) -> int:
    """Forward FLOPs of one called layer of a functional model (0 for the uncounted kinds)."""
    from kzoo.layers.vit_layers import MultiHeadSelfAttention

    if hasattr(layer, "flops"):  # layers with their own arithmetic (e.g. ODConv) say what it is
        return int(layer.flops())
    if isinstance(layer, MultiHeadSelfAttention):
        tokens, width = int(layer.input.shape[1]), int(layer.input.shape[2])
        inner = layer.num_heads * layer.head_dim
        out = layer.output_dim or width
        return 2 * tokens * (width * 3 * inner + inner * out + 2 * tokens * inner)
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
        kernel = layer.depthwise_kernel if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel
        return 2 * _spatial(layer.output.shape) * math.prod(kernel.shape)
    if hasattr(layer, "filters") and hasattr(layer, "kernel_size") and len(layer.output.shape) == 4:
        # Convolution-like layers of their own (ODConv): one k x k convolution per output position;
        # the small attention branch that builds the kernel is not counted.
        k = math.prod(layer.kernel_size) if isinstance(layer.kernel_size, (tuple, list)) else layer.kernel_size**2
        c_in = int(layer.input.shape[-1]) // getattr(layer, "groups", 1)
        return 2 * _spatial(layer.output.shape) * layer.filters * k * c_in
    return 0


def count_flops(model: keras.Model) -> int:
    """Forward FLOPs for one image at the model's input size.

    Example:
        >>> count_flops(kzoo.create_model("resnet50")) / 1e9  # doctest: +SKIP
        8.2
    """
    return sum(layer_flops(layer) for layer in _sublayers(model))


def trainable_params(model: keras.Model) -> int:
    """Trainable parameters: the count timm and torchvision report (no BatchNorm statistics)."""
    return sum(math.prod(w.shape) for w in model.trainable_weights)


def model_table(names: Sequence[str]) -> str:
    """A markdown table: name, family, input, parameters, forward GFLOPs, default checkpoint."""
    from kzoo.registry import create_model, get_entry

    rows = ["| model | family | input | trainable params | GFLOPs | default checkpoint |",
            "| --- | --- | --- | ---: | ---: | --- |"]
    for name in names:
        entry = get_entry(name)
        with shape_only():
            model = create_model(name)
        rows.append(f"| `{name}` | {entry.family} | {'x'.join(map(str, entry.input_shape))} "
                    f"| {trainable_params(model):,} | {count_flops(model) / 1e9:.2f} | {entry.pretrained or '-'} |")
        # No clear_session between models: shape-only models hold no weights, and its garbage
        # collection made the 50-model table take 15 s instead of 8 s here.
    return "\n".join(rows)
