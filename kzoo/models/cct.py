"""Compact convolutional transformers (Hassani et al., "Escaping the Big Data Paradigm with Compact
Transformers", 2021) for small images: a convolutional tokenizer instead of patch slicing, pre-norm
transformer blocks, and sequence pooling instead of a class token.

Layer names follow kzoo's conventions: tokenizer stages `stage{k}`, blocks `block_{i}`, `pool`, `head`.
"""

from __future__ import annotations

from typing import Sequence

import keras

from kzoo.errors import KzooError
from kzoo.layers import PositionEmbedding, SequencePooling, TokensToGrid
from kzoo.models.airbench import CIFAR10_MEAN, CIFAR10_STD, whitened_conv_groups
from kzoo.models.common import POOL_NAME, check_num_classes, classifier, image_input
from kzoo.models.features import feature_model, resolve_out_indices
from kzoo.models.vit import ViTConfig, _block

TOKENIZERS = ("conv", "airbench")


def _conv_tokenizer(x, widths: Sequence[int]) -> list:
    """The paper's tokenizer: per width a conv3x3 (no bias) -> ReLU -> max-pool 3, stride 2."""
    stages = []
    for k, width in enumerate(widths, start=1):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                                name=f"stage{k}_conv")(x)
        x = keras.layers.ReLU(name=f"stage{k}_relu")(x)
        # torch pads the max-pool with -inf; after a ReLU zeros are equivalent.
        x = keras.layers.ZeroPadding2D(1, name=f"stage{k}_pad")(x)
        x = keras.layers.MaxPooling2D(3, strides=2, name=f"stage{k}")(x)
        stages.append(x)
    return stages


def build_cct(
    num_classes: int = 10,
    input_shape: Sequence[int] = (32, 32, 3),
    tokenizer: str = "conv",
    tokenizer_widths: Sequence[int] = (256,),
    depth: int = 7,
    heads: int = 4,
    mlp_ratio: float = 2.0,
    dropout: float = 0.0,
    attn_dropout: float = 0.1,
    drop_path: float = 0.1,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build a compact convolutional transformer. The token width is the tokenizer's last width.

    Args:
        tokenizer: "conv" (the paper's: conv3x3 + ReLU + max-pool 3/2 per width) or "airbench"
            (airbench94's whitened conv groups: conv-pool-BN-GELU-conv-BN-GELU per width).
        tokenizer_widths: channels of each tokenizer stage; the last is the transformer's width.
        depth, heads, mlp_ratio: the transformer (pre-norm blocks, qkv without bias as in the
            official implementation, exact GELU MLP).
        features_only: the tokenizer stages and every block (as a token grid).

    Example:
        >>> model = build_cct(depth=7, tokenizer_widths=(256,))  # CCT-7/3x1 for CIFAR
        >>> model.get_layer("pos_embed").output.shape
        (None, 256, 256)
    """
    check_num_classes(num_classes, "cct")
    if tokenizer not in TOKENIZERS:
        raise KzooError(f"cct: unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}")
    widths = tuple(tokenizer_widths)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths) or widths[-1] % heads:
        raise KzooError(f"cct: tokenizer_widths must be positive ints whose last is a multiple of heads "
                        f"({heads}), got {widths}")
    name = name or "cct"
    if features_only:
        resolve_out_indices(out_indices, len(widths) + depth, name)
    inputs, x = image_input(input_shape, mean, std, "cct")
    stages = _conv_tokenizer(x, widths) if tokenizer == "conv" else whitened_conv_groups(x, widths)
    grid = tuple(int(s) for s in stages[-1].shape[1:3])
    dim = widths[-1]
    x = keras.layers.Reshape((grid[0] * grid[1], dim), name="tokens")(stages[-1])
    x = PositionEmbedding(grid, num_prefix_tokens=0, name="pos_embed")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="pos_drop")(x)
    # The blocks are ViT's; a 1-pixel "patch" grid describes the token grid.
    c = ViTConfig(image_size=grid, patch_size=1, dim=dim, depth=depth, heads=heads, mlp_dim=int(dim * mlp_ratio),
                  class_token=False, pool="gap", qkv_bias=False, dropout=dropout, attn_dropout=attn_dropout,
                  drop_path=drop_path, layer_norm_epsilon=1e-5)
    blocks = []
    for i in range(depth):
        x = _block(x, c, i, drop_path * i / max(depth - 1, 1))
        blocks.append(x)
    if features_only:
        grids = [TokensToGrid(grid, 0, name=f"block_{i}_grid")(b) for i, b in enumerate(blocks)]
        return feature_model(inputs, [*stages, *grids], out_indices, name)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")(x)
    x = SequencePooling(name=POOL_NAME)(x)
    if num_classes:
        x = classifier(x, num_classes, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02))
    return keras.Model(inputs, x, name=name)
