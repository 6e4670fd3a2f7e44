"""kzoo.export, `kzoo export` and `kzoo eval --model-file` (TensorFlow pass; JAX: test_export_jax.py)."""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import pytest
from tiny_models import FAMILY_EXAMPLES, tiny_model

import kzoo
from kzoo.cli import main
from kzoo.deploy import exporting, load_exported
from kzoo.deploy.exporting import FORMATS, SUFFIX, compare
from kzoo.training.evaluation import first_output

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the TensorFlow pass")


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(first_output(model.predict_on_batch(x)), np.float32)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("family", sorted(FAMILY_EXAMPLES))
def test_every_family_exports_and_answers_like_the_model(family, fmt, tmp_path):
    model = tiny_model(family)
    path = str(tmp_path / f"model{SUFFIX[fmt]}")
    report = kzoo.export(model, path, fmt)
    assert report["passed"] and report["max_abs_diff"] <= 1e-4 and report["top1_agree"] == 16
    # Independently of the built-in check: other images, a batch size the check did not use.
    x = images(5, seed=1)
    exported = load_exported(path)
    assert exported.input_shape == (None, 32, 32, 3) and exported.num_classes == 3
    np.testing.assert_allclose(exported.predict_on_batch(x), logits(model, x), atol=1e-4)
    entry = json.load(open(tmp_path / "export.json"))[os.path.basename(path)]
    assert entry["format"] == fmt and entry["input_shape"] == [None, 32, 32, 3] and entry["output"] == "logits"


def test_fixed_batch_and_probabilities(tmp_path):
    import onnxruntime as ort

    model = tiny_model("resnet")
    path = str(tmp_path / "b4.onnx")
    kzoo.export(model, path, "onnx", batch=4, probabilities=True)
    assert ort.InferenceSession(path).get_inputs()[0].shape == [4, 32, 32, 3]
    x = images(6, seed=2)  # two chunks of 4, the second padded
    got = load_exported(path).predict_on_batch(x)
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(keras.ops.softmax(logits(model, x))), atol=1e-5)
    np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)


