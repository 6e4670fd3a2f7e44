"""A checkpoint's resize (interpolation, crop fraction) lives in the model config and is applied by predict."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from PIL import Image

from kzoo.explain.commands import load_images
from kzoo.layers import ImageNormalization
from kzoo.weights.preprocessing import get_preprocessing, pil_resize, resize_plan


@pytest.mark.parametrize(
    "hw, size, pct, mode, expected",
    [
        ((480, 640), (224, 224), 0.875, "center", ((256, 341), (16, 58))),  # 58.5 rounds to even
        ((640, 480), (224, 224), 0.875, "center", ((341, 256), (58, 16))),
        ((480, 640), (224, 224), 1.0, "center", ((224, 298), (0, 37))),
        ((480, 640), (160, 256), 0.9, "center", ((177, 284), (8, 14))),  # non-square: both sides
        ((480, 640), (224, 224), 1.0, "squash", ((224, 224), (0, 0))),  # kzoo's plain resize
    ],
)
def test_resize_plan_matches_timm_eval_transform(hw, size, pct, mode, expected):
    assert resize_plan(*hw, size, pct, mode) == expected


def _framed_image(path, size=(60, 80), inner=(255, 0, 0), outer=(0, 0, 255)):
    """Blue frame around a red centre that covers the middle half of each side."""
    h, w = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:] = outer
    arr[h // 4 : h - h // 4, w // 4 : w - w // 4] = inner
    Image.fromarray(arr).save(path)
    return path


def _tiny_model(crop_pct: float, crop_mode: str = "center", interpolation: str = "bicubic") -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = ImageNormalization(mean=(0, 0, 0), std=(1, 1, 1), crop_pct=crop_pct, crop_mode=crop_mode,
                           interpolation=interpolation, name="normalization")(inputs)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))


def test_crop_settings_survive_keras_save_load(tmp_path):
    model = _tiny_model(0.5)
    path = tmp_path / "m.keras"
    model.save(path)
    pre = get_preprocessing(keras.saving.load_model(path, safe_mode=True))
    assert (pre.input_size, pre.interpolation, pre.crop_pct, pre.crop_mode) == ((16, 16), "bicubic", 0.5, "center")
    assert not pre.is_plain_resize


def test_predict_images_are_cropped_as_the_model_says(tmp_path):
    path = str(_framed_image(tmp_path / "framed.png"))
    cropped = load_images([path], _tiny_model(0.4))[0]  # resize to 40 (shorter side), crop 16: the red centre
    plain = load_images([path], _tiny_model(1.0, "squash", "bilinear"))[0]  # the whole frame, squashed
    assert cropped.shape == plain.shape == (16, 16, 3)
    assert cropped[..., 0].min() > 240 and cropped[..., 2].max() < 15
    assert plain[0, 0, 2] > 240 and plain[8, 8, 0] > 240


def test_pil_resize_bad_interpolation_is_refused():
    with pytest.raises(ValueError):
        ImageNormalization(interpolation="cubic-ish")
    assert pil_resize(Image.new("RGB", (80, 60)), (16, 16), "lanczos", 0.875, "center").size == (16, 16)
