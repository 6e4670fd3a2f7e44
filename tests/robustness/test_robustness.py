"""`kzoo robustness`: the paper's figures from accuracy tables, and a checkpoint evaluated on
corrupted data exactly as corrupting and predicting by hand would."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest

from kzoo.augment.corruption_names import parse_corruptions, parse_severities
from kzoo.cli import main
from kzoo.errors import KzooError
from kzoo.robustness.metrics import corruption_errors, mean_accuracy, summary


def test_ce_mce_and_relative_mce_by_hand():
    model = {"fog": {1: 0.80, 2: 0.60}, "snow": {1: 0.70, 2: 0.50}}
    base = {"fog": {1: 0.60, 2: 0.40}, "snow": {1: 0.70, 2: 0.30}}
    # fog: errors 0.2+0.4 / 0.4+0.6 = 0.6; relative (0.2-0.1)+(0.4-0.1) / (0.4-0.2)+(0.6-0.2) = 0.4/0.6
    # snow: 0.3+0.5 / 0.3+0.7 = 0.8; relative (0.2+0.4) / (0.1+0.5) = 1.0
    ce = corruption_errors(model, 0.9, base, 0.8)
    assert ce["fog"]["ce"] == pytest.approx(0.6) and ce["fog"]["relative_ce"] == pytest.approx(0.4 / 0.6)
    assert ce["snow"]["ce"] == pytest.approx(0.8) and ce["snow"]["relative_ce"] == pytest.approx(1.0)
    s = summary(model, 0.9, base, 0.8)
    assert s["mce"] == pytest.approx(0.7) and s["relative_mce"] == pytest.approx((0.4 / 0.6 + 1.0) / 2)
    assert s["mean_corruption_accuracy"] == pytest.approx(0.65) and s["corruptions_in_mean"] == 2
    assert s["family_accuracy"] == {"weather": pytest.approx(0.65)}


def test_held_out_corruptions_stay_out_of_the_benchmark_mean():
    s = summary({"fog": {1: 0.8}, "saturate": {1: 0.2}}, 0.9)
    assert s["mean_corruption_accuracy"] == pytest.approx(0.8) and s["held_out_accuracy"] == pytest.approx(0.2)
    assert mean_accuracy({"fog": {1: 0.8}, "saturate": {1: 0.2}}) == pytest.approx(0.5)


def test_names_and_severities_are_checked_in_one_line():
    assert len(parse_corruptions("all")) == 15 and len(parse_corruptions("all+held_out")) == 19
    with pytest.raises(KzooError, match="unknown corruption 'gausian_noise'; did you mean gaussian_noise"):
        parse_corruptions("fog,gausian_noise")
    with pytest.raises(KzooError, match="severities run from 1 to 5"):
        parse_severities("0-5")
    with pytest.raises(KzooError, match="expected a range like 1-5"):
        parse_severities("high")
    assert parse_severities("5,1,3") == (1, 3, 5)


def _checkpoint(path, classes=("0", "1", "2"), seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(len(classes))(x))
    os.makedirs(path, exist_ok=True)
    model.save(os.path.join(path, "best.keras"))
    with open(os.path.join(path, "class_names.json"), "w") as f:
        json.dump(list(classes), f)
    return os.path.join(path, "best.keras"), model


@pytest.fixture
def toy(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    x = rng.integers(0, 90, (40, 16, 16, 3)).astype(np.uint8)
    x[np.arange(40), :, :, y] += 150
    np.savez(tmp_path / "toy.npz", x_test=x, y_test=y, x_train=x, y_train=y)
    return str(tmp_path / "toy.npz"), x.astype("float32"), y


def test_report_equals_corrupting_and_predicting_by_hand(tmp_path, toy):
    from kzoo.augment.corruptions import corrupt
    from kzoo.robustness import evaluate_robustness

    data, x, y = toy
    ckpt, model = _checkpoint(tmp_path / "run")
    base_ckpt, base = _checkpoint(tmp_path / "base", seed=1)
    r = evaluate_robustness(ckpt, data, corruptions="gaussian_noise,contrast", severities="1,5", baseline=base_ckpt,
                            batch_size=16, seed=3)
    # batches of 16 in order; batch b of corruption c at severity s is corrupt(x_b, c, s, seed=(3 << 32) | b)
    for name in ("gaussian_noise", "contrast"):
        for level in (1, 5):
            hits = [0, 0]
            for b, start in enumerate(range(0, 40, 16)):
                # stored as 8 bits, as CIFAR-10-C's files are (the default storage)
                xc = np.floor(np.asarray(corrupt(x[start:start + 16], name, level, seed=(3 << 32) | b)))
                for k, m in enumerate((model, base)):
                    hits[k] += int(np.sum(np.asarray(m.predict_on_batch(xc)).argmax(-1) == y[start:start + 16]))
            assert r["accuracy"][name][level] == pytest.approx(hits[0] / 40)
            assert r["baseline_accuracy"][name][level] == pytest.approx(hits[1] / 40)
    assert r["clean_accuracy"] == pytest.approx(np.mean(np.asarray(model.predict(x, verbose=0)).argmax(-1) == y))
    assert r["summary"]["mce"] == pytest.approx(np.mean([r["summary"]["corruption_errors"][n]["ce"]
                                                         for n in ("gaussian_noise", "contrast")]))
    saved = json.load(open(os.path.join(r["out"], "robustness.json")))
    assert saved["accuracy"]["contrast"]["5"] == pytest.approx(r["accuracy"]["contrast"][5])
    with open(os.path.join(r["out"], "robustness.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "| contrast | digital |" in open(os.path.join(r["out"], "robustness.md")).read()


def _lopsided(path):
    """A checkpoint that reads the left half of each image only: its mirror sees other pixels."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Cropping2D(((0, 0), (0, 8)))(keras.layers.Rescaling(1 / 255.0)(inputs))
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    os.makedirs(path, exist_ok=True)
    model.save(os.path.join(path, "best.keras"))
    with open(os.path.join(path, "class_names.json"), "w") as f:
        json.dump(["0", "1", "2"], f)
    return os.path.join(path, "best.keras"), model


