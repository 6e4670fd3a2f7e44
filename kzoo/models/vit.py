"""Vision Transformer (Dosovitskiy et al. 2020) in timm's exact layout, plus the Keras-example ViT.

Layer names (for weight mapping, Grad-CAM and freezing): `patch_embed` (Conv2D), `cls_token`,
`pos_embed`, then per block i `block_{i}_norm1`, `block_{i}_attn` (with `qkv` and `proj`
inside), `block_{i}_norm2`, `block_{i}_mlp_fc1`, `block_{i}_mlp_fc2` and the block output
`block_{i}`; then `norm` (or `fc_norm` after `pool` for pool="gap"), `pool`, `head_fc{j}`, `head`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import keras

from kzoo.errors import KzooError
from kzoo.layers import (ClassToken, DropPath, MultiHeadSelfAttention, PatchWhitening, PositionEmbedding, TokenPooling,
                         TokensToGrid)
from kzoo.layers.activations import get_activation
from kzoo.layers.vit_layers import POOL_MODES
from kzoo.models.common import check_num_classes, classifier, image_input
from kzoo.models.features import feature_model, resolve_out_indices



@dataclass(frozen=True)
class ViTConfig:
    """Everything that defines a ViT's architecture; `build_vit` keywords map onto these fields.

    The less common fields exist for the Keras example ViT: `head_dim` (per-head width
    independent of `dim`), `mlp_output_activation` (GELU after the MLP's second Dense),
    `mlp_dropout` (dropout inside the MLP only), `head_hidden_units` / `head_dropout`
    (an MLP before the classifier).

    Example:
        >>> ViTConfig(image_size=(32, 32), patch_size=4, dim=128, depth=4, heads=2, mlp_dim=256).grid
        (8, 8)
    """

    image_size: tuple[int, int] = (224, 224)
    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    head_dim: int | None = None
    pool: str = "cls"
    class_token: bool = True
    qkv_bias: bool = True
    dropout: float = 0.0  # timm's drop_rate: after the position embedding, attention proj, MLP, before head
    attn_dropout: float = 0.0
    drop_path: float = 0.0  # stochastic depth, rising linearly to this rate over the blocks
    layer_norm_epsilon: float = 1e-6
    mlp_output_activation: str | None = None
    mlp_dropout: float | None = None  # None: same as dropout
    head_hidden_units: tuple[int, ...] = ()
    head_activation: str = "gelu"
    head_dropout: float | None = None  # None: same as dropout
    channels: int = 3
    mean: tuple[float, ...] | None = None  # None: ImageNet statistics
    std: tuple[float, ...] | None = None
    # Embed patches as frozen PatchWhitening (fitted to training patches) + a learned linear map:
    # still a linear patch embedding, with decorrelated inputs from the first step.
    patch_whitening: bool = False
    # CLIP's towers (OpenAI, OpenCLIP): a bias-free patch embedding, a LayerNorm before the blocks
    # (timm's norm_pre), QuickGELU in the MLP of OpenAI's checkpoints, causal attention for text.
    patch_bias: bool = True
    pre_norm: bool = False
    mlp_activation: str = "gelu"
    causal: bool = False

    def __post_init__(self):
        size = self.image_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "head_hidden_units", tuple(self.head_hidden_units))
        if len(size) != 2 or any(s % self.patch_size for s in size):
            raise KzooError(f"vit: image size {size} must be divisible by patch size {self.patch_size}")
        if self.pool not in POOL_MODES:
            raise KzooError(f"vit: unknown pool {self.pool!r}; expected one of {', '.join(POOL_MODES)}")
        if self.pool == "cls" and not self.class_token:
            raise KzooError("vit: pool='cls' needs class_token=True; use pool='gap' or 'flatten'")
        if self.head_dim is None and self.dim % self.heads:
            raise KzooError(f"vit: dim {self.dim} is not divisible by {self.heads} heads; pass head_dim")
        if self.depth < 1:
            raise KzooError(f"vit: depth must be >= 1, got {self.depth}")

    @property
    def grid(self) -> tuple[int, int]:
        return (self.image_size[0] // self.patch_size, self.image_size[1] // self.patch_size)

    @property
    def num_prefix_tokens(self) -> int:
        return 1 if self.class_token else 0


_FIELDS = {f.name for f in dataclasses.fields(ViTConfig)}


def build_vit(
    image_size: int | Sequence[int] = 224,
    patch_size: int = 16,
    dim: int = 768,
    depth: int = 12,
    heads: int = 12,
    mlp_dim: int = 3072,
    num_classes: int = 1000,
    pool: str = "cls",
    dropout: float = 0.0,
    attn_dropout: float = 0.0,
    drop_path: float = 0.0,
    layer_norm_epsilon: float = 1e-6,
    class_token: bool = True,
    head_dim: int | None = None,
    channels: int = 3,
    input_shape: Sequence[int] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
    **options: Any,
) -> keras.Model:
    """Build a ViT with timm's layout (pre-norm blocks, fused qkv, learned position embedding).

    Args:
        image_size: int or (height, width); non-square is fine. `input_shape` overrides it.
        patch_size, dim, depth, heads, mlp_dim: the architecture (timm's names: patch_size,
            embed_dim, depth, num_heads, mlp_ratio * embed_dim).
        num_classes: classifier outputs; 0 returns the pooled (pre-logits) features.
        pool: "cls" (class token), "gap" (mean of patch tokens, then `fc_norm`) or "flatten".
        dropout, attn_dropout, drop_path: regularisation (timm's drop_rate, attn_drop_rate,
            drop_path_rate).
        class_token: prepend a class token.
        head_dim: per-head width; default dim // heads.
        input_shape: (H, W, C); what `kzoo.create_model` passes.
        features_only: return the tokens after the blocks in `out_indices` as (B, H/p, W/p, D)
            maps instead of logits.
        **options: the remaining `ViTConfig` fields (mlp_output_activation, mlp_dropout,
            head_hidden_units, head_activation, head_dropout, qkv_bias, mean, std, patch_whitening).

    Example:
        >>> model = build_vit(image_size=32, patch_size=4, dim=128, depth=4, heads=2,
        ...                   mlp_dim=256, num_classes=10)
        >>> model.count_params()
        546186
    """
    unknown = sorted(set(options) - _FIELDS)
    if unknown:
        raise KzooError(f"build_vit: unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(_FIELDS))}")
    if input_shape is not None:
        if len(tuple(input_shape)) != 3:
            raise KzooError(f"vit: input_shape must be (height, width, channels), got {tuple(input_shape)}")
        *image_size, channels = tuple(input_shape)
    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        dim=dim,
        depth=depth,
        heads=heads,
        mlp_dim=mlp_dim,
        head_dim=head_dim,
        pool=pool,
        class_token=class_token,
        dropout=dropout,
        attn_dropout=attn_dropout,
        drop_path=drop_path,
        layer_norm_epsilon=layer_norm_epsilon,
        channels=channels,
        **options,
    )
    return vit_from_config(config, num_classes, features_only=features_only, out_indices=out_indices, name=name)


def vit_from_config(
    config: ViTConfig,
    num_classes: int = 1000,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build the ViT that `config` describes (see `build_vit` for the arguments).

    Example:
        >>> cfg = ViTConfig(image_size=(32, 32), patch_size=8, dim=16, depth=1, heads=2, mlp_dim=32)
        >>> vit_from_config(cfg, num_classes=3).output_shape
        (None, 3)
    """
    check_num_classes(num_classes, "vit")
    name = name or "vit"
    c = config
    if features_only:
        resolve_out_indices(out_indices, c.depth, name)  # fail before building anything
    inputs, x = image_input((*c.image_size, c.channels), c.mean, c.std, "vit")
    if c.patch_whitening:
        x = PatchWhitening(c.patch_size, strides=c.patch_size, name="patch_whiten")(x)
        x = keras.layers.Conv2D(c.dim, 1, name="patch_embed")(x)
    else:
        x = keras.layers.Conv2D(c.dim, c.patch_size, strides=c.patch_size, padding="valid", use_bias=c.patch_bias,
                                name="patch_embed")(x)
    x = keras.layers.Reshape((c.grid[0] * c.grid[1], c.dim), name="patch_tokens")(x)
    if c.class_token:
        x = ClassToken(name="cls_token")(x)
    x = PositionEmbedding(c.grid, c.num_prefix_tokens, name="pos_embed")(x)
    if c.dropout:
        x = keras.layers.Dropout(c.dropout, name="pos_drop")(x)
    if c.pre_norm:
        x = keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, name="norm_pre")(x)

    # Stochastic depth rises linearly from 0 to drop_path over the blocks (timm's schedule).
    rates = [c.drop_path * i / max(c.depth - 1, 1) for i in range(c.depth)]
    blocks = []
    for i in range(c.depth):
        x = _block(x, c, i, rates[i])
        blocks.append(x)

    if features_only:
        def to_grid(tokens, index):
            return TokensToGrid(c.grid, c.num_prefix_tokens, name=f"block_{index}_grid")(tokens)

        return feature_model(inputs, blocks, out_indices, name, to_grid)

    if c.pool == "gap":
        # timm: with average pooling the final norm moves after the pool (fc_norm).
        x = TokenPooling("gap", c.num_prefix_tokens, name="pool")(x)
        x = keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, name="fc_norm")(x)
    else:
        x = keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, name="norm")(x)
        x = TokenPooling(c.pool, c.num_prefix_tokens, name="pool")(x)
    head_dropout = c.dropout if c.head_dropout is None else c.head_dropout
    for j, units in enumerate(c.head_hidden_units, start=1):
        if head_dropout:
            x = keras.layers.Dropout(head_dropout, name=f"head_drop{j}")(x)
        x = keras.layers.Dense(units, activation=c.head_activation, name=f"head_fc{j}")(x)
    if head_dropout:
        x = keras.layers.Dropout(head_dropout, name="head_drop")(x)
    if num_classes:
        x = classifier(x, num_classes, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02))
    return keras.Model(inputs, x, name=name)


