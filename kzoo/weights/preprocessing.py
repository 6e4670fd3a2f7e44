"""A checkpoint's preprocessing (mean, std, input size, interpolation, crop) and applying it to a model.

Mean and std go into the model's `ImageNormalization` layer (config, so they survive `.keras`
save/load). The rest (input size, interpolation, crop fraction) describes how images should be
resized before they reach the model; it is kept on the model as `model.kzoo_preprocessing`
and can be written next to a saved model with `save_preprocessing`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

import keras

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
        crop_mode="center",
    )


def apply_preprocessing(model: keras.Model, preprocessing: Preprocessing) -> keras.Model:
    """Set the model's `ImageNormalization` (layer `normalization`) to the checkpoint's mean/std.

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
    model.kzoo_preprocessing = preprocessing
    reset_compiled_functions(model)
    return model


def reset_compiled_functions(model: keras.Model) -> None:
    """Drop traced train/test/predict functions so a changed layer attribute takes effect."""
    for attr in ("train_function", "test_function", "predict_function"):
        if getattr(model, attr, None) is not None:
            setattr(model, attr, None)


def get_preprocessing(model: keras.Model) -> Preprocessing | None:
    """The preprocessing recorded by the last pretrained load, or None."""
    return getattr(model, "kzoo_preprocessing", None)


def save_preprocessing(model: keras.Model, path: str) -> str | None:
    """Write `model.kzoo_preprocessing` as JSON to `path` (e.g. `best.keras.preprocessing.json`)."""
    pre = get_preprocessing(model)
    if pre is None:
        return None
    with open(os.fspath(path), "w") as f:
        json.dump(pre.to_dict(), f, indent=2)
    return os.fspath(path)