def test_tta_table_averages_the_views_logits_and_leaves_the_plain_one(tmp_path, toy):
    from kzoo.augment.corruptions import corrupt
    from kzoo.robustness import evaluate_robustness

    data, x, y = toy
    ckpt, model = _lopsided(tmp_path / "run")
    base_ckpt, base = _checkpoint(tmp_path / "base", seed=1)
    r = evaluate_robustness(ckpt, data, corruptions="gaussian_noise", severities="1,5", baseline=base_ckpt,
                            batch_size=16, seed=3, tta="flip")
    plain, tta, baseline = {1: 0, 5: 0}, {1: 0, 5: 0}, {1: 0, 5: 0}
    for level in (1, 5):
        for b, start in enumerate(range(0, 40, 16)):
            xc = np.floor(np.asarray(corrupt(x[start:start + 16], "gaussian_noise", level, seed=(3 << 32) | b)))
            logits = [np.asarray(model.predict_on_batch(v)) for v in (xc, xc[:, :, ::-1])]
            plain[level] += int(np.sum(logits[0].argmax(-1) == y[start:start + 16]))
            tta[level] += int(np.sum(np.mean(logits, axis=0).argmax(-1) == y[start:start + 16]))
            baseline[level] += int(np.sum(np.asarray(base.predict_on_batch(xc)).argmax(-1) == y[start:start + 16]))
    assert plain != tta  # the mirror changes this model's answers, so the check below can tell
    for level in (1, 5):
        assert r["accuracy"]["gaussian_noise"][level] == pytest.approx(plain[level] / 40)
        assert r["baseline_accuracy"]["gaussian_noise"][level] == pytest.approx(baseline[level] / 40)  # no TTA
        assert r["tta"]["accuracy"]["gaussian_noise"][level] == pytest.approx(tta[level] / 40)
    assert r["tta"]["modes"] == ["flip"] and r["tta"]["summary"]["mean_corruption_accuracy"] == pytest.approx(
        (tta[1] + tta[5]) / 80)
    assert "With test-time augmentation (flip)" in open(os.path.join(r["out"], "robustness.md")).read()


def test_cli_bad_input_is_one_line(tmp_path, toy, capsys):
    data, _, _ = toy
    ckpt, _ = _checkpoint(tmp_path / "run")
    other, _ = _checkpoint(tmp_path / "other", classes=("a", "b", "c"))
    cases = [
        (["--corruptions", "fogg"], "unknown corruption 'fogg'; did you mean fog"),
        (["--severities", "6"], "severities run from 1 to 5"),
        (["--baseline", other], "--baseline: "),
        (["--clean-data", data], "--clean-data goes with --data tfds:cifar10_corrupted"),
        (["--tta", "rotate"], "--tta 'rotate' is not supported"),
    ]
    for extra, message in cases:
        code = main(["robustness", "--checkpoint", ckpt, "--data", data, "--corruptions", "fog", *extra])
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kzoo robustness")]
        assert code == 2 and len(err) == 1 and message in err[0], err
    code = main(["robustness", "--checkpoint", other, "--data", data])
    err = capsys.readouterr().err
    assert code == 2 and "trained on classes [a, b, c]" in err and "[0, 1, 2]" in err


