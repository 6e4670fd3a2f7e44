"""`kzoo train` features the recipes need, end to end through model.fit: EMA checkpoints, the
wall-clock budget, mid-epoch resume, TTA in the final test and in `kzoo eval`, named recipes.

Marked backend_agnostic: the JAX pass trains the same way (tf.data feeds JAX arrays).
"""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

import kzoo
from kzoo.cli import build_parser, main
from kzoo.errors import KzooError
from kzoo.training import callbacks as run_callbacks
from kzoo.training import rundir
from kzoo.training.config import TrainConfig
from kzoo.training.recipes import expand_recipe, list_recipes

from training_helpers import Crash, CrashAt, make_npz, toy_npz  # noqa: F401  (toy_npz is a fixture)

pytestmark = pytest.mark.backend_agnostic
# XLA only under JAX (its one compiled path; eager JAX runs op by op): under TensorFlow, graph mode
# compiles these tiny runs faster than XLA, and what is tested here does not depend on it.
TINY = dict(model="vit_cifar_tiny", image_size=[16, 16], batch_size=16, val_split=0.25, augment="none",
            lr=2e-3, weight_decay=0.0, jit_compile=keras.backend.backend() == "jax")


def _raw_weights(out: str) -> np.ndarray:
    """The model weights in a run's backup (what training itself holds), flattened."""
    model = keras.saving.load_model(rundir.run_file(out, "last"))
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(os.path.join(rundir.run_file(out, "backup"), "latest.weights.h5"))
    return _flat(model.trainable_weights)


def _flat(weights) -> np.ndarray:
    return np.concatenate([np.ravel(keras.ops.convert_to_numpy(w)) for w in weights])


