"""A checkpoint's preprocessing (mean, std, input size, interpolation, crop) and applying it to a model.

All of it lives in the model's `ImageNormalization` layer's config (so it survives `.keras`
save/load): mean and std are applied inside the model; interpolation and crop fraction say how
images are resized before they reach it (the input size is the model's own), which
`resize_plan` turns into sizes for Pillow (predict/explain) and tf.data (train/eval).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import keras

from kzoo.layers.preprocess import CROP_MODES, INTERPOLATIONS

# transformers / PIL resample codes
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


@dataclass(frozen=True)
class Preprocessing:
    """How a checkpoint expects its images: `(x / 255 - mean) / std` after resizing and cropping.

    Example:
        >>> Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3).crop_pct
        0.875
    """

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    input_size: tuple[int, int] | None = None  # (height, width)
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    crop_mode: str = "center"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def is_plain_resize(self) -> bool:
        """True when images are just resized (bilinear) to the input size: kzoo's default."""
        return self.interpolation == "bilinear" and (self.crop_pct == 1.0 and self.crop_mode == "squash")


def resize_plan(
    height: int, width: int, input_size: tuple[int, int], crop_pct: float = 1.0, crop_mode: str = "squash"
) -> tuple[tuple[int, int], tuple[int, int]]:
    """`((resize_h, resize_w), (top, left))`: resize an image to the first, then crop `input_size` at the second.

    timm's eval transform: the scale size is `floor(input / crop_pct)`; with `crop_mode="center"`
    and a square input the shorter side goes to it (aspect kept, as torchvision's `Resize(int)`),
    otherwise both sides do; then a centre crop (torchvision's rounding).

    Example:
        >>> resize_plan(480, 640, (224, 224), crop_pct=0.875, crop_mode="center")
        ((256, 341), (16, 58))
    """
    th, tw = (int(v) for v in input_size)
    sh, sw = math.floor(th / crop_pct), math.floor(tw / crop_pct)
    if crop_mode == "center" and th == tw:
        short, long_ = min(height, width), max(height, width)
        new_long = int(sh * long_ / short)
        sh, sw = (sh, new_long) if height <= width else (new_long, sh)
    return (sh, sw), (int(round((sh - th) / 2.0)), int(round((sw - tw) / 2.0)))


def from_timm_config(config: dict) -> Preprocessing | None:
    """From a timm `config.json` (`pretrained_cfg`), or None when it has none."""
    cfg = config.get("pretrained_cfg") or {}
    if not cfg:
        return None
    size = cfg.get("input_size") or cfg.get("test_input_size")
    return Preprocessing(
        mean=tuple(float(v) for v in cfg.get("mean", Preprocessing.mean)),
        std=tuple(float(v) for v in cfg.get("std", Preprocessing.std)),
        input_size=(int(size[-2]), int(size[-1])) if size else None,
        interpolation=str(cfg.get("interpolation", "bilinear")),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
        crop_mode=str(cfg.get("crop_mode", "center")),
    )


def from_transformers_config(preprocessor: dict | None, config: dict | None = None) -> Preprocessing:
    """From a transformers `preprocessor_config.json` (ViT defaults: mean = std = 0.5, bilinear, no crop)."""
    p = preprocessor or {}
    size = p.get("size")
    if isinstance(size, dict):
        size = (int(size.get("height", size.get("shortest_edge", 224))), int(size.get("width", size.get("shortest_edge", 224))))
    elif isinstance(size, int):
        size = (size, size)
    elif size is None and config and "image_size" in config:
        size = (int(config["image_size"]),) * 2
    normalize = p.get("do_normalize", True)
    return Preprocessing(
        mean=tuple(float(v) for v in p.get("image_mean", (0.5, 0.5, 0.5))) if normalize else (0.0, 0.0, 0.0),
        std=tuple(float(v) for v in p.get("image_std", (0.5, 0.5, 0.5))) if normalize else (1.0, 1.0, 1.0),
        input_size=tuple(size) if size else None,
        interpolation=_PIL_RESAMPLE.get(p.get("resample", 2), "bilinear"),
        crop_pct=1.0,  # ViTImageProcessor resizes straight to `size`
        crop_mode="squash",
    )


