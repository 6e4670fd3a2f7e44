"""`kzoo.export`: write a model as a SavedModel, ONNX or LiteRT file and prove it answers as the model does.

Every export is run by its own runtime (TensorFlow, ONNX Runtime, the LiteRT interpreter) on 16
images (the run's own test data when it can be read, else a fixed random batch) before it is
moved to its path: max |logit difference| within the tolerance and the same top-1, or the
export fails and nothing is left at the path. The figures go to `export.json` beside the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from typing import Any

import keras
import numpy as np

from kzoo.deploy.runtimes import EXTRA, load_exported, require
from kzoo.errors import KzooError

log = logging.getLogger("kzoo.export")

FORMATS = ("saved_model", "onnx", "litert")
SUFFIX = {"saved_model": "_saved_model", "onnx": ".onnx", "litert": ".tflite"}
# max |logit difference| allowed on the verification batch (times max(1, max |logit|): `compare`), in
# float32. Measured maxima on every family's tiny model: 1.5e-5 (docs/export.md).
TOLERANCE = {"saved_model": 1e-4, "onnx": 1e-4, "litert": 1e-4}
VERIFY_IMAGES = 16
REPORT = "export.json"


def export(model: keras.Model | str, path: str | None = None, format: str = "onnx", *,
           batch: int | None = None, probabilities: bool = False, overwrite: bool = False,
           images: np.ndarray | None = None, tolerance: float | None = None) -> dict[str, Any]:
    """Export `model` (or a `.keras` checkpoint) to `path` and verify the file; returns the report.

    The exported graph takes what the kzoo model takes (float pixels in [0, 255], (N, H, W, C);
    normalisation inside) and returns float32 logits of the first output (`probabilities=True`:
    softmax). A mixed-precision model is exported in float32. `batch=None` leaves the batch
    dimension dynamic; an int fixes it. `images` replaces the verification batch.

    Example:
        >>> report = kzoo.export("runs/r18/best.keras", format="onnx")  # doctest: +SKIP
        >>> report["path"], report["max_abs_diff"] <= report["tolerance"]  # doctest: +SKIP
        ('runs/r18/best.onnx', True)
    """
    if format not in FORMATS:
        raise KzooError(f"export: unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise KzooError(f"export: batch must be a positive integer or None (dynamic), got {batch!r}")
    checkpoint = model if isinstance(model, (str, os.PathLike)) else None
    if checkpoint is None and path is None:
        raise KzooError("export: pass the output path (only a checkpoint has a default one beside it)")
    path = os.fspath(path) if path is not None else default_path(os.fspath(checkpoint), format)
    _check_path(path, format, overwrite)
    _check_packages(format)
    if checkpoint is not None:
        from kzoo.training.api import load_checkpoint

        checkpoint = os.fspath(checkpoint)
        model = load_checkpoint(checkpoint)
    graph, converted = deployable(model, probabilities)
    x, verified_on = _verification_images(images, checkpoint, graph)
    expected = np.asarray(graph.predict_on_batch(x), np.float32)
    tol = TOLERANCE[format] if tolerance is None else float(tolerance)

    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".kzoo-export-", dir=parent)  # same filesystem: the final move is a rename
    try:
        staged = os.path.join(scratch, os.path.basename(path))
        start = time.perf_counter()
        _write(graph, staged, format, batch, scratch)
        seconds = time.perf_counter() - start
        got = load_exported(staged).predict_on_batch(x)
        check = compare(expected, got, tol)
        if not check["passed"]:
            raise KzooError(f"the exported {format} file differs from the model: max |logit difference| "
                            f"{check['max_abs_diff']:.3g} (allowed {check['allowed_diff']:.3g}: tolerance {tol:g} x "
                            f"logit scale {check['logit_scale']:.3g}), top-1 agrees on {check['top1_agree']}/"
                            f"{len(x)} images; nothing was written to {path}")
        _replace(staged, path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {
        "path": path, "format": format, "checkpoint": checkpoint, "backend": keras.backend.backend(),
        "keras": keras.__version__, "input_shape": [batch, *graph.input_shape[1:]],
        "output": "probabilities" if probabilities else "logits", "converted_to_float32": converted,
        "verified_on": verified_on, "verified_images": len(x), **check, "export_seconds": round(seconds, 2),
        "size_bytes": _size(path), "peak_rss_mb": _peak_rss_mb(),
        **_metadata(model, checkpoint),
    }
    _write_report(report)
    return report


def default_path(checkpoint: str, fmt: str) -> str:
    """RUN/best.keras -> RUN/best.onnx, RUN/best.tflite or RUN/best_saved_model/."""
    return os.path.splitext(checkpoint)[0] + SUFFIX[fmt]


def deployable(model: keras.Model, probabilities: bool = False) -> tuple[keras.Model, bool]:
    """(the model to export, whether it was converted to float32): float32 weights and compute,
    one input, the first output (logits), softmax on top with `probabilities`."""
    model, converted = float32_copy(model)
    if len(model.outputs) == 1 and not probabilities:
        return model, converted
    inputs = keras.Input(shape=model.input_shape[1:], dtype="float32", name="images")
    outputs = model(inputs)
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    logits = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    if probabilities:
        logits = keras.layers.Softmax(dtype="float32", name="probabilities")(logits)
    return keras.Model(inputs, logits, name=f"{model.name}_export"), converted


def float32_copy(model: keras.Model) -> tuple[keras.Model, bool]:
    """`model` rebuilt with every layer's dtype policy set to float32 (same weights), or `model`
    itself with False when it already is float32 throughout."""
    config, changed = _float32_policies(keras.saving.serialize_keras_object(model))
    if not changed:
        return model, False
    copy = keras.saving.deserialize_keras_object(config, safe_mode=True)
    copy.set_weights([np.asarray(w, np.float32) if np.issubdtype(np.asarray(w).dtype, np.floating) else w
                      for w in model.get_weights()])
    return copy, True


def _float32_policies(config: Any) -> tuple[Any, int]:
    # Serialised layers carry their dtype policy as {"class_name": "DTypePolicy", "config": {"name": ...}}.
    if isinstance(config, dict):
        if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(config.get("config"), dict):
            name = config["config"].get("name")
            if name != "float32":
                return {**config, "config": {**config["config"], "name": "float32"}}, 1
        changed, out = 0, {}
        for key, value in config.items():
            out[key], n = _float32_policies(value)
            changed += n
        return out, changed
    if isinstance(config, list):
        items = [_float32_policies(v) for v in config]
        return [v for v, _ in items], sum(n for _, n in items)
    return config, 0


def compare(expected: np.ndarray, got: np.ndarray, tolerance: float) -> dict[str, Any]:
    """Max |difference| and top-1 agreement of two (N, classes) outputs.

    The allowed difference is `tolerance * max(1, max |expected|)`: absolute for logits up to 1,
    relative above (float32 rounding grows with the values: a random-init ResNet-50's logits reach
    2.5e4 and differ by 1e-2 between runtimes). A top-1 flip only fails the check where the
    model's own top-2 margin exceeds the allowed difference: a near-tie can fall either way by
    rounding alone.

    Example:
        >>> compare(np.array([[2.0, 1.0]]), np.array([[2.0, 1.00001]]), 1e-4)["passed"]
        True
    """
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    allowed = tolerance * scale
    if expected.shape != got.shape:
        return {"passed": False, "max_abs_diff": float("inf"), "top1_agree": 0, "tolerance": tolerance,
                "logit_scale": scale, "allowed_diff": allowed}
    diff = float(np.max(np.abs(expected - got)))
    same = expected.argmax(-1) == got.argmax(-1)
    top2 = np.sort(expected, axis=-1)[:, -2:] if expected.shape[-1] > 1 else np.zeros((len(expected), 2))
    flips = int(np.sum(~same & (top2[:, 1] - top2[:, 0] > allowed)))
    return {"passed": bool(diff <= allowed and flips == 0), "max_abs_diff": diff, "top1_agree": int(same.sum()),
            "tolerance": tolerance, "logit_scale": scale, "allowed_diff": allowed}


def _check_path(path: str, fmt: str, overwrite: bool) -> None:
    suffix = os.path.splitext(path.rstrip("/"))[1].lower()
    if fmt == "onnx" and suffix != ".onnx" or fmt == "litert" and suffix not in (".tflite", ".litert"):
        raise KzooError(f"export: {path} does not end in {SUFFIX[fmt]}, the {fmt} file extension; "
                        f"name the output like model{SUFFIX[fmt]}")
    if fmt == "saved_model" and suffix in (".onnx", ".tflite", ".keras", ".h5"):
        raise KzooError(f"export: a SavedModel is a folder, but {path} ends in {suffix}; name it like "
                        "model_saved_model")
    if os.path.lexists(path) and not overwrite:
        raise KzooError(f"export: {path} already exists; pass --overwrite (overwrite=True) to replace it, "
                        "or choose another --out")
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise KzooError(f"export: cannot write {path}: {parent} is a file, not a folder")


def _check_packages(fmt: str) -> None:
    """Fail before any work when the format's exporter or runtime is missing."""
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "jax"):
        raise KzooError(f"export: Keras' {backend} backend is not supported; run with KERAS_BACKEND=tensorflow")
    if fmt != "onnx" or backend == "tensorflow":
        require("tensorflow", f"{fmt} export", "pip install tensorflow")
    if fmt == "onnx":
        if backend == "tensorflow":
            require("tf2onnx", "ONNX export")
        else:
            require("jax2onnx", "ONNX export under Keras' JAX backend",
                    "pip install jax2onnx, or export with KERAS_BACKEND=tensorflow")
        require("onnxruntime", "checking an ONNX export")
    if fmt == "litert":
        require("ai_edge_litert", "checking a LiteRT export")