def test_mixed_precision_model_exports_in_float32(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = tiny_model("vit")
    keras.mixed_precision.set_global_policy("float32")
    path = str(tmp_path / "vit.tflite")
    report = kzoo.export(model, path, "litert")
    assert report["converted_to_float32"]
    reference, converted = exporting.float32_copy(model)
    assert converted and all(layer.compute_dtype == "float32" for layer in reference._flatten_layers())
    x = images(4, seed=3)
    got = load_exported(path).predict_on_batch(x)
    np.testing.assert_allclose(got, logits(reference, x), atol=1e-4)
    # ... and it is the same network: the bfloat16 model agrees to bfloat16's precision.
    np.testing.assert_allclose(got, logits(model, x), atol=0.1)
    assert exporting.float32_copy(reference)[1] is False


def test_compare_forgives_near_ties_only():
    ref = np.array([[1.0, 1.00001, 0.0], [3.0, 0.0, 0.0]], np.float32)
    near = ref.copy()
    near[0] = [1.00001, 1.0, 0.0]
    assert compare(ref, near, 1e-4)["passed"]  # a tie within the tolerance may flip
    flipped = ref.copy()
    flipped[1] = [0.0, 3.0, 0.0]
    result = compare(ref, flipped, 1e-4)
    assert not result["passed"] and result["top1_agree"] == 1 and result["max_abs_diff"] == 3.0
    # Absolute up to logits of 1, relative above: float32 rounding grows with the values.
    small = np.array([[0.5, -0.5]], np.float32)
    assert not compare(small, small + 2e-4, 1e-4)["passed"]
    assert compare(small * 3e4, small * 3e4 + 1.0, 1e-4)["passed"]
    assert not compare(small * 3e4, small * 3e4 + 2.0, 1e-4)["passed"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory on the bundled CIFAR-10 sample: config.json, class_names.json, best.keras."""
    from kzoo.data import load

    run = tmp_path_factory.mktemp("run")
    bundle = load(None, "test", image_size=(32, 32), batch_size=256)
    keras.utils.set_random_seed(0)
    model = kzoo.create_model("resnet18_cifar", num_classes=10, width=8, layers=(1, 1))
    # A head on standardised random-init features: logits vary with the image, so the two runtimes'
    # confusion matrices can differ (a plain random head predicts one class for every image).
    head = model.layers[-1]
    features = np.asarray(keras.Model(model.inputs, head.input).predict(next(iter(bundle.dataset))[0], verbose=0))
    mean, std = features.mean(0), features.std(0) + 1e-6
    w = np.random.default_rng(0).normal(0, 1, head.kernel.shape).astype("float32")
    head.kernel.assign(w / std[:, None])
    head.bias.assign(-(mean / std) @ w)
    names = bundle.class_names
    model.save(str(run / "best.keras"))
    (run / "config.json").write_text(json.dumps({"model": "resnet18_cifar", "data": None}))
    (run / "class_names.json").write_text(json.dumps(names))
    return run


def test_export_verifies_on_the_runs_test_data_and_eval_reads_the_file_like_the_checkpoint(run_dir, tmp_path, capsys):
    ckpt = str(run_dir / "best.keras")
    assert main(["export", "--checkpoint", ckpt, "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "best.onnx" in out and "the run's test data" in out and "top-1 agrees on 16" in out
    entry = json.load(open(run_dir / "export.json"))["best.onnx"]
    assert entry["verified_on"] == "the run's test data" and entry["class_names"][0] == "airplane"

    assert main(["eval", "--checkpoint", ckpt, "--out", str(tmp_path)]) == 0
    assert main(["eval", "--model-file", str(run_dir / "best.onnx"), "--out", str(tmp_path)]) == 0
    keras_report = json.load(open(tmp_path / "eval-best.json"))
    onnx_report = json.load(open(tmp_path / "eval-best_onnx.json"))
    assert onnx_report["num_images"] == keras_report["num_images"] > 100
    assert onnx_report["confusion"] == keras_report["confusion"]
    assert sum(1 for row in keras_report["confusion"] if sum(row) != max(row)) >= 5  # not one class for all
    assert abs(onnx_report["loss"] - keras_report["loss"]) < 1e-4 and onnx_report["format"] == "onnx"


def _one_line_error(capsys, *parts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kzoo "), err
    for part in parts:
        assert part in err[0], err[0]


def test_existing_output_is_refused_and_kept_unless_overwrite(run_dir, tmp_path, capsys):
    out = tmp_path / "m.tflite"
    out.write_bytes(b"keep me")
    argv = ["export", "--checkpoint", str(run_dir / "best.keras"), "--format", "litert", "--out", str(out)]
    assert main(argv) == 2
    _one_line_error(capsys, "already exists", "--overwrite")
    assert out.read_bytes() == b"keep me"
    assert main(argv + ["--overwrite"]) == 0
    assert load_exported(str(out)).num_classes == 10 and sorted(os.listdir(tmp_path)) == ["export.json", "m.tflite"]


def test_an_export_that_differs_from_the_model_fails_and_leaves_nothing(run_dir, tmp_path, capsys, monkeypatch):
    write = exporting._write
    other = tiny_model("resnet", num_classes=10, seed=1)  # same architecture, other weights

    monkeypatch.setattr(exporting, "_write", lambda model, *args: write(other, *args))
    out = tmp_path / "wrong_saved_model"
    assert main(["export", "--checkpoint", str(run_dir / "best.keras"), "--format", "saved_model",
                 "--out", str(out)]) == 2
    _one_line_error(capsys, "differs from the model", "max |logit difference|", "nothing was written")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("argv, parts", [
    (["--format", "onnx", "--out", "x.tflite"], ["does not end in .onnx"]),
    (["--format", "saved_model", "--out", "x.onnx"], ["SavedModel is a folder"]),
    (["--format", "onnx", "--batch", "0"], None),  # argparse: exit 2 with usage
    (["--format", "coreml"], None),
])
def test_bad_flags_exit_2(run_dir, tmp_path, capsys, argv, parts):
    argv = ["export", "--checkpoint", str(run_dir / "best.keras"), *argv]
    argv = [str(tmp_path / a) if a.startswith("x.") else a for a in argv]
    if parts is None:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    else:
        assert main(argv) == 2
        _one_line_error(capsys, *parts)
    assert os.listdir(tmp_path) == []


def test_unsafe_checkpoint_is_refused(tmp_path, capsys):
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(str(tmp_path / "lambda.keras"))
    assert main(["export", "--checkpoint", str(tmp_path / "lambda.keras"), "--format", "onnx"]) == 2
    _one_line_error(capsys, "cannot load", "lambda.keras")
    assert sorted(os.listdir(tmp_path)) == ["lambda.keras"]


def test_missing_optional_package_names_the_extra(run_dir, tmp_path, capsys, monkeypatch):
    import importlib

    from kzoo.deploy import runtimes

    real = importlib.import_module

    def without_tf2onnx(name, *args):
        if name == "tf2onnx":
            raise ImportError("No module named 'tf2onnx'")
        return real(name, *args)

    monkeypatch.setattr(runtimes.importlib, "import_module", without_tf2onnx)
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(run_dir / "best.keras"), "--format", "onnx", "--out", str(out)]) == 2
    _one_line_error(capsys, "tf2onnx", "pip install 'kzoo[export]'")
    assert not out.exists()


def test_eval_model_file_bad_input_is_one_line(tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(b"x")
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    assert main(["eval", "--model-file", str(tmp_path / "model.pt")]) == 2
    _one_line_error(capsys, "unknown exported format '.pt'")
    assert main(["eval", "--model-file", str(tmp_path / "broken.onnx")]) == 2
    _one_line_error(capsys, "ONNX Runtime cannot open", "broken.onnx")
    assert main(["eval", "--model-file", str(tmp_path / "missing.tflite")]) == 2
    _one_line_error(capsys, "not found")
