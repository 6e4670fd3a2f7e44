"""Vision Transformer layers: class token, fused-qkv self-attention, token pooling, tokens -> grid."""

from __future__ import annotations

import functools
from typing import Sequence

import keras
from keras import ops

from kzoo.errors import KzooError


@functools.lru_cache(maxsize=None)
def _fused_attention_on_gpu() -> bool:
    """True under JAX with a GPU: cuDNN's fused (flash) attention is then worth asking for."""
    if keras.config.backend() != "jax":
        return False
    try:
        return any(d.lower().startswith(("gpu", "cuda")) for d in keras.distribution.list_devices())
    except (RuntimeError, ValueError):
        return False


def even_length_attention(query, key, value, scale: float, flash_attention: bool | None = None):
    """Attention over `(B, N, heads, head_dim)` with N padded to an even length and the pad masked.

    cuDNN's fused attention refuses odd sequence lengths in training (ViT's 196 patches + class
    token = 197), so XLA then materialises the (B, heads, N, N) softmax instead: 3.0 ms vs 1.65 ms
    per ViT-B/16 layer (fwd+bwd, batch 256, bf16) on an H100 (docs/benchmarks.md). Padding one
    token and masking it as a key gives the same result with the fused kernel. Used in training
    only: for the forward pass alone XLA's unfused attention was faster (0.20 vs 0.50 ms).
    """
    length = query.shape[1]
    padded = length + length % 2
    if padded != length:
        pad = [(0, 0), (0, padded - length), (0, 0), (0, 0)]
        query, key, value = (ops.pad(t, pad) for t in (query, key, value))
    keep = ops.arange(padded) < length
    # (1, 1, N, N): measured faster with cuDNN than (B, 1, N, N), and 2x faster than (1, 1, 1, N).
    mask = ops.broadcast_to(keep[None, None, None, :], (1, 1, padded, padded))
    out = ops.dot_product_attention(query, key, value, mask=mask, scale=scale, flash_attention=flash_attention)
    return out[:, :length]


def _dense_init():
    # timm initialises Linear weights with trunc_normal(std=0.02) and zero biases.
    return keras.initializers.TruncatedNormal(stddev=0.02)


@keras.saving.register_keras_serializable(package="kzoo")
class ClassToken(keras.layers.Layer):
    """Prepends a learned `(1, 1, D)` class token to a `(B, N, D)` token sequence.

    Example:
        >>> tuple(ClassToken()(keras.ops.zeros((2, 4, 8))).shape)
        (2, 5, 8)
    """

    def build(self, input_shape):
        # timm: nn.init.normal_(cls_token, std=1e-6).
        self.token = self.add_weight(
            shape=(1, 1, input_shape[-1]),
            initializer=keras.initializers.RandomNormal(stddev=1e-6),
            name="token",
        )

    def call(self, tokens):
        batch = ops.shape(tokens)[0]
        cls = ops.broadcast_to(ops.cast(self.token, tokens.dtype), (batch, 1, tokens.shape[-1]))
        return ops.concatenate([cls, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])


@keras.saving.register_keras_serializable(package="kzoo")
class MultiHeadSelfAttention(keras.layers.Layer):
    """timm's ViT `Attention`: one fused `qkv` Dense, scaled dot-product attention, `proj` Dense.

    The fused projection keeps timm's weight layout (`qkv` outputs are `[q | k | v]`, each
    `heads x head_dim`), so checkpoints map one-to-one. Attention runs through
    `keras.ops.dot_product_attention` (the backend's fused kernel); only when attention
    dropout is active in training is the softmax computed explicitly, because the fused op
    has no dropout.

    Args:
        num_heads: attention heads.
        head_dim: width of each head; `None` means `dim // num_heads`. The inner width
            `num_heads * head_dim` may differ from `dim` (Keras MultiHeadAttention's `key_dim`).
        output_dim: width of `proj`; `None` means the input width.
        attn_dropout: dropout on the attention probabilities.
        use_bias: biases on `qkv` (timm's `qkv_bias`); `proj` always has one.
        causal: each token attends to itself and earlier tokens only (CLIP's text encoder).

    Example:
        >>> layer = MultiHeadSelfAttention(num_heads=2)
        >>> tuple(layer(keras.ops.zeros((1, 5, 8))).shape)
        (1, 5, 8)
    """

    def __init__(
        self,
        num_heads: int,
        head_dim: int | None = None,
        output_dim: int | None = None,
        attn_dropout: float = 0.0,
        use_bias: bool = True,
        causal: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.causal = bool(causal)
        self.num_heads = int(num_heads)
        self.head_dim = None if head_dim is None else int(head_dim)
        self.output_dim = None if output_dim is None else int(output_dim)
        self.attn_dropout = float(attn_dropout)
        self.use_bias = bool(use_bias)
        self.dropout = keras.layers.Dropout(self.attn_dropout, name="attn_drop")

    def build(self, input_shape):
        dim = input_shape[-1]
        if self.head_dim is None:
            if dim % self.num_heads:
                raise KzooError(
                    f"{self.name}: width {dim} is not divisible by {self.num_heads} heads; "
                    "pass head_dim"
                )
            self.head_dim = dim // self.num_heads
        inner = self.num_heads * self.head_dim
        # Sublayers made here do not see a `trainable=False` the layer was loaded with: pass it on,
        # or a frozen tower read back from a .keras file (a resumed run) would train again.
        self.qkv = keras.layers.Dense(
            3 * inner, use_bias=self.use_bias, kernel_initializer=_dense_init(),
            dtype=self.dtype_policy, trainable=self.trainable, name="qkv",
        )
        self.proj = keras.layers.Dense(
            self.output_dim or dim, kernel_initializer=_dense_init(),
            dtype=self.dtype_policy, trainable=self.trainable, name="proj",
        )
        self.qkv.build(input_shape)
        self.proj.build((*input_shape[:-1], inner))

    def call(self, tokens, training=None):
        shape = ops.shape(tokens)
        batch, length = shape[0], shape[1]
        query, key, value = ops.split(self.qkv(tokens), 3, axis=-1)
        # (B, N, heads, head_dim) each: the layout dot_product_attention expects.
        query, key, value = (ops.reshape(t, (batch, length, self.num_heads, self.head_dim))
                             for t in (query, key, value))
        scale = self.head_dim**-0.5
        dropout = bool(training) and self.attn_dropout > 0
        if not _fused_attention_on_gpu() or dropout:
            out = self._heads_first_attention(query, key, value, scale, training)
        elif training and query.shape[1] is not None and not self.causal:
            out = even_length_attention(query, key, value, scale, flash_attention=True)
        else:
            out = ops.dot_product_attention(query, key, value, scale=scale, is_causal=self.causal)
        return self.proj(ops.reshape(out, (batch, length, self.num_heads * self.head_dim)))

    def _heads_first_attention(self, query, key, value, scale, training):
        """Attention over (B, N, heads, head_dim) with heads moved before tokens, as batched matmuls.
        On CPUs a layer's training step is 1.6-1.9x faster this way (TensorFlow without XLA, batch
        1024 x 49 tokens x 256) than dot_product_attention, whose einsums transpose every operand
        (benchmarks/attention_layout.py). Returns (B, N, heads, head_dim)."""
        query, key, value = (ops.transpose(t, (0, 2, 1, 3)) for t in (query, key, value))
        logits = ops.matmul(query, ops.swapaxes(key, -1, -2)) * ops.cast(scale, query.dtype)
        # Softmax in float32: bfloat16 logits lose too much precision in the exponent sum.
        logits = ops.cast(logits, "float32")
        if self.causal:
            positions = ops.arange(ops.shape(logits)[-1])
            later = ops.expand_dims(positions, 0) > ops.expand_dims(positions, 1)  # key after query
            logits = ops.where(later, -1e9, logits)
        probs = ops.cast(ops.softmax(logits, axis=-1), value.dtype)
        probs = self.dropout(probs, training=training)
        return ops.transpose(ops.matmul(probs, value), (0, 2, 1, 3))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim or input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "output_dim": self.output_dim,
            "attn_dropout": self.attn_dropout,
            "use_bias": self.use_bias,
            "causal": self.causal,
        }