def pil_resize(img, input_size: tuple[int, int], interpolation: str = "bilinear", crop_pct: float = 1.0,
               crop_mode: str = "squash"):
    """Resize (and centre-crop) a PIL image as `resize_plan` says; returns a PIL image of `input_size`.

    Example:
        >>> from PIL import Image
        >>> pil_resize(Image.new("RGB", (640, 480)), (224, 224), "bicubic", 0.875, "center").size
        (224, 224)
    """
    from PIL import Image

    resample = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
                "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}[interpolation]
    (rh, rw), (top, left) = resize_plan(img.height, img.width, input_size, crop_pct, crop_mode)
    if (img.height, img.width) != (rh, rw):
        img = img.resize((rw, rh), resample)
    th, tw = input_size
    if (rh, rw) != (th, tw):
        img = img.crop((left, top, left + tw, top + th))
    return img


def apply_preprocessing(model: keras.Model, preprocessing: Preprocessing) -> keras.Model:
    """Write the checkpoint's preprocessing into the model's `ImageNormalization` layer(s).

    Mean and std change what the model computes; interpolation and crop fraction ride along in
    the layer's config for whoever resizes images for this model.

    Example:
        >>> apply_preprocessing(model, Preprocessing(mean=(0.5,) * 3, std=(0.5,) * 3))  # doctest: +SKIP
    """
    from kzoo.layers import ImageNormalization

    norms = [layer for layer in model.layers if isinstance(layer, ImageNormalization)]
    for layer in norms:
        if len(layer.mean) != len(preprocessing.mean):
            continue  # e.g. a 1-channel model: leave its statistics alone
        layer.mean = tuple(float(v) for v in preprocessing.mean)
        layer.std = tuple(float(v) for v in preprocessing.std)
        layer.interpolation = preprocessing.interpolation if preprocessing.interpolation in INTERPOLATIONS \
            else "bicubic" if preprocessing.interpolation == "random" else "bilinear"
        layer.crop_pct = float(preprocessing.crop_pct)
        layer.crop_mode = preprocessing.crop_mode if preprocessing.crop_mode in CROP_MODES else "center"
    reset_compiled_functions(model)
    return model


def reset_compiled_functions(model: keras.Model) -> None:
    """Drop traced train/test/predict functions so a changed layer attribute takes effect."""
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)


def get_preprocessing(model: keras.Model) -> Preprocessing | None:
    """What `model` expects of its images (from its `ImageNormalization` config), or None without one.

    Example:
        >>> get_preprocessing(kzoo.create_model("vit_cifar_tiny")).input_size  # doctest: +SKIP
        (32, 32)
    """
    from kzoo.layers import ImageNormalization

    layer = next((lay for lay in _walk(model) if isinstance(lay, ImageNormalization)), None)
    if layer is None:
        return None
    shape = model.input_shape[0] if isinstance(model.input_shape, list) else model.input_shape
    size = tuple(shape[1:3]) if None not in shape[1:3] else None
    return Preprocessing(mean=layer.mean, std=layer.std, input_size=size, interpolation=layer.interpolation,
                         crop_pct=layer.crop_pct, crop_mode=layer.crop_mode)


def _walk(model: keras.Model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def save_preprocessing(model: keras.Model, path: str) -> str | None:
    """Write the model's preprocessing as JSON to `path` (e.g. for a non-Keras consumer)."""
    pre = get_preprocessing(model)
    if pre is None:
        return None
    with open(os.fspath(path), "w") as f:
        json.dump(pre.to_dict(), f, indent=2)
    return os.fspath(path)
