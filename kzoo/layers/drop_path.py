"""Stochastic depth: drop a residual branch for whole samples during training."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="kzoo")
class DropPath(keras.layers.Layer):
    """Zeroes the input for a random subset of samples and rescales the rest by 1 / (1 - rate).

    Applied to a residual branch before the add, so a dropped sample skips that block
    (timm's `DropPath`, Huang et al. 2016). At inference, or with `rate=0`, it is the identity.

    Example:
        >>> layer = DropPath(0.5, seed=0)
        >>> tuple(layer(keras.ops.ones((4, 3, 8)), training=True).shape)
        (4, 3, 8)
    """

    def __init__(self, rate: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"DropPath: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        # A seed generator (not a Python seed) so every step draws a new mask, also inside
        # a compiled JAX train step where the generator state is threaded through.
        self.seed_generator = keras.random.SeedGenerator(seed) if rate > 0 else None

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        # One Bernoulli draw per sample, broadcast over every other axis.
        noise_shape = (None,) + (1,) * (len(inputs.shape) - 1)
        return keras.random.dropout(
            inputs, self.rate, noise_shape=noise_shape, seed=self.seed_generator
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