def _write(model: keras.Model, path: str, fmt: str, batch: int | None, scratch: str) -> None:
    spec = [keras.InputSpec(shape=(batch, *model.input_shape[1:]), dtype="float32")]
    backend = keras.backend.backend()
    if fmt == "onnx" and backend == "tensorflow":
        from kzoo.deploy import onnx_graph, onnx_ops

        onnx_ops.register()
    try:
        with _quiet():
            if fmt == "litert" and backend != "tensorflow":
                _litert_via_saved_model(model, path, spec, scratch)
            else:
                model.export(path, format="tf_saved_model" if fmt == "saved_model" else fmt, verbose=False,
                             input_signature=spec)
    except Exception as err:  # a converter failure on this model: one line naming model, format, backend
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        hint = "; try KERAS_BACKEND=tensorflow (docs/export.md lists what converts from JAX)" if backend != "tensorflow" \
            else ""
        raise KzooError(f"export: Keras could not export {model.name} to {fmt} under {backend}: "
                        f"{text[:300]}{hint}") from err
    if fmt == "onnx" and backend == "tensorflow":
        onnx_graph.optimize(path)  # fuse what tf2onnx leaves decomposed (kzoo/deploy/onnx_graph.py)


def _litert_via_saved_model(model: keras.Model, path: str, spec, scratch: str) -> None:
    # Keras' LiteRT export needs the TensorFlow (or torch) backend; from JAX the SavedModel
    # (jax2tf) goes through the same TFLiteConverter.from_saved_model Keras itself uses.
    import tensorflow as tf

    saved = os.path.join(scratch, "saved_model_for_litert")
    model.export(saved, format="tf_saved_model", verbose=False, input_signature=spec)
    converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    with open(path, "wb") as f:
        f.write(converter.convert())
    shutil.rmtree(saved, ignore_errors=True)


