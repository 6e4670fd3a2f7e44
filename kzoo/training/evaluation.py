"""Classification metrics from logits: top-1, top-5, per-class accuracy, confusion matrix."""

from __future__ import annotations

import logging
from typing import Iterable, Sequence

import keras
import numpy as np

from kzoo.errors import KzooError

log = logging.getLogger("kzoo.evaluate")


def first_output(outputs):
    """The logits of a model's outputs: kzoo classifiers put them first (a CAM model returns
    `[logits, heatmap]`); a single output is returned as it is."""
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def num_classes(model: keras.Model) -> int:
    """The width of the model's logits (its first output); an exported model says its own."""
    if not hasattr(model, "outputs"):  # kzoo.deploy.ExportedModel
        return int(model.num_classes)
    return int(model.outputs[0].shape[-1])


def predict_batch(model: keras.Model, images: np.ndarray, tta: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """float32 logits of one numpy batch, and with `tta` modes their weighted average over the
    views (kzoo.training.tta); without, the same logits twice.

    Example:
        >>> plain, averaged = predict_batch(model, images, ["flip"])  # doctest: +SKIP
    """
    from kzoo.training.tta import tta_views, tta_weights

    views = tta_views(images, tta) if tta else [images]
    outputs = [np.asarray(first_output(model.predict_on_batch(v)), dtype=np.float32) for v in views]
    if not tta:
        return outputs[0], outputs[0]
    return outputs[0], np.average(outputs, axis=0, weights=tta_weights(tta))


def predict_logits(model: keras.Model, batches: Iterable, tta: Sequence[str] = (),
                   progress: bool = False) -> tuple[np.ndarray, ...]:
    """Run `model` over `(images, labels)` batches; labels may be integer or one-hot.

    Returns float32 logits (N, C) (a model's first output if it has several) and integer labels (N,).
    With `tta` modes (kzoo.training.tta) it returns `(logits, tta_logits, labels)`: the plain
    logits come from the same pass, so both figures cost one read of the data. `progress` shows
    Keras' progress bar over the batches (a full test pass takes a minute or more on a CPU).

    Example:
        >>> logits, labels = predict_logits(model, [(images, one_hot)])  # doctest: +SKIP
    """
    plain, augmented, labels = [], [], []
    bar = keras.utils.Progbar(_batch_count(batches), unit_name="batch") if progress else None
    for images, y in batches:
        # numpy in: a tf.data batch is a TensorFlow tensor, which the JAX backend cannot take.
        logits, averaged = predict_batch(model, np.asarray(images), tta)
        plain.append(logits)
        augmented.append(averaged)
        y = np.asarray(y)
        labels.append(y.argmax(-1) if y.ndim == 2 else y.astype(np.int64))
        if bar is not None:
            bar.add(1)
    if not plain:
        raise KzooError("evaluation data is empty: no images to evaluate")
    if tta:
        return np.concatenate(plain), np.concatenate(augmented), np.concatenate(labels)
    return np.concatenate(plain), np.concatenate(labels)


def _batch_count(batches) -> int | None:
    # A tf.data pipeline knows its length unless it was filtered; a list knows it; else no target.
    try:
        count = int(batches.cardinality()) if hasattr(batches, "cardinality") else len(batches)
    except TypeError:
        return None
    return count if count >= 0 else None


def classification_report(logits: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict:
    """Top-1/top-5 accuracy, mean cross-entropy, per-class accuracy and the confusion matrix.

    Example:
        >>> r = classification_report(np.eye(3), np.array([0, 1, 1]), ["a", "b", "c"])
        >>> round(r["top1"], 3), r["confusion"][1]
        (0.667, [0, 1, 0])
    """
    n, c = logits.shape
    if c != len(class_names):
        raise KzooError(f"the model predicts {c} classes but the data has {len(class_names)}; "
                        "evaluate on data with the classes the model was trained on")
    order = np.argsort(-logits, axis=1)
    top1 = float(np.mean(order[:, 0] == labels))
    top5 = float(np.mean(np.any(order[:, :5] == labels[:, None], axis=1)))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-np.mean(log_probs[np.arange(n), labels]))
    confusion = np.zeros((c, c), dtype=np.int64)
    np.add.at(confusion, (labels, order[:, 0]), 1)
    support = confusion.sum(axis=1)
    per_class = {
        name: (float(confusion[i, i] / support[i]) if support[i] else None)
        for i, name in enumerate(class_names)
    }
    return {
        # Top-5 of five classes or fewer is 100% by construction: None says "not meaningful".
        "top1": top1, "top5": top5 if c > 5 else None, "loss": loss, "num_images": int(n),
        "per_class_accuracy": per_class, "confusion": confusion.tolist(),
    }


def check_class_names(checkpoint: str, class_names: Sequence[str], source: str, by_position: bool = False,
                      trained: Sequence[str] | None = None) -> None:
    """Refuse, in one line naming both lists, data whose class names differ from those the
    checkpoint was trained on (its class_names.json, else `trained`), unless `by_position` pairs
    them on purpose.

    Example:
        >>> check_class_names("runs/r18/best.keras", ["cat", "dog"], "photos/")  # doctest: +SKIP
    """
    from kzoo.explain.commands import read_class_names

    trained = read_class_names(checkpoint, fallback=False) or trained
    if trained is None:
        log.warning("no class_names.json beside %s: the data's classes are assumed to be the model's, in order",
                    checkpoint)
    elif list(trained) != list(class_names):
        if not by_position:
            first = next((i for i, (a, b) in enumerate(zip(trained, class_names)) if a != b), len(trained))
            differ = (f" (class {first}: {trained[first]!r} vs {class_names[first]!r})"
                      if first < min(len(trained), len(class_names)) else "")
            raise KzooError(f"{checkpoint} was trained on classes {_names(trained)} but {source} has "
                            f"{_names(class_names)}{differ}; evaluate on the model's classes, or pass "
                            "--map-classes-by-position to pair them by position on purpose")
        log.warning("class names differ from the checkpoint's; pairing them by position as asked")


def _names(names, shown: int = 6) -> str:
    listed = ", ".join(names[:shown]) + (f", ... ({len(names)} in all)" if len(names) > shown else "")
    return f"[{listed}]"
