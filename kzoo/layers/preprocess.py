"""Input normalisation that lives inside the model, so a saved model takes raw pixels."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="kzoo")
class ImageNormalization(keras.layers.Layer):
    """Maps pixels in [0, 255] to `(x / 255 - mean) / std`, channel-wise.

    The statistics are configuration, not weights, so they survive `.keras` save/load,
    do not count as parameters, and a checkpoint's own preprocessing (e.g. mean=std=0.5
    for Hugging Face ViTs) is a config change.

    Example:
        >>> layer = ImageNormalization()
        >>> layer(keras.ops.full((1, 2, 2, 3), 255.0)).shape
        (1, 2, 2, 3)
    """

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(mean) != len(std):
            raise ValueError(f"ImageNormalization: mean has {len(mean)} values, std {len(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    def call(self, images):
        # Fold the two affine steps into one multiply-add: x * scale + offset.
        scale = [1.0 / (255.0 * s) for s in self.std]
        offset = [-m / s for m, s in zip(self.mean, self.std)]
        images = ops.cast(images, self.compute_dtype)
        return images * ops.convert_to_tensor(scale, self.compute_dtype) + ops.convert_to_tensor(
            offset, self.compute_dtype
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean), "std": list(self.std)}