@contextlib.contextmanager
def _quiet():
    # tf2onnx and the TFLite converter log every pass at INFO and warn about numpy aliases.
    loggers = [logging.getLogger(name) for name in ("tf2onnx", "absl", "tensorflow")]
    levels = [lg.level for lg in loggers]
    if not log.isEnabledFor(logging.DEBUG):  # --verbose keeps them
        for lg in loggers:
            lg.setLevel(max(lg.level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=(DeprecationWarning, FutureWarning, UserWarning))
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _verification_images(images, checkpoint: str | None, model: keras.Model) -> tuple[np.ndarray, str]:
    shape = tuple(model.input_shape[1:])
    if images is not None:
        x = np.asarray(images, np.float32)
        if x.ndim != 4 or x.shape[1:] != shape:
            raise KzooError(f"export: verification images must be (N, {', '.join(map(str, shape))}), got {x.shape}")
        return x, "given images"
    if checkpoint is not None:
        try:
            return _run_test_images(checkpoint, model), "the run's test data"
        except KzooError as err:
            log.info("verifying on a fixed random batch: the run's test data is unavailable (%s)", err)
        except ImportError:
            log.info("verifying on a fixed random batch: reading the run's data needs TensorFlow")
    x = np.random.default_rng(0).uniform(0, 255, (VERIFY_IMAGES, *shape)).astype(np.float32)
    return x, "a fixed random batch (seed 0)"


def _run_test_images(checkpoint: str, model: keras.Model) -> np.ndarray:
    from kzoo import data as kdata
    from kzoo.weights.preprocessing import get_preprocessing

    config_file = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "config.json")
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        raise KzooError(f"no readable {config_file}") from None
    bundle = kdata.load(config.get("data"), "test", image_size=tuple(model.input_shape[1:3]),
                        batch_size=VERIFY_IMAGES, data_dir=config.get("data_dir"), limit=VERIFY_IMAGES,
                        preprocessing=get_preprocessing(model))
    images, _ = next(iter(bundle.dataset))
    return np.asarray(images, np.float32)