@pytest.mark.parametrize("ema", [None, 0.9])
def test_ema_weights_are_validated_and_checkpointed(toy_npz, tmp_path, ema):
    if ema is None and keras.backend.backend() != "tensorflow":
        pytest.skip("the no-EMA control runs in the TensorFlow pass")
    out = str(tmp_path / "run")
    result = kzoo.train(data=toy_npz, epochs=2, out=out, ema=ema, **TINY)
    last = keras.saving.load_model(rundir.run_file(out, "last"))
    saved, raw = _flat(last.trainable_weights), _raw_weights(out)
    # Without EMA the checkpoint is the trained weights; with EMA it is their average, not the raw ones.
    assert np.array_equal(saved, raw) == (ema is None)
    # Validation saw the checkpointed (averaged) weights: re-evaluating the checkpoint reproduces it.
    val = kzoo.data.load(toy_npz, "val", val_split=0.25, image_size=(16, 16), batch_size=16)
    last.compile(loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    again = last.evaluate(val.dataset, verbose=0, return_dict=True)
    assert again["accuracy"] == pytest.approx(rundir.read_history(out)[-1]["val_accuracy"], abs=1e-6)
    assert np.isfinite(result.metrics["loss"])


class _FakeClock:
    """time.perf_counter for kzoo's callbacks that advances a fixed step per call, so a budget test
    does not depend on how fast this machine compiles and trains."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def perf_counter(self):
        self.now += self.tick
        return self.now


def test_budget_stops_training_and_anneals_with_the_clock(toy_npz, tmp_path, monkeypatch):
    monkeypatch.setattr(run_callbacks, "time", _FakeClock(0.25))
    out = str(tmp_path / "run")
    # 4 steps per epoch: 2000 epochs would keep a step-based cosine at its peak for all of this run.
    result = kzoo.train(data=toy_npz, epochs=2000, out=out, budget_minutes=0.5, **TINY)
    history = rundir.read_history(out)
    assert 2 <= len(history) < 100  # the clock, not the epoch count, ended training
    rates = [row["lr"] for row in history]
    assert rates == sorted(rates, reverse=True) and rates[0] > 0.8 * TINY["lr"]
    assert rates[-1] < 0.2 * TINY["lr"]  # the cosine followed the clock to (nearly) its end
    assert os.path.exists(rundir.run_file(out, "metrics")) and result.metrics["epochs_completed"] == len(history)


def _iterations(out: str) -> int:
    last = keras.saving.load_model(rundir.run_file(out, "last"))
    return int(keras.ops.convert_to_numpy(last.optimizer.iterations))


def test_a_run_killed_mid_epoch_resumes_with_the_same_number_of_steps(tmp_path, monkeypatch):
    data = make_npz(tmp_path / "toy.npz", n=160)  # about 120 training images: 7 steps of 16 per epoch
    cfg = dict(TINY, data=data, epochs=2, backup_steps=2)
    per_epoch = kzoo.data.load(data, "train", val_split=0.25, image_size=(16, 16), batch_size=16).steps_per_epoch
    assert per_epoch >= 6  # step 5 is inside the first epoch

    standard = run_callbacks.standard
    monkeypatch.setattr(run_callbacks, "standard", lambda *a: standard(*a) + [CrashAt(4)])
    out = str(tmp_path / "killed")
    with pytest.raises(Crash):
        kzoo.train(out=out, **cfg)
    assert run_callbacks.backup_position(out) == (0, 4)  # backups after steps 2 and 4; it died after 5
    monkeypatch.setattr(run_callbacks, "standard", standard)
    kzoo.train(out=out, **cfg)
    assert _iterations(out) == 2 * per_epoch  # not + 4: the first epoch was finished, not redone
    assert [int(r["epoch"]) for r in rundir.read_history(out)] == [0, 1]
    assert run_callbacks.backup_position(out) == (2, 0)


def test_tta_in_the_final_test_and_in_kzoo_eval(toy_npz, tmp_path, capsys):
    out = str(tmp_path / "run")
    result = kzoo.train(data=toy_npz, epochs=1, out=out, tta="flip,translate", **TINY)
    tta = result.metrics["tta"]
    assert tta["modes"] == ["flip", "translate"] and 0 <= tta["top1"] <= 1 and np.isfinite(tta["loss"])
    # The averaged logits are not the plain ones (the untrained ViT is not flip-invariant).
    assert tta["loss"] != pytest.approx(result.metrics["loss"], abs=1e-6)
    capsys.readouterr()
    assert main(["eval", "--checkpoint", f"{out}/best.keras", "--data", toy_npz, "--split", "train", "--tta", "flip"]) == 0
    assert "with TTA (flip): top-1" in capsys.readouterr().out
    report = json.load(open(f"{out}/eval-best.json"))
    model = keras.saving.load_model(f"{out}/best.keras")
    x = np.load(toy_npz)["x"].astype("float32")
    from kzoo.training.tta import tta_views

    # eval's TTA loss equals the loss of the mean of the plain and mirrored logits, computed here.
    y = np.load(toy_npz)["y"]
    mean = np.mean([np.asarray(model.predict(v, verbose=0)) for v in tta_views(x, ["flip"])], axis=0)
    shifted = mean - mean.max(1, keepdims=True)
    loss = float(-np.mean((shifted - np.log(np.exp(shifted).sum(1, keepdims=True)))[np.arange(len(y)), y]))
    assert report["tta"]["loss"] == pytest.approx(loss, rel=1e-3)
    code = main(["eval", "--checkpoint", f"{out}/best.keras", "--data", toy_npz, "--split", "train", "--tta", "spin"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--tta 'spin' is not supported" in err[0]


def test_recipes_expand_and_flags_override(tmp_path):
    assert {"vit_keras_example", "cnn_vs_vit_sgd", "vit_cifar_budget"} <= set(list_recipes())
    cfg = expand_recipe("vit_keras_example", {"epochs": 3})
    assert (cfg["model"], cfg["batch_size"], cfg["weight_decay"], cfg["epochs"]) == ("vit_keras_example", 256, 1e-4, 3)
    assert expand_recipe("cnn_vs_vit_sgd", {"epochs": 8})["milestones"] == [4]
    assert expand_recipe("cnn_vs_vit_sgd", {"epochs": 8, "milestones": [2]})["milestones"] == [2]
    with pytest.raises(KzooError, match="unknown recipe 'vit_keras_exampel': did you mean vit_keras_example"):
        expand_recipe("vit_keras_exampel", {})


def test_cli_passes_only_the_flags_given_so_a_recipe_keeps_its_own(capsys):
    # The real `kzoo train --recipe` runs are tests/training/test_recipe_smoke.py.
    args = build_parser().parse_args(["train", "--recipe", "vit_keras_example", "--epochs", "3"])
    given = {k: v for k, v in vars(args).items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
    assert given == {"recipe": "vit_keras_example", "epochs": 3}
    assert main(["recipes"]) == 0
    listing = capsys.readouterr().out
    assert "vit_keras_example" in listing and "--batch-size 256" in listing and "--milestones" in listing
