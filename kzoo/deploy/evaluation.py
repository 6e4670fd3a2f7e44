"""`kzoo eval --model-file`: accuracy of an exported file, with the data pipeline `kzoo eval` uses."""

from __future__ import annotations

import os
from typing import Any

from kzoo.deploy.exporting import read_report
from kzoo.deploy.runtimes import load_exported


def evaluate_exported(model_file: str, data: str | None = None, split: str = "test", out: str | None = None,
                      batch_size: int = 256, data_dir: str | None = None, tta: str | None = None,
                      map_classes_by_position: bool = False, threads: int | None = None,
                      classes: str | list | None = None) -> dict[str, Any]:
    """Evaluate an exported .onnx/.tflite file or SavedModel folder like `kzoo.evaluate` a checkpoint.

    The file is run by its runtime; the image preprocessing (resize, crop) and the class names come
    from export.json beside it (written by `kzoo.export`), else the model's input size and
    class_names.json. Writes eval-NAME_FORMAT.json and confusion-NAME_FORMAT.png beside the file.

    Example:
        >>> evaluate_exported("runs/r18/best.onnx", "cifar10-jpg.tar.gz")["top1"]  # doctest: +SKIP
        0.9312
    """
    from kzoo.training.api import evaluate_predictor
    from kzoo.weights.preprocessing import Preprocessing

    model = load_exported(model_file, threads)
    meta = read_report(model_file) or {}
    pre = meta.get("preprocessing")
    preprocessing = Preprocessing(**{k: tuple(v) if isinstance(v, list) else v for k, v in pre.items()}) if pre \
        else None
    stem = os.path.basename(os.path.abspath(model_file).rstrip("/")).replace(".", "_")
    return evaluate_predictor(model, model_file, preprocessing, data, split=split, out=out,
                              batch_size=batch_size, data_dir=data_dir, tta=tta,
                              map_classes_by_position=map_classes_by_position, classes=classes,
                              class_names=meta.get("class_names"), stem=stem, extra={"format": model.format})