def _replace(staged: str, path: str) -> None:
    # With --overwrite the old export is moved aside first and removed only once the new one is in place.
    old = None
    if os.path.lexists(path):
        old = f"{path}.old-{os.getpid()}"
        os.replace(path, old)
    os.replace(staged, path)
    if old is not None:
        shutil.rmtree(old) if os.path.isdir(old) else os.remove(old)


def _metadata(model: keras.Model, checkpoint: str | None) -> dict[str, Any]:
    """What `kzoo eval --model-file` needs besides the file: class names and the image preprocessing."""
    from kzoo.explain.commands import read_class_names
    from kzoo.weights.preprocessing import get_preprocessing

    pre = get_preprocessing(model)
    return {"class_names": read_class_names(checkpoint, fallback=False) if checkpoint else None,
            "preprocessing": pre.to_dict() if pre is not None else None}


def _write_report(report: dict[str, Any]) -> None:
    """Merge the report into export.json beside the file, keyed by the file's name."""
    target = _report_path(report["path"])
    entries: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        with open(target, encoding="utf-8") as f:
            loaded = json.load(f)
        entries = loaded if isinstance(loaded, dict) else {}
    entries[_entry_name(report["path"])] = report
    tmp = f"{target}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=2)
    os.replace(tmp, target)


def read_report(path: str) -> dict[str, Any] | None:
    """The export.json entry of an exported file, or None."""
    try:
        with open(_report_path(path), encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError):
        return None
    entry = entries.get(_entry_name(path)) if isinstance(entries, dict) else None
    return entry if isinstance(entry, dict) else None


def _report_path(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), REPORT)


def _entry_name(path: str) -> str:
    return os.path.basename(os.path.abspath(path).rstrip("/"))


def _size(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


__all__ = ["export", "deployable", "float32_copy", "compare", "default_path", "read_report", "FORMATS", "EXTRA"]
