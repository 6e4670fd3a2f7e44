"""What a new user hits in the first hour: one-class data, failed starts, top-5 of few classes,
a silent final test."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

import kzoo
from kzoo.errors import KzooError
from kzoo.training import rundir
from kzoo.training.config import TrainConfig
from kzoo.training.evaluation import classification_report, predict_logits


def _folder(root, classes, n=4, size=8):
    for name in classes:
        os.makedirs(root / name)
        for i in range(n):
            Image.new("RGB", (size, size), (40 * i, 0, 0)).save(root / name / f"{i}.png")
    return str(root)


def test_one_class_data_is_refused_and_leaves_no_run(tmp_path):
    data = _folder(tmp_path / "one" / "train", ["cats"])
    _folder(tmp_path / "one" / "test", ["cats"])
    out = tmp_path / "run"
    with pytest.raises(KzooError, match=r"has 1 class \(cats\): a classifier needs at least two"):
        kzoo.train(data=os.path.dirname(data), epochs=1, out=str(out))
    assert not out.exists()
    with pytest.raises(KzooError, match=r"holds one class folder \(cats\) and a classifier needs at least two"):
        kzoo.train(data=_folder(tmp_path / "lone", ["cats"]), val_split=0.25, epochs=1, out=str(out))
    assert not out.exists()


def test_a_run_that_never_trained_does_not_block_other_settings(tmp_path):
    out = tmp_path / "run"
    os.makedirs(out)
    TrainConfig(out=str(out), epochs=3).to_json(rundir.run_file(str(out), "config"))  # killed while loading data
    (out / "class_names.json").write_text("[]")
    other = TrainConfig(out=str(out), epochs=5, lr=0.1)
    assert rundir.prepare(other) is False  # a fresh start, not "an interrupted run with other settings"
    assert json.load(open(rundir.run_file(str(out), "config")))["lr"] == 0.1
    rundir.discard_untrained(str(out))
    assert not out.exists()


def test_a_run_that_trained_keeps_its_refusal_and_its_files(tmp_path):
    out = tmp_path / "run"
    os.makedirs(out)
    TrainConfig(out=str(out), epochs=3).to_json(rundir.run_file(str(out), "config"))
    (out / "history.csv").write_text("epoch,loss\n0,2.0\n")
    with pytest.raises(KzooError, match="interrupted run with other settings"):
        rundir.prepare(TrainConfig(out=str(out), epochs=3, lr=0.1))
    rundir.discard_untrained(str(out))
    assert sorted(os.listdir(out)) == ["config.json", "history.csv"]


@pytest.mark.parametrize("classes, top5", [(2, None), (5, None), (6, 1.0)])
def test_top5_is_left_out_when_it_cannot_miss(classes, top5):
    logits = np.eye(classes, dtype="float32")
    report = classification_report(logits, np.arange(classes), [str(i) for i in range(classes)])
    assert report["top5"] == top5


def test_the_final_test_shows_progress(capsys):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    batches = [(np.zeros((2, 4), "float32"), np.eye(3, dtype="float32")[[0, 1]])] * 3
    predict_logits(model, batches, progress=True)
    out = capsys.readouterr().out
    assert "3/3" in out and "batch" in out
    predict_logits(model, batches)
    assert capsys.readouterr().out == ""