POOL_MODES = ("cls", "gap", "flatten")


@keras.saving.register_keras_serializable(package="kzoo")
class TokenPooling(keras.layers.Layer):
    """Reduces `(B, N, D)` tokens to one vector per image.

    Modes: `"cls"` takes the first (class) token; `"gap"` averages the patch tokens,
    skipping `num_prefix_tokens` (timm's `global_pool="avg"`); `"flatten"` concatenates
    every token (the Keras ViT example).

    Example:
        >>> tuple(TokenPooling("gap", num_prefix_tokens=1)(keras.ops.ones((2, 5, 8))).shape)
        (2, 8)
    """

    def __init__(self, mode: str = "cls", num_prefix_tokens: int = 1, **kwargs):
        super().__init__(**kwargs)
        if mode not in POOL_MODES:
            raise KzooError(f"unknown pool {mode!r}: expected one of {', '.join(POOL_MODES)}")
        self.mode = mode
        self.num_prefix_tokens = int(num_prefix_tokens)

    def call(self, tokens):
        if self.mode == "cls":
            return tokens[:, 0]
        if self.mode == "gap":
            return ops.mean(tokens[:, self.num_prefix_tokens :], axis=1)
        return ops.reshape(tokens, (ops.shape(tokens)[0], tokens.shape[1] * tokens.shape[2]))

    def compute_output_shape(self, input_shape):
        if self.mode == "flatten":
            return (input_shape[0], input_shape[1] * input_shape[2])
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "num_prefix_tokens": self.num_prefix_tokens}


@keras.saving.register_keras_serializable(package="kzoo")
class TokensToGrid(keras.layers.Layer):
    """Drops the prefix (class) tokens and reshapes `(B, prefix + H*W, D)` to `(B, H, W, D)`.

    Turns a ViT block output into a feature map, for `features_only` models and Grad-CAM.

    Example:
        >>> tuple(TokensToGrid((2, 3), num_prefix_tokens=1)(keras.ops.zeros((4, 7, 16))).shape)
        (4, 2, 3, 16)
    """

    def __init__(self, grid_size: Sequence[int], num_prefix_tokens: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = tuple(int(s) for s in grid_size)
        self.num_prefix_tokens = int(num_prefix_tokens)

    def call(self, tokens):
        grid = tokens[:, self.num_prefix_tokens :]
        return ops.reshape(grid, (ops.shape(tokens)[0], *self.grid_size, tokens.shape[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.grid_size, input_shape[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "grid_size": list(self.grid_size),
            "num_prefix_tokens": self.num_prefix_tokens,
        }


@keras.saving.register_keras_serializable(package="kzoo")
class SequencePooling(keras.layers.Layer):
    """Compact convolutional transformers' sequence pooling (Hassani et al., 2021): one learned score
    per token, a softmax over the tokens, and the score-weighted sum of the tokens (no class token).

    Example:
        >>> tuple(SequencePooling()(keras.ops.ones((2, 5, 8))).shape)
        (2, 8)
    """

    def build(self, input_shape):
        self.score = keras.layers.Dense(1, name="score")
        self.score.build(input_shape)

    def call(self, tokens):
        weights = ops.softmax(self.score(tokens), axis=1)  # (B, N, 1)
        return ops.sum(weights * tokens, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])
