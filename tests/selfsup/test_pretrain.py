"""kzoo pretrain (SimCLR in a kzoo run directory): outputs, kNN monitor, resume, probe and fine-tuning
from its encoder, and the one-line refusals."""

import json
import os

import keras
import numpy as np
import pytest

import kzoo
from kzoo.cli import main
from kzoo.selfsup import knn_accuracy, pretrain
from kzoo.selfsup.config import PretrainConfig
from kzoo.training import callbacks as run_callbacks
from kzoo.training import rundir
from tests.selfsup.test_probe import make_npz
from tests.training.training_helpers import Crash, CrashAt

TINY = dict(model="vit_cifar_tiny", image_size=[16, 16], batch_size=16, hidden_dim=32, projection_dim=16,
            lr=0.05, knn_limit=None)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One 2-epoch SimCLR run on a colour-coded toy set, shared by the tests that read it."""
    root = tmp_path_factory.mktemp("pretrain")
    data = make_npz(root / "toy.npz", n_train=96, n_test=48)
    result = pretrain(data=data, epochs=2, out=str(root / "run"), **TINY)
    return data, result


def test_run_directory_holds_encoder_history_and_knn(pretrained):
    data, result = pretrained
    out = result.run_dir
    for name in ("encoder.keras", "last.keras", "history.csv", "curves.png", "metrics.json", "config.json"):
        assert os.path.exists(os.path.join(out, name)), name
    history = rundir.read_history(out)
    assert [int(r["epoch"]) for r in history] == [0, 1] and all("knn_top1" in r for r in history)
    assert "val_" not in open(os.path.join(out, "history.csv")).readline()  # no validation, no empty val_* columns
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["epochs_completed"] == 2 and metrics["knn_epoch"] == 2
    assert metrics["knn_top1"] == pytest.approx(history[-1]["knn_top1"])
    encoder = keras.saving.load_model(os.path.join(out, "encoder.keras"), safe_mode=True)
    assert len(encoder.output.shape) == 2 and "head" not in [layer.name for layer in encoder.layers]
    assert metrics["feature_dim"] == encoder.output.shape[-1]
    # The encoder is the trained backbone of last.keras (SimCLR: backbone + projection head).
    whole = keras.saving.load_model(os.path.join(out, "last.keras"), safe_mode=True)
    assert len(whole.backbone.weights) == len(encoder.weights)
    for a, b in zip(whole.backbone.weights, encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The logged kNN accuracy is the encoder's, recomputed here from the same splits.
    bank = kzoo.data.load(data, "train", image_size=(16, 16), batch_size=256, shuffle=False)
    queries = kzoo.data.load(data, "test", image_size=(16, 16), batch_size=256)
    assert knn_accuracy(encoder, bank.dataset, queries.dataset)["top1"] == pytest.approx(metrics["knn_top1"])


def test_probe_and_fine_tuning_start_from_the_encoder(pretrained, tmp_path, capsys):
    data, result = pretrained
    encoder_path = os.path.join(result.run_dir, "encoder.keras")
    assert main(["probe", "--encoder", encoder_path, "--data", data, "--epochs", "30", "--out",
                 str(tmp_path / "probe")]) == 0
    assert "linear probe: top-1" in capsys.readouterr().out
    assert json.load(open(tmp_path / "probe" / "probe.json"))["top1"] > 0.9  # colour-coded classes
    # The whole SimCLR model (last.keras) is probed through its backbone: the same features.
    assert main(["probe", "--encoder", os.path.join(result.run_dir, "last.keras"), "--data", data, "--epochs", "30",
                 "--out", str(tmp_path / "probe_last")]) == 0
    same = [json.load(open(tmp_path / d / "probe.json"))["top1"] for d in ("probe", "probe_last")]
    assert same[0] == pytest.approx(same[1])
    # Fine-tuning: kzoo train --weights encoder.keras loads every layer but the (new) head; with
    # --freeze head only the head trains, so the backbone ends equal to the encoder.
    tuned = kzoo.train(model="vit_cifar_tiny", image_size=[16, 16], batch_size=16, data=data, epochs=1,
                       weights=encoder_path, freeze="head", augment="none", out=str(tmp_path / "tuned"))
    encoder = keras.saving.load_model(encoder_path, safe_mode=True)
    body = [w for layer in tuned.model.layers if layer.name != "head" for w in layer.weights]
    assert len(body) == len(encoder.weights)
    for a, b in zip(body, encoder.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_killed_pretraining_resumes_with_the_same_number_of_steps(tmp_path, monkeypatch):
    data = make_npz(tmp_path / "toy.npz", n_train=96, n_test=32)  # 6 steps of 16 per epoch
    cfg = dict(TINY, data=data, epochs=2, backup_steps=2, knn_every=0, out=str(tmp_path / "run"))
    standard = run_callbacks.standard
    monkeypatch.setattr(run_callbacks, "standard", lambda *a: standard(*a) + [CrashAt(2)])
    with pytest.raises(Crash):
        pretrain(**cfg)
    assert run_callbacks.backup_position(cfg["out"]) == (0, 2)
    monkeypatch.setattr(run_callbacks, "standard", standard)
    pretrain(**cfg)
    last = keras.saving.load_model(rundir.run_file(cfg["out"], "last"))
    assert int(keras.ops.convert_to_numpy(last.optimizer.iterations)) == 2 * 6
    assert PretrainConfig.from_json(rundir.run_file(cfg["out"], "config")).temperature == 0.5


@pytest.mark.parametrize("args, message", [
    (["--temperature", "0"], "--temperature must be > 0, got 0.0"),
    (["--method", "byol"], "--method 'byol' is not supported: choose one of simclr"),
    (["--augment", "basic"], "--augment 'basic' makes one view per image; simclr compares two"),
    (["--val-split", "0.1"], "are supervised settings"),
])
def test_bad_pretrain_flags_are_one_line_and_write_nothing(args, message, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["pretrain", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_an_empty_pretraining_folder_is_refused(tmp_path, capsys):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    out = tmp_path / "run"
    assert main(["pretrain", "--data", str(tmp_path / "empty"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty" in err[0], err
    assert not out.exists()


def test_kzoo_train_refuses_the_two_view_preset(tmp_path, capsys):
    assert main(["train", "--augment", "simclr", "--out", str(tmp_path / "run")]) == 2
    assert "use it with kzoo pretrain" in capsys.readouterr().err
