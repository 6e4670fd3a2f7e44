"""examples/robustness_study.py end to end on the bundled sample: two augmentations, one step each."""

from __future__ import annotations

import json

import pytest
from example_loader import load_example

pytest.importorskip("tensorflow")  # kzoo.train reads its data with tf.data





def test_smoke_run_writes_table_figure_and_compares_to_the_baseline(tmp_path):
    out = tmp_path / "study"
    args = ["--out", str(out), "--data", "sample", "--recipe", "resnet_study", "--model", "vit_cifar_tiny",
            "--no-jit-compile", "--augments", "none,augmix",
            "--epochs", "1", "--steps-per-epoch", "2", "--limit", "64", "--corruptions", "fog,contrast",
            "--severities", "1,5"]
    results = load_example("robustness_study").main(args)
    assert [r["augment"] for r in results] == ["none", "augmix"]
    for r in results:
        config = json.loads((out / r["augment"] / "config.json").read_text())
        assert (config["recipe"], config["augment"]) == ("resnet_study", r["augment"])  # the same recipe for all
        assert (out / r["augment"] / "robustness" / "robustness.json").exists()
    assert "mce" not in results[0]["summary"] and "mce" in results[1]["summary"]  # the first run is the baseline
    table = (out / "results.md").read_text()
    assert "| none | " in table and "| augmix | " in table and "100.00" in table.splitlines()[4]
    with open(out / "study.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