def _dense(units: int, name: str, activation: str | None = None) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, activation=activation, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02), name=name
    )


def _block(x, c: ViTConfig, i: int, drop_path_rate: float):
    """One pre-norm transformer block; its output layer is named `block_{i}`."""
    p = f"block_{i}"
    mlp_dropout = c.dropout if c.mlp_dropout is None else c.mlp_dropout
    y = keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, name=f"{p}_norm1")(x)
    y = MultiHeadSelfAttention(
        c.heads, c.head_dim, attn_dropout=c.attn_dropout, use_bias=c.qkv_bias, causal=c.causal, name=f"{p}_attn"
    )(y)
    if c.dropout:
        y = keras.layers.Dropout(c.dropout, name=f"{p}_proj_drop")(y)
    if drop_path_rate:
        y = DropPath(drop_path_rate, name=f"{p}_drop_path1")(y)
    x = keras.layers.Add(name=f"{p}_add1")([x, y])
    y = keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, name=f"{p}_norm2")(x)
    # "gelu" is Keras' exact erf GELU (approximate=False), as torch's nn.GELU().
    y = _dense(c.mlp_dim, f"{p}_mlp_fc1", activation=get_activation(c.mlp_activation))(y)
    if mlp_dropout:
        y = keras.layers.Dropout(mlp_dropout, name=f"{p}_mlp_drop1")(y)
    y = _dense(c.dim, f"{p}_mlp_fc2", activation=c.mlp_output_activation)(y)
    if mlp_dropout:
        y = keras.layers.Dropout(mlp_dropout, name=f"{p}_mlp_drop2")(y)
    if drop_path_rate:
        y = DropPath(drop_path_rate, name=f"{p}_drop_path2")(y)
    return keras.layers.Add(name=p)([x, y])
