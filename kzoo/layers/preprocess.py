"""Input normalisation that lives inside the model, so a saved model takes raw pixels."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
CROP_MODES = ("squash", "center")


@keras.saving.register_keras_serializable(package="kzoo")
class ImageNormalization(keras.layers.Layer):
    """Maps pixels in [0, 255] to `(x / 255 - mean) / std`, channel-wise.

    The statistics are configuration, not weights, so they survive `.keras` save/load,
    do not count as parameters, and a checkpoint's own preprocessing (e.g. mean=std=0.5
    for Hugging Face ViTs) is a config change.

    It also records how images are to be resized *before* they reach the model, so that
    travels with a saved model too (`kzoo eval/predict/explain` and `kzoo.data.load(...,
    preprocessing=...)` apply it): `interpolation`, and `crop_pct`/`crop_mode` as timm defines
    them ("center": resize to input/crop_pct, shorter side for square inputs, then a centre crop;
    "squash": resize both sides to input/crop_pct, then a centre crop). The defaults
    (bilinear, 1.0, "squash") are a plain resize to the input size, what kzoo's pipelines do.

    Example:
        >>> layer = ImageNormalization()
        >>> layer(keras.ops.full((1, 2, 2, 3), 255.0)).shape
        (1, 2, 2, 3)
    """

    def __init__(
        self,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        interpolation: str = "bilinear",
        crop_pct: float = 1.0,
        crop_mode: str = "squash",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if len(mean) != len(std):
            raise ValueError(f"ImageNormalization: mean has {len(mean)} values, std {len(std)}")
        if interpolation not in INTERPOLATIONS or crop_mode not in CROP_MODES or not 0 < crop_pct <= 1:
            raise ValueError(
                f"ImageNormalization: interpolation {interpolation!r} (one of {INTERPOLATIONS}), "
                f"crop_mode {crop_mode!r} (one of {CROP_MODES}), crop_pct {crop_pct} (in (0, 1])"
            )
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.interpolation = interpolation
        self.crop_pct = float(crop_pct)
        self.crop_mode = crop_mode

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
        return {
            **super().get_config(),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
        }


@keras.saving.register_keras_serializable(package="kzoo")
class ContrastNormalization(keras.layers.Layer):
    """Per image: subtract each channel's mean, then divide by the image's standard deviation.

    The output is unchanged when an image's contrast is scaled about its channel means,
    `(x - mean_c) * c + mean_c` for any c > 0 (the benchmark's `contrast` corruption), so a model
    that starts with this layer cannot lose accuracy to contrast, only to the pixel rounding it
    brings. One standard deviation over all channels (not one per channel) keeps the ratios
    between channels. What is lost is each image's mean colour and overall contrast.
    `epsilon` floors the standard deviation (in the units of the input) so a flat image maps to 0.

    Example:
        >>> x = keras.random.uniform((2, 8, 8, 3), seed=0)
        >>> y = ContrastNormalization()(x)
        >>> round(float(keras.ops.std(y[0])), 3)
        1.0
    """

    def __init__(self, epsilon: float = 1e-2, **kwargs):
        super().__init__(**kwargs)
        if not float(epsilon) > 0.0:
            raise ValueError(f"ContrastNormalization: epsilon must be > 0, got {epsilon}")
        self.epsilon = float(epsilon)

    def call(self, images):
        # float32 statistics: bfloat16 sums over 3,072 pixels lose the small variance of a
        # low-contrast image.
        x = ops.cast(images, "float32")
        x = x - ops.mean(x, axis=(1, 2), keepdims=True)
        variance = ops.mean(ops.square(x), axis=(1, 2, 3), keepdims=True)
        return ops.cast(x * ops.rsqrt(variance + self.epsilon**2), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}