def test_every_batch_gets_its_own_seed_and_both_models_the_same_images(tmp_path, toy, monkeypatch):
    import kzoo.robustness.evaluate as ev

    data, _, _ = toy
    ckpt, _ = _checkpoint(tmp_path / "run")
    calls, original = [], ev._corrupt

    def spy(x, name, level, seed):
        calls.append((name, level, seed, len(x)))
        return original(x, name, level, seed)

    monkeypatch.setattr(ev, "_corrupt", spy)
    ev.evaluate_robustness(ckpt, data, corruptions="fog", severities="2", baseline=ckpt, batch_size=16, seed=7)
    # One corruption per batch, shared by the model and the baseline; a new seed for each batch.
    assert calls == [("fog", 2, (7 << 32) | b, n) for b, n in enumerate((16, 16, 8))]


def test_storage_uint8_truncates_what_the_model_sees_and_float_does_not(tmp_path, toy, monkeypatch):
    import kzoo.robustness.evaluate as ev
    from kzoo.errors import KzooError

    data, _, _ = toy
    ckpt, _ = _checkpoint(tmp_path / "run")
    seen, original = [], ev._count

    def spy(models, correct, key, x, y, **kwargs):
        if key != "clean":
            seen.append(np.asarray(x))
        return original(models, correct, key, x, y, **kwargs)

    monkeypatch.setattr(ev, "_count", spy)
    fractional = {}
    for storage in ("uint8", "float"):
        seen.clear()
        r = ev.evaluate_robustness(ckpt, data, corruptions="gaussian_noise", severities="3", batch_size=16,
                                   storage=storage, out=str(tmp_path / storage))
        assert r["storage"] == storage
        fractional[storage] = max(float(np.abs(x - np.floor(x)).max()) for x in seen)
        assert min(float(x.min()) for x in seen) >= 0.0 and max(float(x.max()) for x in seen) <= 255.0
    assert fractional["uint8"] == 0.0 < fractional["float"]
    with pytest.raises(KzooError, match="storage must be one of uint8, float"):
        ev.evaluate_robustness(ckpt, data, corruptions="fog", storage="int16")


@pytest.fixture(scope="module")
def corrupted_tfds(tmp_path_factory):
    """A prepared stand-in of TFDS's cifar10_corrupted (two configs, same features and version as the
    real builder, which then reads it), made offline: label = pixel value % 10."""
    tfds = pytest.importorskip("tensorflow_datasets")

    class Cifar10CorruptedStandIn(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "cifar10_corrupted"
        VERSION = tfds.core.Version("1.0.0")
        BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f"{c}_{s}") for c in ("fog", "elastic") for s in (2,)]

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(32, 32, 3)),
                "label": tfds.features.ClassLabel(num_classes=10)}), supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {"test": self._generate_examples()}

        def _generate_examples(self):
            shift = 0 if self.builder_config.name.startswith("fog") else 3
            for i in range(20):  # the label is readable from the pixels: a "model" can get any share right
                yield i, {"image": np.full((32, 32, 3), (i + shift) % 10, np.uint8), "label": i % 10}

    data_dir = tmp_path_factory.mktemp("tfds")
    for config in ("fog_2", "elastic_2"):
        Cifar10CorruptedStandIn(config=config, data_dir=str(data_dir)).download_and_prepare()
    return str(data_dir)


def test_published_cifar10_c_from_tfds(tmp_path, corrupted_tfds):
    from kzoo.robustness import evaluate_robustness

    # A "model" that reads the label off the pixel value: right on fog (shift 0), wrong on elastic (shift 3).
    # logits_k = 2kv - k^2 (= v^2 - (v - k)^2) for the mean pixel value v: argmax is the nearest k.
    inputs = keras.Input((32, 32, 3))
    head = keras.layers.Dense(10)
    model = keras.Model(inputs, head(keras.layers.GlobalAveragePooling2D()(inputs)))
    k = np.arange(10, dtype="float32")
    head.set_weights([np.tile(2 * k / 3, (3, 1)), -k ** 2])
    clean = tmp_path / "clean.npz"
    np.savez(clean, x_test=np.repeat(np.arange(10, dtype=np.uint8), 32 * 32 * 3).reshape(10, 32, 32, 3),
             y_test=np.arange(10), x_train=np.zeros((2, 32, 32, 3), np.uint8), y_train=np.arange(2))
    model.save(tmp_path / "m.keras")
    r = evaluate_robustness(str(tmp_path / "m.keras"), "tfds:cifar10_corrupted", corruptions="fog,elastic_transform",
                            severities="2", clean_data=str(clean), data_dir=corrupted_tfds, batch_size=8)
    assert r["clean_accuracy"] == 1.0
    assert r["accuracy"] == {"fog": {2: 1.0}, "elastic_transform": {2: 0.0}}
