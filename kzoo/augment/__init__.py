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

from kzoo._lazy import lazy_getattr

# Every name below is imported on first use: `import kzoo.augment.presets` (the CLI's help text)
# must not start Keras.
_EXPORTS = {
    **dict.fromkeys(["AUGMIX_ALL_OPS", "AUGMIX_OPS", "AugMix", "AugMixJSD", "jensen_shannon", "mix_chains"],
                    "kzoo.augment.augmix"),
    **dict.fromkeys(["BatchAugmentation", "Compose"], "kzoo.augment.base"),
    **dict.fromkeys(["CORRUPTIONS", "HELD_OUT", "corrupt"], "kzoo.augment.corruptions"),
    **dict.fromkeys(["ColorJitter", "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation",
                     "adjust_sharpness", "apply_lut", "autocontrast", "equalize", "grayscale", "invert", "posterize",
                     "solarize", "solarize_add"], "kzoo.augment.color"),
    **dict.fromkeys(["RandomErasing", "erase"], "kzoo.augment.erasing"),
    **dict.fromkeys(["PadCrop", "RandomAffine", "RandomFlip", "RandomResizedCrop", "RandomRotation",
                     "RandomTranslation", "RandomZoom", "affine_transform", "crop", "flip_left_right", "flip_up_down",
                     "pad_crop", "resized_crop", "rotation_transform", "warp_affine"], "kzoo.augment.geometric"),
    **dict.fromkeys(["CutMix", "LabelSmoothing", "MixUp", "RandomChoice", "cutmix", "mixup", "smooth_labels"],
                    "kzoo.augment.mix"),
    **dict.fromkeys(["DeviceAugmentation", "map_dataset"], "kzoo.augment.placement"),
    **dict.fromkeys(["augment_grid"], "kzoo.augment.grid"),
    **dict.fromkeys(["PRESETS", "get_preset"], "kzoo.augment.presets"),
    **dict.fromkeys(["EXTRA_OPS", "RANDAUGMENT_OPS", "RandAugment", "TrivialAugment", "apply_op", "apply_ops_grouped"],
                    "kzoo.augment.randaugment"),
    **dict.fromkeys(["RandomGaussianBlur", "RandomGrayscale", "TwoViews", "blur_kernel_size", "simclr_views"],
                    "kzoo.augment.views"),
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "AUGMIX_ALL_OPS", "AUGMIX_OPS", "AugMix", "AugMixJSD", "jensen_shannon", "mix_chains",
    "CORRUPTIONS", "HELD_OUT", "corrupt", "EXTRA_OPS", "PRESETS", "RANDAUGMENT_OPS",
    "BatchAugmentation", "ColorJitter", "Compose", "CutMix", "DeviceAugmentation", "LabelSmoothing",
    "MixUp", "PadCrop", "RandAugment", "RandomAffine", "RandomChoice", "RandomErasing", "RandomFlip",
    "RandomResizedCrop", "RandomRotation", "RandomTranslation", "RandomZoom", "TrivialAugment",
    "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation", "adjust_sharpness",
    "affine_transform", "augment_grid", "apply_lut", "apply_op", "apply_ops_grouped", "autocontrast", "crop", "cutmix", "equalize", "erase",
    "flip_left_right", "flip_up_down", "get_preset", "grayscale", "invert", "map_dataset", "mixup",
    "pad_crop", "posterize", "resized_crop", "rotation_transform", "smooth_labels", "solarize",
    "solarize_add", "warp_affine",
    "RandomGaussianBlur", "RandomGrayscale", "TwoViews", "blur_kernel_size", "simclr_views",
]
