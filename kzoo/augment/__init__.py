"""Batched, seeded data augmentation written with `keras.ops` (TF and JAX, tf.data or on device).

Every layer augments a whole batch with per-image random parameters, with no Python loop over
images and no `map_fn`. Layers take and return `{"images": ..., "labels": ...}` (or a bare image
tensor); images are float pixels in [0, 255], NHWC; labels one-hot or soft float (B, C).

Example:
    >>> import kzoo.augment as A
    >>> aug = A.get_preset("strong", num_classes=10, image_size=(32, 32), seed=0)
    >>> batch = aug({"images": images, "labels": one_hot_labels})
    >>> ds = A.map_dataset(ds, aug, seed=0)      # pipeline placement, reproducible per batch
    >>> trainer = A.DeviceAugmentation(model, aug)  # device placement, inside the train step
"""

from kzoo.augment.base import BatchAugmentation, Compose
from kzoo.augment.color import (
    ColorJitter,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    adjust_sharpness,
    apply_lut,
    autocontrast,
    equalize,
    grayscale,
    invert,
    posterize,
    solarize,
    solarize_add,
)
from kzoo.augment.erasing import RandomErasing, erase
from kzoo.augment.geometric import (
    PadCrop,
    RandomAffine,
    RandomFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    affine_transform,
    crop,
    flip_left_right,
    flip_up_down,
    pad_crop,
    resized_crop,
    rotation_transform,
    warp_affine,
)
from kzoo.augment.mix import CutMix, LabelSmoothing, MixUp, RandomChoice, cutmix, mixup, smooth_labels
from kzoo.augment.placement import DeviceAugmentation, map_dataset
from kzoo.augment.grid import augment_grid
from kzoo.augment.presets import PRESETS, get_preset
from kzoo.augment.randaugment import (
    EXTRA_OPS,
    RANDAUGMENT_OPS,
    RandAugment,
    TrivialAugment,
    apply_op,
    apply_ops_grouped,
)

__all__ = [
    "EXTRA_OPS", "PRESETS", "RANDAUGMENT_OPS",
    "BatchAugmentation", "ColorJitter", "Compose", "CutMix", "DeviceAugmentation", "LabelSmoothing",
    "MixUp", "PadCrop", "RandAugment", "RandomAffine", "RandomChoice", "RandomErasing", "RandomFlip",
    "RandomResizedCrop", "RandomRotation", "RandomTranslation", "RandomZoom", "TrivialAugment",
    "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation", "adjust_sharpness",
    "affine_transform", "augment_grid", "apply_lut", "apply_op", "apply_ops_grouped", "autocontrast", "crop", "cutmix", "equalize", "erase",
    "flip_left_right", "flip_up_down", "get_preset", "grayscale", "invert", "map_dataset", "mixup",
    "pad_crop", "posterize", "resized_crop", "rotation_transform", "smooth_labels", "solarize",
    "solarize_add", "warp_affine",
]
