"""`kzoo zeroshot` and `kzoo train --method coop` end to end on the fixture CLIP and a toy .npz, and
their one-line refusals (exit 2, nothing written)."""

import csv
import json
import os

import numpy as np
import pytest

from kzoo.cli import main
from tests.training.training_helpers import make_npz
from tests.vlm.conftest import FIXTURES  # the CLI runs tf.data: TF pass only (tests/cli)

CLIP = str(FIXTURES / "transformers")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("vlm")
    path = make_npz(root / "toy.npz", n=30, size=32)
    # A test split: the .npz source reads x_test/y_test beside x/y.
    with np.load(path) as d:
        np.savez(path, x=d["x"], y=d["y"], x_test=d["x"][:12], y_test=d["y"][:12])
    return root, path


def test_zeroshot_writes_predictions_and_a_classifier_kzoo_eval_takes(toy, capsys):
    root, data = toy
    out = root / "zs"
    assert main(["zeroshot", "--clip", CLIP, "--data", data, "--templates", "simple", "--out", str(out)]) == 0
    report = json.load(open(out / "eval-zeroshot.json"))
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == report["num_images"] == 12
    assert float(rows[0]["prob1"]) >= float(rows[0]["prob2"]) >= float(rows[0]["prob3"])
    assert np.mean([r["top1"] == r["label"] for r in rows]) == pytest.approx(report["top1"])
    assert f"top-1 {report['top1']:.2%}" in capsys.readouterr().out
    # zeroshot.keras is an ordinary classifier: kzoo eval reproduces the figure.
    assert main(["eval", "--checkpoint", str(out / "zeroshot.keras"), "--data", data, "--out", str(root / "ev")]) == 0
    assert json.load(open(root / "ev" / "eval-zeroshot.json"))["top1"] == pytest.approx(report["top1"])


def test_coop_run_directory_and_folded_classifier(toy):
    root, data = toy
    out = root / "coop"
    assert main(["train", "--method", "coop", "--clip", CLIP, "--data", data, "--shots", "2", "--context", "4",
                 "--epochs", "2", "--batch-size", "4", "--out", str(out)]) == 0
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["shots"] == 2 and metrics["context"] == 4 and metrics["epochs_completed"] == 2
    history = [line for line in open(out / "history.csv")][1:]
    assert len(history) == 2
    assert main(["eval", "--checkpoint", str(out / "classifier.keras"), "--data", data, "--out", str(root / "ev2")]) == 0
    assert json.load(open(root / "ev2" / "eval-classifier.json"))["top1"] == pytest.approx(metrics["top1"])


@pytest.mark.parametrize("argv,message", [
    (["zeroshot", "--clip", "{empty}"], "not a CLIP checkpoint folder"),
    (["zeroshot", "--clip", CLIP, "--templates", "{bad_templates}"], "expected exactly one"),
    (["zeroshot", "--clip", CLIP, "--classes", "{two_classes}"], "2 class names, but"),
    (["train", "--method", "coop", "--clip", CLIP, "--shots", "99"], "use --shots"),
    (["train", "--method", "coop", "--clip", "{empty}"], "not a CLIP checkpoint folder"),
    (["train", "--clip", CLIP], "belongs to --method coop"),
])
def test_bad_input_is_one_line_and_exit_2(toy, tmp_path, capsys, argv, message):
    root, data = toy
    (tmp_path / "empty").mkdir()
    (tmp_path / "t.txt").write_text("a photo\n")
    (tmp_path / "c.txt").write_text("a\nb\n")
    paths = dict(empty=str(tmp_path / "empty"), bad_templates=str(tmp_path / "t.txt"), two_classes=str(tmp_path / "c.txt"))
    argv = [a.format(**paths) for a in argv] + ["--data", data, "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not os.path.exists(tmp_path / "out")


def test_clip_trained_from_scratch_leaves_a_clip_folder_the_other_commands_take(toy):
    root, data = toy
    out = root / "clip"
    assert main(["train", "--method", "clip", "--tokenizer", CLIP, "--data", data, "--epochs", "1", "--warmup", "0", "--no-jit-compile",
                 "--steps-per-epoch", "2", "--batch-size", "8", "--out", str(out)]) == 0
    metrics = json.load(open(out / "metrics.json"))
    assert metrics["zero_shot_templates"] and not set(metrics["zero_shot_templates"]) & set(metrics["training_templates"])
    # RUN/clip is a CLIP folder: zero-shot with the same held-out templates gives the run's figure.
    assert main(["zeroshot", "--clip", str(out / "clip"), "--data", data, "--templates", "imagenet_unseen",
                 "--out", str(root / "zs2")]) == 0
    assert json.load(open(root / "zs2" / "eval-zeroshot.json"))["top1"] == pytest.approx(metrics["top1"])


@pytest.mark.parametrize("argv,message", [
    (["train", "--method", "clip"], "needs --tokenizer"),
    (["train", "--method", "clip", "--tokenizer", CLIP, "--eval-templates", "cifar"], "shares 18 template"),
    (["train", "--method", "coop", "--clip", CLIP, "--eval-templates", "cifar"], "belongs to --method clip"),
])
def test_clip_training_refusals(toy, tmp_path, capsys, argv, message):
    root, data = toy
    assert main(argv + ["--data", data, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()
