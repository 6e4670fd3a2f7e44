"""linear_probe (kzoo.selfsup.probe): frozen features, a fitted linear head, probe.keras, refusals."""

import hashlib
import json
import os

import keras
import numpy as np
import pytest

import kzoo
import kzoo.selfsup.probe as probe_module
from kzoo.errors import KzooError
from kzoo.selfsup import linear_probe
from kzoo.training.api import evaluate

COLOURS = np.array([(1, 0, 0), (0, 1, 0), (0, 0, 1)], "float32")


def make_npz(path, n_train=90, n_test=45, size=16, shuffle_labels=False, classes=3, seed=0):
    """Images whose class decides which colour channel is bright; ready-made train and test splits.
    `shuffle_labels`: every label permuted across its split, so labels no longer follow the images."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = rng.integers(0, classes, n)
        x = rng.uniform(0, 90, (n, size, size, 3)) + 150 * COLOURS[y % 3][:, None, None, :]
        if shuffle_labels:
            y = rng.permutation(y)
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x.astype(np.uint8), y
    np.savez(path, **arrays)
    return str(path)


def weights_of(model):
    return {w.path: np.array(w.numpy()) for w in model.weights}


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe")
    encoder = kzoo.create_model("conv_gtsrb", num_classes=0, input_shape=(16, 16, 3))
    encoder.save(root / "encoder.keras")
    return {"root": root, "encoder": str(root / "encoder.keras"), "data": make_npz(root / "colours.npz")}


@pytest.fixture(scope="module")
def probed(files):
    """One probe run, keeping the encoder it loaded (a spy on load_checkpoint) and its weights then."""
    loaded, load = {}, probe_module.load_checkpoint

    def spy(path):
        loaded["model"] = model = load(path)
        loaded["before"] = weights_of(model)
        return model

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(probe_module, "load_checkpoint", spy)
        digest_before = digest(files["encoder"])
        result = linear_probe(files["encoder"], files["data"], epochs=30)
    return {"result": result, "digest_before": digest_before, **loaded}


def test_probe_separates_the_classes_and_writes_its_files(files, probed):
    result = probed["result"]
    assert result["top1"] >= 0.9 and result["top5"] is None
    assert (result["num_images"], result["train_images"], result["feature_dim"]) == (45, 90, 256)
    assert result["features"] == "encoder" and result["evaluated_on"] == "test" and result["epochs"] == 30
    out = files["root"] / "probe-encoder"
    assert json.loads((out / "probe.json").read_text())["top1"] == result["top1"]
    assert json.loads((out / "class_names.json").read_text()) == ["0", "1", "2"]
    assert result["feature_seconds"] > 0 and result["fit_seconds"] > 0


def test_probe_keras_reproduces_the_probe_top1_under_kzoo_eval(files, probed):
    out = files["root"] / "probe-encoder"
    model = keras.saving.load_model(out / "probe.keras", safe_mode=True)
    head = model.get_layer(kzoo.transfer.HEAD_NAME)
    assert head.dtype_policy.name == "float32" and model.output_shape == (None, 3)
    report = evaluate(str(out / "probe.keras"), files["data"], out=str(files["root"] / "eval"))
    assert report["top1"] == pytest.approx(probed["result"]["top1"])
    assert report["per_class_accuracy"] == pytest.approx(probed["result"]["per_class_accuracy"])
    assert report["num_images"] == 45


def test_encoder_weights_are_unchanged(files, probed):
    # The loaded encoder, after the whole probe, holds exactly the weights it was loaded with ...
    after = weights_of(probed["model"])
    assert after.keys() == probed["before"].keys()
    for path, value in probed["before"].items():
        np.testing.assert_array_equal(after[path], value, err_msg=path)
    # ... the file is untouched, and probe.keras's encoder layers equal the file's weights (BN statistics too).
    assert digest(files["encoder"]) == probed["digest_before"]
    original = keras.saving.load_model(files["encoder"], safe_mode=True)
    probe = keras.saving.load_model(files["root"] / "probe-encoder" / "probe.keras", safe_mode=True)
    compared = 0
    for layer in original.layers:
        for mine, theirs in zip(layer.weights, probe.get_layer(layer.name).weights, strict=True):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
            compared += 1
    assert compared == len(original.weights) > 0


def test_shuffled_labels_do_not_reach_high_accuracy(files, tmp_path):
    data = make_npz(tmp_path / "shuffled.npz", n_test=90, shuffle_labels=True)
    result = linear_probe(files["encoder"], data, out=str(tmp_path / "probe"), epochs=30)
    assert result["top1"] < 0.55  # chance is 1/3 (sd 5 points over 90 images)
    # Near chance every decision is a close call: probe.keras (standardisation folded in) makes the same ones.
    report = evaluate(str(tmp_path / "probe" / "probe.keras"), data, out=str(tmp_path / "eval"))
    assert report["per_class_accuracy"] == pytest.approx(result["per_class_accuracy"])


def test_a_classifier_is_probed_on_its_pre_logit_features(files, tmp_path):
    path = str(tmp_path / "classifier.keras")
    kzoo.create_model("conv_gtsrb", num_classes=5, input_shape=(16, 16, 3)).save(path)
    result = linear_probe(path, files["data"], epochs=30, val_split=0.3)  # evaluated on 30% held out of train
    assert result["features"] == "pre-logit" and result["feature_dim"] == 256 and result["top1"] >= 0.9
    assert result["evaluated_on"] == "val" and result["num_images"] + result["train_images"] == 90
    probe = keras.saving.load_model(tmp_path / "probe-classifier" / "probe.keras", safe_mode=True)
    assert probe.output_shape == (None, 3)


def test_probe_of_a_class_subset_and_its_eval(files, tmp_path):
    result = linear_probe(files["encoder"], files["data"], out=str(tmp_path / "probe"), epochs=30, classes="2,0")
    test_labels = np.load(files["data"])["y_test"]
    assert result["num_classes"] == 2 and result["class_subset"] == "2,0" and result["top1"] >= 0.9
    assert result["num_images"] == int(np.isin(test_labels, [0, 2]).sum())
    assert json.loads((tmp_path / "probe" / "class_names.json").read_text()) == ["2", "0"]
    report = evaluate(str(tmp_path / "probe" / "probe.keras"), files["data"], out=str(tmp_path / "eval"),
                      classes="2,0")
    assert report["top1"] == pytest.approx(result["top1"])


def _saved(tmp_path, name, outputs_of):
    inputs = keras.Input((16, 16, 3))
    path = str(tmp_path / f"{name}.keras")
    keras.Model(inputs, outputs_of(inputs)).save(path)
    return path


def test_refusals_are_one_line(files, tmp_path):
    conv = _saved(tmp_path, "maps", lambda x: keras.layers.Conv2D(4, 3)(x))
    pooled = keras.layers.GlobalAveragePooling2D()
    two = _saved(tmp_path, "two", lambda x: [pooled(x), keras.layers.Conv2D(2, 3)(x)])
    one_class = str(tmp_path / "one.npz")
    np.savez(one_class, x_train=np.zeros((4, 16, 16, 3), np.uint8), y_train=np.zeros(4, int),
             x_test=np.zeros((2, 16, 16, 3), np.uint8), y_test=np.zeros(2, int))
    train_only = str(tmp_path / "train_only.npz")
    np.savez(train_only, x=np.zeros((4, 16, 16, 3), np.uint8), y=np.array([0, 1, 0, 1]))
    cases = [
        ((files["encoder"], train_only), "no test or val split .*val_split=0.1"),
        ((str(tmp_path / "missing.keras"), files["data"]), "encoder not found: .*classifier checkpoint"),
        ((conv, files["data"]), r"output of shape \(None, 14, 14, 4\) \(feature maps.*expected one \(batch, features\)"),
        ((two, files["data"]), r"2 outputs .*expected one \(batch, features\) output, an encoder.keras"),
        ((files["encoder"], one_class), "1 class .*at least two"),
    ]
    for args, message in cases:
        with pytest.raises(KzooError, match=message) as err:
            linear_probe(*args, out=str(tmp_path / "never"), epochs=1)
        assert "\n" not in str(err.value)
    assert not os.path.exists(tmp_path / "never")
    with pytest.raises(KzooError, match="epochs"):
        linear_probe(files["encoder"], files["data"], epochs=0)
