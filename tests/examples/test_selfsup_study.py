"""examples/selfsup_study.py end to end on the bundled sample: two pool fractions, five arms, one step each."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from example_loader import load_example

pytest.importorskip("tensorflow")  # kzoo.train and kzoo pretrain read their data with tf.data





def _ten_classes(path, per_class=8, test_per_class=2):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", per_class), ("test", test_per_class)):
        arrays[f"y_{split}"] = np.repeat(np.arange(10), n)
        arrays[f"x_{split}"] = rng.integers(0, 255, (10 * n, 32, 32, 3), dtype=np.uint8)
    np.savez(path, class_names=np.array(NAMES), **arrays)
    return str(path)


NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_smoke_run_wires_five_arms_and_the_set_size_study(tmp_path):
    out = tmp_path / "study"
    data = _ten_classes(tmp_path / "ten.npz")
    args = ["--out", str(out), "--data", data, "--model", "vit_cifar_tiny", "--recipe", "resnet_study", "--no-jit-compile",
            "--fractions", "0.5,1", "--pretrain-epochs", "1", "--transfer-epochs", "1", "--steps-per-epoch", "1",
            "--batch-size", "16", "--probe-epochs", "1", "--knn-limit", "40"]
    results = load_example("selfsup_study").main(args)

    def config(*parts):
        return json.loads(out.joinpath(*parts, "config.json").read_text())

    # The pretrainings see the pool classes only; the half-pool run half of its images (class-stratified).
    half, full = (config(f"simclr-{f}") for f in ("0.5", "1"))
    assert half["class_subset"] == full["class_subset"] == "0-4" and half["train_fraction"] == 0.5
    assert config("supervised")["class_subset"] == "0-4"
    rows = {r["fraction"]: r for r in results["set_size"]}
    assert (rows[0.5]["pool_images"], rows[1.0]["pool_images"]) == (20, 40)  # 4 and 8 of each pool class
    # Each arm starts from its pretraining (a headless encoder), is trained and tested on the target classes.
    starts = {arm["arm"]: config("arms", arm["arm"].replace(" + ", "-")) for arm in results["arms"]}
    assert [a["arm"] for a in results["arms"]] == [a for a, _, _ in load_example("selfsup_study").ARMS]
    assert starts["simclr + linear"]["weights"] == str(out / "simclr-1" / "encoder.keras")
    assert starts["supervised + fine-tune"]["weights"] == str(out / "supervised" / "encoder.keras")
    assert starts["scratch"]["weights"] is None and starts["simclr + linear"]["freeze"] == "head"
    assert {c["class_subset"] for c in starts.values()} == {"5-9"}
    encoder = keras.saving.load_model(out / "supervised" / "encoder.keras", safe_mode=True)
    assert len(encoder.output.shape) == 2 and "head" not in [layer.name for layer in encoder.layers]
    names = json.loads((out / "arms" / "scratch" / "class_names.json").read_text())
    assert names == NAMES[5:]
    assert all(len(a["curve"]) == a["epochs"] == 1 for a in results["arms"])
    probe = json.loads((out / "probes" / "simclr-1" / "probe.json").read_text())
    assert probe["num_classes"] == 5 and probe["class_subset"] == "5-9"
    table = (out / "results.md").read_text()
    assert "| simclr + fine-tune | " in table and "| 0.5 | " in table
    with open(out / "study.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
