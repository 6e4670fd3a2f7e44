"""End-to-end training through the public API and the CLI, on small data made here."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

import kzoo
from kzoo.training import rundir

from training_helpers import REPO, make_npz, run_kzoo, toy_npz  # noqa: F401  (toy_npz is a fixture)

# Graph mode, not XLA: compiling each tiny run cost more than training it (the first test keeps the
# default XLA path).
TINY = dict(model="vit_cifar_tiny", image_size=[16, 16], batch_size=16, val_split=0.25, augment="basic",
            lr=2e-3, weight_decay=0.0, jit_compile=False)


def test_train_writes_a_complete_run_directory(tmp_path, monkeypatch, caplog):
    # Keras destroys a finite dataset's tf.data iterator at each epoch end, which stalled the next
    # step for 30-45 s on the 2-core CPU: train hands fit an endless dataset and counts epochs in steps.
    created, original = [], tf.data.Dataset.__iter__

    def spy(self):
        created.append(int(self.cardinality()))
        return original(self)

    monkeypatch.setattr(tf.data.Dataset, "__iter__", spy)
    out = str(tmp_path / "run")
    data = make_npz(tmp_path / "toy64.npz", size=64)  # trained at 16x16: shrunk 4x, which the run must say
    with caplog.at_level("INFO", logger="kzoo"):
        result = kzoo.train(data=data, epochs=3, out=out, **{**TINY, "jit_compile": True})  # the default
    assert "images: 64x64 in the data, trained at 16x16 (--image-size)" in caplog.text
    assert [r.levelname for r in caplog.records if "shrunk 4.0x (64x64 -> 16x16)" in r.getMessage()] == ["WARNING"]
    assert created.count(int(tf.data.INFINITE_CARDINALITY)) == 1  # one training iterator for 3 epochs
    last = keras.saving.load_model(rundir.run_file(out, "last"))
    assert int(keras.ops.convert_to_numpy(last.optimizer.iterations)) == 3 * (72 // 16)  # 96 images, 1/4 held out
    for key in ("config", "history", "curves", "metrics", "best", "last", "confusion"):
        assert os.path.exists(rundir.run_file(out, key)), key
    with open(rundir.run_file(out, "curves"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    history = rundir.read_history(out)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]
    assert history[-1]["loss"] < history[0]["loss"]  # it learned something
    assert {"lr", "images_per_sec", "val_accuracy"} <= set(history[0])
    assert "val_top5" not in history[0]  # top-5 of three classes is 100% by construction: not logged
    metrics = json.load(open(rundir.run_file(out, "metrics")))
    assert metrics["evaluated_on"] == "val" and metrics["checkpoint"] == "best"
    assert metrics["num_images"] == 24 and 0 <= metrics["top1"] <= 1 and metrics["top5"] is None
    assert metrics["images_per_sec"] > 0 and metrics["wall_time_s"] > 0
    assert result.metrics == metrics
    config = json.load(open(rundir.run_file(out, "config")))
    assert config["data"] == data and config["epochs"] == 3 and config["image_size"] == [16, 16]


def test_finished_run_is_not_overwritten(toy_npz, tmp_path):
    out = str(tmp_path / "run")
    kzoo.train(data=toy_npz, epochs=1, out=out, **TINY)
    before = {name: os.path.getmtime(os.path.join(out, name)) for name in ("best.keras", "metrics.json")}
    with pytest.raises(kzoo.KzooError, match="already holds a finished run"):
        kzoo.train(data=toy_npz, epochs=1, out=out, **TINY)
    after = {name: os.path.getmtime(os.path.join(out, name)) for name in before}
    assert before == after


@pytest.mark.slow
def test_resume_after_kill(tmp_path):
    data = make_npz(tmp_path / "toy.npz", n=512)  # 16x16: 12 steps an epoch, compiled without XLA
    out = str(tmp_path / "run")
    args = ["train", "--data", data, "--model", "vit_cifar_tiny", "--image-size", "16", "--no-jit-compile",
            "--epochs", "4", "--batch-size", "32", "--val-split", "0.25", "--out", out]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    proc = subprocess.Popen([sys.executable, "-m", "kzoo.cli", *args], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(rundir.read_history(out)) < 1:
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up, as in a crash
    proc.wait()
    killed_at = len(rundir.read_history(out))
    assert 1 <= killed_at < 4 and not os.path.exists(os.path.join(out, "metrics.json"))
    best_before = os.path.getmtime(os.path.join(out, "best.keras"))

    resumed = run_kzoo(*args, check=True)
    assert "resuming" in resumed.stderr
    history = rundir.read_history(out)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["epochs_completed"] == 4
    assert os.path.getmtime(os.path.join(out, "best.keras")) >= best_before


@pytest.mark.parametrize("args, message", [
    (["--model", "vit_cifar_tinyy"], "unknown model 'vit_cifar_tinyy': did you mean vit_cifar_tiny"),
    (["--val-split", "1.5"], "--val-split must be between 0 and 1"),
    (["--data", "/no/such/dir"], "/no/such/dir"),
    (["--optimizer", "adagrad"], "--optimizer 'adagrad' is not supported"),
    (["--pretrained", "--model", "vit_cifar_tiny"], "vit_cifar_tiny has no pretrained weights"),
])
def test_cli_user_errors_are_one_line(tmp_path, args, message):
    proc = run_kzoo("train", "--out", str(tmp_path / "run"), "--epochs", "1", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if line.startswith("kzoo")]
    assert len(lines) == 1 and message in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # a run that never trained leaves nothing to block the fixed command


def test_eval_cli_and_class_mismatch(toy_npz, tmp_path, capsys):
    from kzoo.cli import main

    out = str(tmp_path / "run")
    four = make_npz(tmp_path / "four.npz", classes=4)
    kzoo.train(data=four, class_subset="0-2", epochs=1, out=out, **TINY)  # trained on 3 of its 4 classes
    assert json.load(open(f"{out}/class_names.json")) == ["0", "1", "2"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", f"{out}/best.keras", "--data", toy_npz, "--split", "train"]) == 0
    assert "top-1" in capsys.readouterr().out and os.path.exists(f"{out}/confusion-best.png")
    report = json.load(open(f"{out}/eval-best.json"))
    assert report["num_images"] == 96 and len(report["confusion"]) == 3
    # One real process: a user mistake exits 2 with one line and no traceback.
    proc = run_kzoo("eval", "--checkpoint", f"{out}/best.keras", "--data", four, "--split", "train")
    assert proc.returncode == 2 and "predicts 3 classes" in proc.stderr and "Traceback" not in proc.stderr
    assert "pass the same --class-subset" in proc.stderr
    assert main(["eval", "--checkpoint", f"{out}/best.keras", "--data", four, "--split", "train", "--class-subset",
                 "0-2", "--out", str(tmp_path / "subset")]) == 0
    assert json.load(open(tmp_path / "subset" / "eval-best.json"))["num_images"] == int(np.sum(np.load(four)["y"] < 3))
    # Same count, other names: refused in one line naming both lists, unless pairing by position is asked for.
    renamed = str(tmp_path / "renamed.npz")
    np.savez(renamed, **dict(np.load(toy_npz)), class_names=np.array(["cat", "dog", "emu"]))
    capsys.readouterr()
    assert main(["eval", "--checkpoint", f"{out}/best.keras", "--data", renamed, "--split", "train"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("kzoo eval: error")]
    assert len(errors) == 1, err[-2000:]
    assert "[0, 1, 2]" in errors[0] and "[cat, dog, emu]" in errors[0] and "--map-classes-by-position" in errors[0]
    assert main(["eval", "--checkpoint", f"{out}/best.keras", "--data", renamed, "--split", "train",
                 "--map-classes-by-position"]) == 0
    printed = capsys.readouterr().out
    assert "cat" in printed and "top-5" not in printed  # three classes: no top-5


@pytest.mark.slow
@pytest.mark.parametrize("mode, env", [
    ("mirrored", {"KERAS_BACKEND": "tensorflow", "KZOO_CPU_DEVICES": "2"}),
    ("data-parallel", {"KERAS_BACKEND": "jax", "KZOO_CPU_DEVICES": "2"}),
])
def test_distribute_on_two_cpu_devices(tmp_path, mode, env):
    data = make_npz(tmp_path / "toy.npz", n=64)
    out = str(tmp_path / "run")
    run_kzoo("train", "--data", data, "--model", "vit_cifar_tiny", "--image-size", "16", "--epochs", "1",
             "--batch-size", "8", "--lr", "1e-3", "--val-split", "0.25", "--distribute", mode, "--out", out,
             env=env, check=True)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert metrics["replicas"] == 2 and metrics["global_batch"] == 16
    assert metrics["backend"] == env["KERAS_BACKEND"]
    assert np.isfinite(metrics["loss"])


def test_device_augmentation_trains_and_saves_the_bare_model(toy_npz, tmp_path):
    out = str(tmp_path / "run")
    result = kzoo.train(data=toy_npz, epochs=2, out=out, augment_on="device",
                        **{**TINY, "augment": "strong"})
    import keras

    saved = keras.saving.load_model(os.path.join(out, "best.keras"))
    assert saved.name == "vit_cifar_tiny"  # the model itself, not the augmentation wrapper
    assert len(rundir.read_history(out)) == 2 and np.isfinite(result.metrics["loss"])


def test_augment_grid_cli_writes_a_png(toy_npz, tmp_path):
    out = tmp_path / "grid.png"
    proc = run_kzoo("augment-grid", "--data", toy_npz, "--augment", "strong", "--image-size", "16",
                    "--out", str(out), check=True)
    assert "wrote" in proc.stdout and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    proc = run_kzoo("augment-grid", "--data", toy_npz, "--augment", "nope", "--out", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "nope" in proc.stderr


def test_adaptive_loss_trains_with_the_split_class_counts(tmp_path, monkeypatch):
    # Imbalanced toy data: the adaptive loss must get the training split's own class counts.
    path = make_npz(tmp_path / "imbalanced.npz", n=96, classes=3)
    with np.load(path) as d:
        x, y = d["x"], d["y"]
    keep = np.concatenate([np.flatnonzero(y == 0), np.flatnonzero(y != 0)[:12]])
    np.savez(path, x=x[keep], y=y[keep])
    seen = {}
    import kzoo.losses

    original = kzoo.losses.get_loss

    def spy(name, **kwargs):
        seen.update(kwargs)
        return original(name, **kwargs)

    monkeypatch.setattr(kzoo.losses, "get_loss", spy)
    data = kzoo.data.load(path, "train", val_split=0.25, image_size=(16, 16), batch_size=16)
    result = kzoo.train(data=path, epochs=1, out=str(tmp_path / "run"), **{**TINY, "loss": "adaptive"})
    assert list(seen["class_counts"]) == list(data.class_counts) and sum(data.class_counts) == data.num_examples
    assert data.class_counts[0] > 2 * max(data.class_counts[1:])
    assert np.isfinite(result.metrics["loss"])
