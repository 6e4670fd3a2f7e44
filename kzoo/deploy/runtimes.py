"""Run an exported file (ONNX, LiteRT, SavedModel) with its own runtime, like a Keras model.

`load_exported(path)` returns an `ExportedModel` whose `predict_on_batch` takes float pixels
(N, H, W, C) and returns the exported output, so the evaluation code written for Keras models
(`kzoo.training.evaluation.predict_logits`) evaluates exported files unchanged. A file exported
with a fixed batch size is fed in chunks of that size, the last one padded.
"""

from __future__ import annotations

import importlib
import os
from typing import Callable

import numpy as np

from kzoo.errors import KzooError

EXTRA = "pip install 'kzoo[export]'"


def require(module: str, purpose: str, install: str = EXTRA):
    """Import an optional package or fail in one line saying what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise KzooError(f"{purpose} needs the {module.split('.')[0]} package, which is not installed; "
                        f"{install}") from None


def format_of(path: str) -> str:
    """'onnx', 'litert' or 'saved_model', from the path (a .onnx/.tflite file or a SavedModel folder)."""
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return "saved_model"
        raise KzooError(f"{path} is a folder without saved_model.pb; expected a SavedModel folder, "
                        "a .onnx or a .tflite file")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".onnx":
        return "onnx"
    if ext in (".tflite", ".litert"):
        return "litert"
    raise KzooError(f"{path}: unknown exported format {ext or '(no extension)'!r}; expected a .onnx or "
                    ".tflite file or a SavedModel folder")


class ExportedModel:
    """An exported classifier run by its runtime; `predict_on_batch(images) -> (N, classes)` float32.

    Example:
        >>> model = load_exported("runs/r18/best.onnx")  # doctest: +SKIP
        >>> model.predict_on_batch(images).shape  # doctest: +SKIP
        (16, 10)
    """

    def __init__(self, path: str, fmt: str, input_shape: tuple, run: Callable[[np.ndarray], np.ndarray]):
        self.path, self.format = path, fmt
        self.input_shape = tuple(input_shape)  # (batch or None, H, W, C), as Keras' model.input_shape
        self._run = run
        self._classes: int | None = None

    @property
    def batch_size(self) -> int | None:
        return self.input_shape[0]

    @property
    def num_classes(self) -> int:
        """Width of the output, from one run on a black image (runtimes do not all report it)."""
        if self._classes is None:
            self._classes = int(self.predict_on_batch(np.zeros((1, *self.input_shape[1:]), np.float32)).shape[-1])
        return self._classes

    def predict_on_batch(self, images) -> np.ndarray:
        x = np.ascontiguousarray(images, dtype=np.float32)
        if x.ndim != 4 or tuple(x.shape[1:]) != tuple(self.input_shape[1:]):
            raise KzooError(f"{self.path} takes images of shape (N, {', '.join(map(str, self.input_shape[1:]))}), "
                            f"got {tuple(x.shape)}")
        fixed = self.batch_size
        if not fixed or fixed == len(x):
            return np.asarray(self._run(x), np.float32)
        outputs = []
        for start in range(0, len(x), fixed):
            chunk = x[start:start + fixed]
            pad = fixed - len(chunk)
            if pad:  # a fixed-batch graph takes exactly `fixed` images: repeat the last, drop its rows
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            outputs.append(np.asarray(self._run(chunk), np.float32)[:fixed - pad])
        return np.concatenate(outputs)


def load_exported(path: str, threads: int | None = None) -> ExportedModel:
    """Open an exported file with its runtime: ONNX Runtime, the LiteRT interpreter or TensorFlow.

    `threads` caps the runtime's intra-op threads (default: the runtime's own choice).
    """
    if not os.path.exists(path):
        raise KzooError(f"exported model not found: {path}")
    fmt = format_of(path)
    return {"onnx": _onnx, "litert": _litert, "saved_model": _saved_model}[fmt](path, threads)


def _onnx(path: str, threads: int | None) -> ExportedModel:
    ort = require("onnxruntime", "running an ONNX file")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    except Exception as err:  # a corrupt or foreign file: one line
        raise KzooError(f"ONNX Runtime cannot open {path}: {_first_line(err)}") from None
    (inp,) = session.get_inputs()
    shape = tuple(d if isinstance(d, int) else None for d in inp.shape)
    output = session.get_outputs()[0].name
    return ExportedModel(path, "onnx", shape, lambda x: session.run([output], {inp.name: x})[0])


def _litert(path: str, threads: int | None) -> ExportedModel:
    interpreter_module = require("ai_edge_litert.interpreter", "running a LiteRT file")
    try:
        interpreter = interpreter_module.Interpreter(model_path=path, num_threads=threads)
    except Exception as err:
        raise KzooError(f"the LiteRT interpreter cannot open {path}: {_first_line(err)}") from None
    inp = interpreter.get_input_details()[0]
    signature = inp.get("shape_signature", inp["shape"])
    shape = tuple(None if d < 0 else int(d) for d in signature)
    state = {"batch": None}

    def run(x: np.ndarray) -> np.ndarray:
        if state["batch"] != len(x):  # a dynamic-batch file is resized to each new batch size
            if shape[0] is None:
                interpreter.resize_tensor_input(inp["index"], list(x.shape))
            interpreter.allocate_tensors()
            state["batch"] = len(x)
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()

    return ExportedModel(path, "litert", shape, run)


def _saved_model(path: str, threads: int | None) -> ExportedModel:
    tf = require("tensorflow", "running a SavedModel", "pip install tensorflow")
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
    try:
        loaded = tf.saved_model.load(path)
    except Exception as err:
        raise KzooError(f"TensorFlow cannot load the SavedModel {path}: {_first_line(err)}") from None
    serve = loaded.signatures.get("serving_default")
    if serve is None:
        raise KzooError(f"{path} has no serving_default signature; export it with kzoo export")
    (spec,) = serve.structured_input_signature[1].values()
    (key,) = serve.structured_input_signature[1].keys()
    shape = tuple(spec.shape.as_list())

    def run(x: np.ndarray) -> np.ndarray:
        outputs = serve(**{key: tf.constant(x)})
        return next(iter(outputs.values())).numpy()

    return ExportedModel(path, "saved_model", shape, run)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
