"""examples/cnn_vs_vit.py end to end on the bundled sample: one epoch of two steps per model."""

from __future__ import annotations

import json
import os

import pytest
from example_loader import load_example

pytest.importorskip("tensorflow")  # kzoo.train reads its data with tf.data

TARGET = 40_000




def test_smoke_run_writes_figure_table_and_both_runs(tmp_path):
    out = tmp_path / "cmp"
    args = ["--data", "sample", "--target-params", str(TARGET), "--epochs", "1", "--steps-per-epoch", "2",
            "--out", str(out), "--no-jit-compile"]  # XLA compiles for longer than two steps take
    results = load_example("cnn_vs_vit").main(args)

    assert [r["kind"] for r in results] == ["vgg", "vit"]
    with open(out / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    table = (out / "results.md").read_text()
    assert "CNN (VGG11-shaped)" in table and "| ViT |" in table
    saved = json.loads((out / "results.json").read_text())
    assert saved["recipe"]["augment"] == "cutmix" and saved["milestones"] == [1]
    for r in saved["results"]:
        assert abs(r["params"] - TARGET) <= 0.02 * TARGET and f"{r['params']:,}" in table
        # The run trained with the source recipe through kzoo.train and logged one full epoch.
        config = json.loads((out / r["kind"] / "config.json").read_text())
        recipe = (config["optimizer"], config["lr"], config["weight_decay"], config["batch_size"])
        assert recipe == ("sgd", 1e-3, 1e-3, 64)
        assert (config["schedule"], config["augment"], config["model"]) == ("multistep", "cutmix", r["model"])
        assert len(r["history"]) == 1
        row = r["history"][0]
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(row)
        assert row["loss"] > 0 and 0 <= row["val_accuracy"] <= 1
        assert r["metrics"]["num_images"] == 1000 and 0 <= r["metrics"]["top1"] <= r["metrics"]["top5"] <= 1

    # Rerunning with the same settings reuses both finished runs instead of refusing or retraining.
    before = os.path.getmtime(out / "vgg" / "metrics.json")
    again = load_example("cnn_vs_vit").main(args)
    assert os.path.getmtime(out / "vgg" / "metrics.json") == before
    assert [r["metrics"]["top1"] for r in again] == [r["metrics"]["top1"] for r in results]
