"""Every named recipe, as `kzoo train --recipe NAME` with only the data and the size cut down: it
must run through its whole configuration (optimizer, schedule, EMA, TTA, budget...) and learn."""

import json
import os

import pytest

from kzoo.training import rundir
from kzoo.training.recipes import RECIPES, list_recipes

from kzoo.cli import main

from training_helpers import make_npz

# Smallest input each recipe's model accepts (patch sizes); the rest of the recipe stays as it is.
IMAGE_SIZE = {"vit_keras_example": 24}


@pytest.mark.parametrize("name", list_recipes())
def test_recipe_smoke_run_learns(name, tmp_path):
    data = make_npz(tmp_path / "toy.npz", n=128, size=16)
    out = str(tmp_path / "run")
    size = str(IMAGE_SIZE.get(name, 16))
    # In this process (a fresh one per recipe cost ~8 s of start-up each); conftest resets the dtype policy.
    assert main(["train", "--recipe", name, "--data", data, "--image-size", size, "--epochs", "4",
                 "--batch-size", "16", "--val-split", "0.25", "--no-jit-compile", "--out", out]) == 0
    history = rundir.read_history(out)
    assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"], [r["loss"] for r in history]
    metrics = json.load(open(rundir.run_file(out, "metrics")))
    config = json.load(open(rundir.run_file(out, "config")))
    assert config["recipe"] == name
    for key, value in RECIPES[name].config.items():
        if key not in ("epochs", "batch_size", "image_size", "val_split", "jit_compile"):  # given above
            assert config[key] == value, key
    if RECIPES[name].config.get("tta"):
        assert metrics["tta"]["modes"] == RECIPES[name].config["tta"].split(",")
    for key in ("best", "last", "curves", "confusion"):
        assert os.path.exists(rundir.run_file(out, key)), key
