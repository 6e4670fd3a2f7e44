"""Training a CAM model (outputs `[logits, heatmap]`, the heatmap carries no loss) end to end."""

import json
import os

import numpy as np
import pytest
from PIL import Image

import kzoo
from kzoo.training import rundir
from kzoo.training.api import load_checkpoint

from training_helpers import make_npz, run_kzoo


@pytest.fixture
def toy32(tmp_path):
    return make_npz(tmp_path / "toy32.npz", size=32)  # VGG's five stages need 32x32


def _assert_cam_checkpoint(path, size=32):
    model = load_checkpoint(path)
    assert model.output_names == ["logits", "heatmap"]  # the whole model, not the training view
    logits, heatmap = model.predict(np.zeros((2, size, size, 3), "float32"), verbose=0)
    assert logits.shape == (2, 3) and heatmap.shape == (2, size, size)


def test_train_eval_predict_cam_model_via_cli(toy32, tmp_path, capsys):
    from kzoo.cli import main

    out = str(tmp_path / "run")
    # One real process for the training; eval and predict run in this one (~8 s of start-up each saved).
    run_kzoo("train", "--data", toy32, "--model", "vgg11_bn_cam_cifar", "--epochs", "1",
             "--steps-per-epoch", "2", "--batch-size", "16", "--val-split", "0.25", "--out", out, check=True)
    for key in ("best", "last", "metrics", "confusion", "history"):
        assert os.path.exists(rundir.run_file(out, key)), key
    history = rundir.read_history(out)
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[0])  # logits metrics only
    metrics = json.load(open(rundir.run_file(out, "metrics")))
    assert metrics["model"] == "vgg11_bn_cam_cifar" and metrics["num_images"] == 24
    assert 0 <= metrics["top1"] <= 1 and metrics["top5"] is None and np.isfinite(metrics["loss"])
    _assert_cam_checkpoint(os.path.join(out, "best.keras"))

    capsys.readouterr()
    assert main(["eval", "--checkpoint", f"{out}/best.keras", "--data", toy32, "--split", "train"]) == 0
    assert "top-1" in capsys.readouterr().out and os.path.exists(f"{out}/confusion-best.png")
    report = json.load(open(f"{out}/eval-best.json"))
    assert report["num_images"] == 96 and np.asarray(report["confusion"]).shape == (3, 3)

    image = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(image)
    assert main(["predict", "--checkpoint", f"{out}/best.keras", str(image), "--top-k", "2"]) == 0
    assert "x.png" in capsys.readouterr().out


def test_cam_model_with_device_augmentation_saves_every_output(toy32, tmp_path):
    out = str(tmp_path / "run")
    result = kzoo.train(data=toy32, model="vgg11_bn_cam_cifar", epochs=1, steps_per_epoch=2,
                        batch_size=16, val_split=0.25, augment="basic", augment_on="device", out=out)
    assert result.metrics["num_images"] == 24 and np.isfinite(result.metrics["loss"])
    _assert_cam_checkpoint(os.path.join(out, "best.keras"))
