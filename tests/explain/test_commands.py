"""`kzoo predict` / `kzoo explain`, overlays, the grid figure and HeatmapCallback."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

import kzoo
from kzoo.cli import main
from kzoo.errors import KzooError
from kzoo.explain import HeatmapCallback, heatmap_grid, overlay
from kzoo.explain.commands import explain_images, load_image, predict_images, read_class_names


@pytest.fixture
def checkpoint(tmp_path):
    keras.utils.set_random_seed(7)
    model = kzoo.create_model("vgg11", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.125, head="gap",
                              dropout=0.0)
    path = tmp_path / "run" / "best.keras"
    path.parent.mkdir()
    model.save(str(path))
    return str(path)


@pytest.fixture
def image_files(tmp_path):
    rng = np.random.default_rng(0)
    files = []
    for name, mode, size in [("a.png", "RGB", (40, 50)), ("b.jpg", "L", (32, 32)), ("c.bmp", "RGB", (17, 23)),
                             ("d.png", "RGBA", (64, 64))]:
        channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, (size[0], size[1], channels), dtype=np.uint8)
        img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode)
        path = tmp_path / name
        img.save(path)
        files.append(str(path))
    return files


def test_load_image_converts_and_resizes(image_files, tmp_path):
    for f in image_files:
        arr = load_image(f, (32, 32), 3)
        assert arr.shape == (32, 32, 3) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 255
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(KzooError, match="cannot read image") as e:
        load_image(str(bad))
    assert "\n" not in str(e.value)
    with pytest.raises(KzooError, match="not found"):
        load_image(str(tmp_path / "missing.png"))


def test_predict_images_top_k_and_class_names(checkpoint, image_files, tmp_path):
    results = predict_images(checkpoint, image_files, top_k=2)
    assert len(results) == 4
    for r in results:
        probs = [p["probability"] for p in r["predictions"]]
        assert len(probs) == 2 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert all(p["name"].startswith("class_") for p in r["predictions"])
    with open(os.path.join(os.path.dirname(checkpoint), "class_names.json"), "w") as f:
        json.dump(["cat", "dog", "bird"], f)
    assert predict_images(checkpoint, image_files[:1], top_k=9)[0]["predictions"][0]["name"] in {"cat", "dog", "bird"}
    names = tmp_path / "names.txt"
    names.write_text("x\ny\nz\n")
    assert read_class_names(checkpoint, str(names), 3) == ["x", "y", "z"]
    with pytest.raises(KzooError, match="2 class names"):
        names.write_text("x\ny\n")
        read_class_names(checkpoint, str(names), 3)


def test_explain_images_writes_overlays_and_grid(checkpoint, image_files, tmp_path):
    out = tmp_path / "out"
    result = explain_images(checkpoint, image_files[:3], str(out), method="gradcam++")
    assert result["layer"] == "vgg11/stage5" or result["layer"] == "stage5"
    for e in result["images"]:
        img = np.asarray(Image.open(e["overlay"]))
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert os.path.exists(result["grid"])
    with pytest.raises(KzooError, match="no layer"):
        explain_images(checkpoint, image_files[:1], str(out), layer="nope")


def test_cli_predict_and_explain(checkpoint, image_files, tmp_path, capsys):
    assert main(["predict", "--checkpoint", checkpoint, *image_files[:2], "--top-k", "3"]) == 0
    out = capsys.readouterr().out
    assert image_files[0] in out and out.count("%") == 6
    assert main(["explain", "--checkpoint", checkpoint, image_files[0], "--out", str(tmp_path / "x"),
                 "--method", "cam"]) == 0
    assert os.path.exists(tmp_path / "x" / "grid.png")
    bad = tmp_path / "bad.jpg"
    bad.write_text("garbage")
    assert main(["predict", "--checkpoint", checkpoint, str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot read image" in err and err.count("\n") == 1


def test_overlay_and_grid(tmp_path):
    image = np.full((8, 8, 3), 100.0)
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    out = overlay(image, heat, alpha=0.5)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert not np.array_equal(out[0, 0], out[7, 7])
    np.testing.assert_array_equal(overlay(image, heat, alpha=0.0), np.full((8, 8, 3), 100, np.uint8))
    assert overlay(np.zeros((8, 8)), np.zeros((8, 8))).shape == (8, 8, 3)
    with pytest.raises(KzooError):
        overlay(image, heat, alpha=2)
    path = heatmap_grid(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 8)), str(tmp_path / "g.png"), predicted=[0, 1],
                        probabilities=[0.5, 0.9], labels=[1, 1], class_names=["a", "b"])
    assert Image.open(path).size[0] > 100


def test_heatmap_callback_writes_one_file_per_epoch(tmp_path):
    keras.utils.set_random_seed(8)
    model = kzoo.create_model("vgg11", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.125, head="gap",
                              dropout=0.0)
    model.compile("adam", keras.losses.CategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(np.arange(8) % 3, 3)
    cb = HeatmapCallback(x[:3], str(tmp_path / "hm"), labels=y[:3], class_names=["a", "b", "c"])
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[cb])
    assert sorted(os.listdir(tmp_path / "hm")) == ["heatmaps-epoch001.png", "heatmaps-epoch002.png"]
    with pytest.raises(KzooError):
        HeatmapCallback(x[:3], str(tmp_path), every=0)
