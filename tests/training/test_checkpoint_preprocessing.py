"""kzoo eval and the tf.data pipeline resize images the way the checkpoint's config says."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from PIL import Image
from training_helpers import run_kzoo

import kzoo.data as kdata
from kzoo.explain.commands import load_images
from kzoo.layers import ImageNormalization
from kzoo.weights.preprocessing import get_preprocessing

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _framed(path, inner, outer, size=(60, 80)):
    h, w = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[:] = outer
    arr[h // 4 : h - h // 4, w // 4 : w - w // 4] = inner
    Image.fromarray(arr).save(path)


@pytest.fixture
def framed_folder(tmp_path):
    """Class `a`: red centre in a blue frame (mostly blue); class `b`: the opposite."""
    root = tmp_path / "framed"
    for cls, (inner, outer) in {"a": (RED, BLUE), "b": (BLUE, RED)}.items():
        for split in ("train", "test"):
            (root / split / cls).mkdir(parents=True)
            for i in range(3):
                _framed(root / split / cls / f"{i}.png", inner, outer, size=(60 + 4 * i, 80))
    return root


def _centre_colour_model(crop_pct: float, crop_mode: str = "center") -> keras.Model:
    """Predicts `a` when red dominates what it sees, `b` when blue does."""
    inputs = keras.Input((16, 16, 3))
    x = ImageNormalization(mean=(0, 0, 0), std=(1, 1, 1), crop_pct=crop_pct, crop_mode=crop_mode,
                           interpolation="bicubic", name="normalization")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(2, name="head")
    outputs = head(x)
    head.set_weights([np.array([[1.0, -1.0], [0.0, 0.0], [-1.0, 1.0]], "float32"), np.zeros(2, "float32")])
    return keras.Model(inputs, outputs)


def test_pipeline_crop_matches_predicts_pillow_crop(framed_folder):
    model = _centre_colour_model(0.4)
    bundle = kdata.load(str(framed_folder), "test", image_size=(16, 16), batch_size=None,
                        preprocessing=get_preprocessing(model))
    images = np.stack([x for x, _ in bundle.dataset.as_numpy_iterator()])
    paths = list(bundle.files)
    reference = load_images(paths, model)  # Pillow, as kzoo predict does
    assert images.shape == reference.shape == (6, 16, 16, 3)
    assert np.abs(images - reference).mean() < 2.0


@pytest.mark.parametrize("crop_pct, crop_mode, top1", [(0.4, "center", 1.0), (1.0, "squash", 0.0)])
def test_eval_applies_the_checkpoint_crop(framed_folder, tmp_path, crop_pct, crop_mode, top1):
    checkpoint = tmp_path / "centre.keras"
    _centre_colour_model(crop_pct, crop_mode).save(checkpoint)
    proc = run_kzoo("eval", "--checkpoint", str(checkpoint), "--data", str(framed_folder), "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "eval-centre.json").read_text())
    # The centre decides the class: only the centre crop gets every image right.
    assert report["top1"] == top1
