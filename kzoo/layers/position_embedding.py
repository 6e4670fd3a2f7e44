"""Learned ViT position embeddings that can be loaded from a checkpoint made at another resolution."""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError


def resample_position_embedding(
    posemb,
    old_grid: Sequence[int] | None,
    new_grid: Sequence[int],
    num_prefix_tokens: int = 1,
    interpolation: str = "bicubic",
    antialias: bool = True,
):
    """Resize the patch-grid part of a `(1, prefix + H*W, D)` position embedding to a new grid.

    The prefix (class) tokens are kept as they are; the grid part is reshaped to
    `(1, H, W, D)` and resized with `keras.ops.image.resize`, as timm's
    `resample_abs_pos_embed` does (bicubic, antialiased when shrinking), so a model built at
    384x384 or 160x256 can start from weights trained at 224x224.

    Args:
        posemb: array or tensor of shape `(1, num_prefix_tokens + H*W, D)`.
        old_grid: `(H, W)` of `posemb`; `None` infers a square grid.
        new_grid: `(H', W')` to resize to.
        num_prefix_tokens: leading tokens (class token) that are not part of the grid.
        interpolation: any `keras.ops.image.resize` interpolation.
        antialias: low-pass filter when a side shrinks.

    Returns:
        A float32 tensor of shape `(1, num_prefix_tokens + H'*W', D)`.

    Example:
        >>> posemb = keras.ops.zeros((1, 1 + 14 * 14, 8))
        >>> tuple(resample_position_embedding(posemb, (14, 14), (24, 24), 1).shape)
        (1, 577, 8)
    """
    posemb = ops.convert_to_tensor(posemb, "float32")
    if len(posemb.shape) != 3 or posemb.shape[0] != 1:
        raise KzooError(
            f"position embedding must have shape (1, tokens, dim), got {tuple(posemb.shape)}"
        )
    num_grid = posemb.shape[1] - num_prefix_tokens
    if old_grid is None:
        side = math.isqrt(max(num_grid, 0))
        if side * side != num_grid:
            raise KzooError(
                f"position embedding has {num_grid} grid tokens, not a square grid: pass old_grid=(h, w)"
            )
        old_grid = (side, side)
    old_grid = tuple(int(s) for s in old_grid)
    new_grid = tuple(int(s) for s in new_grid)
    if old_grid[0] * old_grid[1] != num_grid:
        raise KzooError(
            f"position embedding has {num_grid} grid tokens, which does not match grid {old_grid}"
        )
    if old_grid == new_grid:
        return posemb
    dim = posemb.shape[-1]
    prefix = posemb[:, :num_prefix_tokens]
    grid = ops.reshape(posemb[:, num_prefix_tokens:], (1, old_grid[0], old_grid[1], dim))
    grid = ops.image.resize(
        grid,
        new_grid,
        interpolation=interpolation,
        antialias=antialias,
        data_format="channels_last",
    )
    grid = ops.reshape(grid, (1, new_grid[0] * new_grid[1], dim))
    return ops.concatenate([prefix, grid], axis=1)


@keras.saving.register_keras_serializable(package="kzoo")
class PositionEmbedding(keras.layers.Layer):
    """Adds a learned `(1, num_prefix_tokens + H*W, D)` position embedding to a token sequence.

    Loading weights saved from a model with another patch grid (another image size)
    resamples the embedding to this layer's grid (`resample_position_embedding`), so
    `model.load_weights("vit_224.weights.h5")` works on a ViT built for 384x384 or 160x256.
    The grid is saved next to the weight so non-square sources are resampled correctly too.

    Example:
        >>> layer = PositionEmbedding(grid_size=(2, 3), num_prefix_tokens=1)
        >>> tuple(layer(keras.ops.zeros((4, 7, 16))).shape)
        (4, 7, 16)
    """

    def __init__(
        self,
        grid_size: Sequence[int],
        num_prefix_tokens: int = 1,
        initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.grid_size = tuple(int(s) for s in grid_size)
        self.num_prefix_tokens = int(num_prefix_tokens)
        # timm initialises pos_embed with trunc_normal(std=0.02).
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )

    @property
    def num_tokens(self) -> int:
        return self.num_prefix_tokens + self.grid_size[0] * self.grid_size[1]

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] != self.num_tokens:
            raise KzooError(
                f"{self.name}: expected {self.num_tokens} tokens "
                f"({self.num_prefix_tokens} prefix + grid {self.grid_size}), got {input_shape[1]}"
            )
        self.embedding = self.add_weight(
            shape=(1, self.num_tokens, input_shape[-1]),
            initializer=self.initializer,
            name="embedding",
        )

    def call(self, tokens):
        return tokens + ops.cast(self.embedding, tokens.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def save_own_variables(self, store):
        super().save_own_variables(store)
        # Extra entry (not a variable): the source grid, needed to resample a non-square grid.
        store["grid"] = np.asarray(self.grid_size, dtype="int32")

    def load_own_variables(self, store):
        saved = store["0"]
        target = tuple(self.embedding.shape)
        if tuple(saved.shape) == target:
            self.embedding.assign(saved)
            return
        if len(saved.shape) != 3 or saved.shape[-1] != target[-1]:
            raise KzooError(
                f"{self.name}: saved position embedding {tuple(saved.shape)} cannot be "
                f"resampled to {target}: the embedding width differs"
            )
        old_grid = tuple(int(s) for s in np.asarray(store["grid"])) if "grid" in store else None
        resampled = resample_position_embedding(
            np.asarray(saved, dtype="float32"), old_grid, self.grid_size, self.num_prefix_tokens
        )
        self.embedding.assign(ops.cast(resampled, self.embedding.dtype))

    def get_config(self):
        return {
            **super().get_config(),
            "grid_size": list(self.grid_size),
            "num_prefix_tokens": self.num_prefix_tokens,
            "initializer": keras.initializers.serialize(self.initializer),
        }
