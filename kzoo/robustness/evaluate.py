"""`kzoo robustness`: a checkpoint's accuracy on every corruption x severity of a data split,
corrupted on the fly (kzoo.augment.corruptions), with the paper's summary figures."""

from __future__ import annotations

import functools
import json
import logging
import os
from typing import Any, Sequence

import numpy as np

from kzoo.augment.corruption_names import CORRUPTIONS, parse_corruptions, parse_severities
from kzoo.errors import KzooError
from kzoo.robustness.metrics import summary

log = logging.getLogger("kzoo.robustness")

TFDS_CORRUPTED = "tfds:cifar10_corrupted"
# How a corrupted image reaches the model (evaluate_robustness's `storage`).
STORAGES = ("uint8", "float")
# TFDS's config names where they differ from the paper's.
TFDS_NAMES = {"glass_blur": "frosted_glass_blur", "elastic_transform": "elastic"}


def evaluate_robustness(
    checkpoint: str,
    data: str | None = None,
    *,
    corruptions: str | Sequence[str] = "all",
    severities: str | Sequence[int] = "1-5",
    baseline: str | None = None,
    out: str | None = None,
    split: str = "test",
    batch_size: int = 250,
    limit: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    clean_data: str | None = None,
    storage: str = "uint8",
    tta: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy of `checkpoint` on `data`'s `split` under each corruption and severity.

    Every batch is read once and corrupted 5 x N ways on the fly (seeded per batch, so a rerun
    and the baseline see the same images). With `baseline` (another checkpoint on the same
    classes) the report adds CE, mCE and relative mCE. Writes robustness.json, robustness.md and
    robustness.png to `out` (default: RUN/robustness beside the checkpoint).

    `data="tfds:cifar10_corrupted"` reads the published CIFAR-10-C images from TFDS instead (one
    config per corruption and severity, e.g. `cifar10_corrupted/fog_3`), and the clean accuracy
    from `clean_data` (default `tfds:cifar10`).

    `storage="uint8"` (default) truncates every corrupted image to 8 bits before the model sees
    it, as CIFAR-10-C's files were written (`np.uint8(corruption(x))`); "float" keeps the
    corruption's float output. The difference is a fraction of a point for most models, but not
    for one that normalises contrast away: at CIFAR's contrast severity 5 (factor 0.15) the 8 bits leave
    about 40 levels per channel.

    `tta` ("flip", "translate" or both; kzoo.training.tta) adds a `report["tta"]` with the same
    table for `checkpoint`'s logits averaged over those views of each (corrupted) image, from the
    same pass; the main table stays the plain one, which the published figures use.

    Example:
        >>> r = evaluate_robustness("runs/r18/best.keras", "cifar10.tar.gz", corruptions="fog,snow",
        ...                         severities="1-5", limit=1000)  # doctest: +SKIP
        >>> r["summary"]["mean_corruption_accuracy"]  # doctest: +SKIP
    """
    from kzoo import data as kdata
    from kzoo.robustness.report import plot_robustness, write_markdown
    from kzoo.training.api import load_checkpoint
    from kzoo.training.evaluation import check_class_names
    from kzoo.training.tta import parse_tta

    names = parse_corruptions(corruptions) if isinstance(corruptions, str) else parse_corruptions(",".join(corruptions))
    if storage not in STORAGES:
        raise KzooError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    views = parse_tta(tta)
    levels = parse_severities(severities) if isinstance(severities, str) else parse_severities(
        ",".join(map(str, severities)))
    models = {"model": load_checkpoint(checkpoint)}
    size = tuple(models["model"].input_shape[1:3])
    if baseline is not None:
        models["baseline"] = load_checkpoint(baseline)
        if tuple(models["baseline"].input_shape[1:3]) != size:
            raise KzooError(f"--baseline {baseline} takes {models['baseline'].input_shape[1:3]} images but "
                            f"{checkpoint} takes {size}: compare checkpoints trained at the same image size")
    precomputed = isinstance(data, str) and data.strip() == TFDS_CORRUPTED
    if clean_data is not None and not precomputed:
        raise KzooError(f"--clean-data goes with --data {TFDS_CORRUPTED} (whose copies have no clean images); "
                        f"with --data {data} the clean images are its own {split} split")
    load = dict(image_size=size, batch_size=batch_size, limit=limit, data_dir=data_dir)
    bundle = kdata.load((clean_data or "tfds:cifar10") if precomputed else data, split, **load)
    check_class_names(checkpoint, bundle.class_names, bundle.source)
    if baseline is not None:
        try:
            check_class_names(baseline, bundle.class_names, bundle.source)
        except KzooError as err:
            raise KzooError(f"--baseline: {err}") from None
    log.info("%s: %d corruption(s) x %d severities of %d %s images (%s)", checkpoint, len(names), len(levels),
             bundle.num_examples, split, bundle.source)

    count = functools.partial(_count, models, tta=views)
    correct = {key: {"clean": 0, **{(c, s): 0 for c in names for s in levels}}
               for key in [*models, *(["tta"] if views else [])]}
    seen = {"clean": 0}
    bar = _progress(bundle)
    for index, (images, labels) in enumerate(bundle.dataset):
        x = np.asarray(images, dtype="float32")
        y = np.asarray(labels).argmax(-1)
        count(correct, "clean", x, y)
        seen["clean"] += len(y)
        for name in () if precomputed else names:
            for level in levels:
                # One seed per (run seed, batch): every model sees the same corrupted images.
                corrupted = _store(np.asarray(_corrupt(x, name, level, (seed << 32) | index)), storage)
                count(correct, (name, level), corrupted, y)
                seen[(name, level)] = seen.get((name, level), 0) + len(y)
        if bar is not None:
            bar.add(1)
    if not seen["clean"]:
        raise KzooError(f"{bundle.source} has no {split} images to evaluate")
    if precomputed:
        for name in names:
            for level in levels:
                published = kdata.load(f"{TFDS_CORRUPTED}/{TFDS_NAMES.get(name, name)}_{level}", "test", **load)
                for images, labels in published.dataset:
                    y = np.asarray(labels).argmax(-1)
                    count(correct, (name, level), np.asarray(images, dtype="float32"), y)
                    seen[(name, level)] = seen.get((name, level), 0) + len(y)

    tables = {key: {c: {s: counts[(c, s)] / seen[(c, s)] for s in levels} for c in names}
              for key, counts in correct.items()}
    clean = {key: counts["clean"] / seen["clean"] for key, counts in correct.items()}
    report = {
        "checkpoint": checkpoint, "baseline": baseline, "data": bundle.source, "split": split,
        "num_images": seen["clean"], "seed": None if precomputed else seed,
        "storage": "uint8 (published files)" if precomputed else storage, "corruptions": list(names), "severities": list(levels),
        "accuracy": tables["model"], "clean_accuracy": clean["model"],
        "summary": summary(tables["model"], clean["model"], tables.get("baseline"), clean.get("baseline")),
    }
    if baseline is not None:
        report["baseline_accuracy"] = tables["baseline"]
        report["baseline_summary"] = summary(tables["baseline"], clean["baseline"])
    if views:
        report["tta"] = {"modes": views, "accuracy": tables["tta"], "clean_accuracy": clean["tta"],
                         "summary": summary(tables["tta"], clean["tta"])}
    out = out or os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "robustness")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "robustness.json"), "w") as f:
        json.dump(report, f, indent=2)
    write_markdown(report, os.path.join(out, "robustness.md"))
    plot_robustness(report, os.path.join(out, "robustness.png"))
    report["out"] = out
    return report


def _corrupt(x: np.ndarray, name: str, level: int, seed: int):
    from kzoo.augment.corruptions import corrupt

    return corrupt(x, name, level, seed=seed)


def _store(x: np.ndarray, storage: str) -> np.ndarray:
    return np.floor(np.clip(x, 0.0, 255.0)) if storage == "uint8" else x


def _count(models: dict, correct: dict, key, x: np.ndarray, y: np.ndarray, *, tta: list[str]) -> None:
    from kzoo.training.evaluation import predict_batch

    for which, model in models.items():
        # The views are the checkpoint's alone: CE and mCE compare plain predictions.
        logits, averaged = predict_batch(model, x, tta if which == "model" else ())
        correct[which][key] += int(np.sum(logits.argmax(-1) == y))
        if tta and which == "model":
            correct["tta"][key] += int(np.sum(averaged.argmax(-1) == y))


def _progress(bundle):
    import keras

    if not log.isEnabledFor(logging.INFO):
        return None
    count = int(bundle.dataset.cardinality())
    return keras.utils.Progbar(count if count >= 0 else None, unit_name="batch")


__all__ = ["CORRUPTIONS", "evaluate_robustness"]
