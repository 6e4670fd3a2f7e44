"""`kzoo.train` and `kzoo.evaluate`: supervised training is always `model.fit` with callbacks."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np

from kzoo import distributed
from kzoo.errors import KzooError
from kzoo.training import distribute, rundir
from kzoo.training.config import TrainConfig
from kzoo.training.evaluation import (
    check_class_names,
    classification_report,
    first_output,
    num_classes,
    predict_logits,
)
from kzoo.training.fitting import (
    fit_run,
    fit_whitening_stem,
    learning_rate,
    prepare_process,
    report_image_size,
    run_in_directory,
)
from kzoo.training.optimizers import make_optimizer
from kzoo.training.plots import plot_confusion, plot_curves
from kzoo.training.tta import parse_tta
from kzoo.weights.preprocessing import get_preprocessing

log = logging.getLogger("kzoo.train")

@dataclass
class TrainResult:
    """What `train` returns: the run directory, its metrics and the trained model."""

    run_dir: str
    metrics: dict[str, Any]
    model: keras.Model
    history: list[dict[str, float]]


def train(config: TrainConfig | None = None, **overrides: Any) -> TrainResult:
    """Train a registered model on a data source with `model.fit`; write a complete run directory.

    Keyword arguments are `TrainConfig` fields (the `kzoo train` flags). With `recipe=NAME` the
    named recipe (kzoo.training.recipes) gives the defaults and the other arguments override them.

    Example:
        >>> import kzoo
        >>> result = kzoo.train(model="vit_cifar_tiny", epochs=2, out="runs/try")  # doctest: +SKIP
        >>> result.metrics["top1"]  # doctest: +SKIP
    """
    from kzoo.registry import get_entry

    prepare_process()
    start = time.perf_counter()  # a --budget-minutes run counts from here: data loading included
    if config is None and overrides.get("recipe"):
        from kzoo.training.recipes import expand_recipe

        fields = expand_recipe(overrides["recipe"], {k: v for k, v in overrides.items() if k != "recipe"})
    else:  # a TrainConfig is complete: its `recipe` only records where it came from
        fields = {**(config.__dict__ if config else {}), **overrides}
    cfg = TrainConfig(**fields).validate()
    entry = get_entry(cfg.model)  # unknown model fails before anything is written
    # config.json records the size the run uses, not "the model's default".
    cfg.image_size = list(cfg.image_size or entry.input_shape[:2])
    return run_in_directory(cfg, lambda resumed: _train(cfg, entry, resumed, start))


def _train(cfg: TrainConfig, entry, resumed: bool, start: float) -> TrainResult:
    from kzoo import data as kdata
    from kzoo import freeze
    from kzoo.registry import create_model

    log.info("%s run in %s", "resuming" if resumed else "starting", cfg.out)
    if cfg.data is None:
        log.info("no --data given: training on the CIFAR-10 sample bundled with kzoo")
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(f"mixed_{cfg.mixed_precision}" if cfg.mixed_precision else "float32")

    image_size = tuple(cfg.image_size)
    scope, replicas = distribute.setup(cfg.distribute)
    global_batch = cfg.batch_size * replicas
    distribute.log_scaling(cfg, replicas)
    distributed.on_chief(lambda: rundir.record_replicas(cfg.out, replicas, distributed.process_count(), resumed),
                         "checking the run's replicas")
    pipeline_augment = cfg.augment if cfg.augment_on == "pipeline" else None
    splits = _load_splits(kdata, cfg, image_size, global_batch, replicas, pipeline_augment)
    train_data = splits["train"]
    report_image_size(train_data.native_size, image_size, cfg.model, tuple(entry.input_shape[:2]))

    distributed.check_same("data", {"classes": train_data.class_names, "images": train_data.num_examples})
    if distributed.is_chief():
        with open(rundir.run_file(cfg.out, "class_names"), "w") as f:  # kzoo predict/explain read it
            json.dump(list(train_data.class_names), f)
    steps = cfg.steps_per_epoch or train_data.steps_per_epoch
    with scope:
        model = create_model(cfg.model, num_classes=train_data.num_classes, input_shape=(*image_size, 3),
                             weights=cfg.weights, pretrained=cfg.pretrained)
        preprocessing = get_preprocessing(model)
        if preprocessing is not None and not preprocessing.is_plain_resize:
            # A checkpoint's resize (interpolation, crop fraction) is known only once it is loaded:
            # re-list the splits (cheap, nothing decoded yet) so every image is resized its way.
            log.info("resizing images as the checkpoint does: %s, crop_pct %.3f (%s)",
                     preprocessing.interpolation, preprocessing.crop_pct, preprocessing.crop_mode)
            splits = _load_splits(kdata, cfg, image_size, global_batch, replicas, pipeline_augment, preprocessing)
            train_data = splits["train"]
        if not (resumed or cfg.weights or cfg.pretrained):
            fit_whitening_stem(model, train_data.dataset)
        if cfg.freeze:
            freeze(model, until=cfg.freeze)
        # Extra outputs (a CAM model's heatmap) carry no loss: fit the logits alone.
        trainer = LogitsOnly(model) if len(model.outputs) > 1 else model
        if cfg.augmix_jsd:
            from kzoo.augment import AugMix, AugMixJSD

            trainer = AugMixJSD(trainer, AugMix(seed=cfg.seed), weight=cfg.augmix_jsd)  # fits it, saves `model`
        if cfg.augment_on == "device":
            from kzoo.augment import DeviceAugmentation, get_preset

            augment = get_preset(cfg.augment, num_classes=train_data.num_classes, image_size=image_size,
                                 seed=cfg.seed)
            trainer = DeviceAugmentation(trainer, augment)  # fits the wrapper, saves `model`
        if cfg.augmix_jsd or cfg.augment_on == "device":
            n = train_data.num_classes  # BackupAndRestore needs a built model: one symbolic-sized call
            trainer({"images": np.zeros((2, *image_size, 3), "float32"), "labels": np.full((2, n), 1 / n, "float32")},
                    training=True)
        schedule, rate = learning_rate(cfg, replicas, steps)
        trainer.compile(
            optimizer=make_optimizer(cfg, rate, model),
            loss=_loss(cfg, train_data),
            metrics=classifier_metrics(train_data.num_classes),
            # XLA cannot place MirroredStrategy's per-device variables (TensorFlow's known issue).
            jit_compile=cfg.jit_compile and cfg.distribute != "mirrored",
        )
    fit_run(cfg, trainer, model, train_data.dataset, splits["val"].dataset, steps, global_batch, resumed, start,
            schedule)
    distributed.leave()  # every process has finished training; process 0 tests and writes the rest
    if not distributed.is_chief():
        return TrainResult(cfg.out, {}, model, [])
    return _finish(cfg, model, splits, train_data.class_names, replicas, time.perf_counter() - start)


def classifier_metrics(num_classes: int) -> list[keras.metrics.Metric]:
    """Accuracy, and top-5 above five classes (with five or fewer it is 100% by construction)."""
    return [keras.metrics.CategoricalAccuracy(name="accuracy")] + (
        [keras.metrics.TopKCategoricalAccuracy(5, name="top5")] if num_classes > 5 else [])


class LogitsOnly(keras.Model):
    """Training view of a model whose outputs after the first carry no loss (a CAM model's
    `[logits, heatmap]`): `fit` sees the logits only, so the loss, the metrics and their log
    names are those of any classifier. The view owns no weights of its own, and saving it saves
    the whole model (a checkpoint keeps every output).
    """

    def __init__(self, model: keras.Model, **kwargs):
        super().__init__(name=f"{model.name}_logits", **kwargs)
        self.model = model
        self.built = model.built

    def call(self, inputs, training=None):
        return first_output(self.model(inputs, training=training))

    def save(self, *args, **kwargs):
        return self.model.save(*args, **kwargs)


def _load_splits(kdata, cfg: TrainConfig, image_size, batch_size: int, replicas: int, augment,
                 preprocessing=None) -> dict:
    # Sharded batches must divide evenly across replicas: drop the last partial batch in fit().
    common = dict(image_size=image_size, batch_size=batch_size, seed=cfg.seed, data_dir=cfg.data_dir,
                  download=cfg.download, drop_remainder=replicas > 1 or None, preprocessing=preprocessing,
                  shard=distributed.shard(), classes=cfg.class_subset)
    subset = dict(augment=augment, shots=cfg.shots, fraction=cfg.train_fraction)  # the training images only
    if cfg.val_split:
        train = _two_classes(kdata.load(cfg.data, "train", val_split=cfg.val_split, **subset, **common))
        val = kdata.load(cfg.data, "val", val_split=cfg.val_split, **common)
        test = _optional_split(kdata, cfg.data, "test", common)
        return {"train": train, "val": val, "test": test or val, "select": "best",
                "evaluated_on": "test" if test else "val"}
    train = _two_classes(kdata.load(cfg.data, "train", **subset, **common))
    test = _optional_split(kdata, cfg.data, "test", common)
    if test is None:
        raise KzooError(f"--data {cfg.data} has no test split to validate on; pass --val-split 0.1")
    # Without a validation split the test split is watched but never used to pick a checkpoint.
    return {"train": train, "val": test, "test": test, "select": "last", "evaluated_on": "test"}


def _two_classes(train):
    if train.num_classes < 2:
        raise KzooError(f"--data {train.source} has {train.num_classes} class ({', '.join(train.class_names)}): a "
                        "classifier needs at least two; expected one folder per class, ROOT/<class>/<image>")
    return train


def _optional_split(kdata, source, split: str, common: dict):
    if split not in kdata.available_splits(source, data_dir=common["data_dir"]):
        return None
    return kdata.load(source, split, **common)


def _loss(cfg: TrainConfig, train_data) -> keras.losses.Loss:
    if cfg.loss == "adaptive":
        from kzoo.losses import get_loss

        counts = train_data.class_counts
        if counts is None:  # a streamed source (TFDS) lists no labels: count them in one pass
            from kzoo.losses import class_counts_from_labels

            log.info("counting the training labels for the adaptive loss (one pass over the data)")
            counts = class_counts_from_labels(train_data.dataset, train_data.num_classes)
        return get_loss("adaptive", class_counts=counts)
    return keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing)


def _finish(cfg: TrainConfig, model: keras.Model, splits: dict, class_names, replicas: int,
            seconds_so_far: float, finalize: Callable[[keras.Model, dict], None] | None = None) -> TrainResult:
    """Test the run's checkpoint and write its figures; `finalize(model, metrics)` (a method's own
    files and fields) runs before metrics.json, whose presence marks the run finished."""
    start = time.perf_counter()
    # The final evaluation sees every test image, so it runs undistributed (no even-split rule).
    keras.distribution.set_distribution(None)
    # The figures are those of the checkpoint on disk (with --ema: the averaged weights, which a
    # fit cut short by --budget-minutes does not leave in memory).
    path = rundir.run_file(cfg.out, "best" if splits["select"] == "best" else "last")
    if os.path.exists(path):
        model = keras.saving.load_model(path, safe_mode=True)
    test = splits["test"]
    if test.drop_remainder:  # the fit-time copy drops a partial batch (or is a shard); the test sees every image
        from kzoo import data as kdata

        test = kdata.load(cfg.data, test.split, image_size=test.image_size, batch_size=test.batch_size,
                          val_split=cfg.val_split, seed=cfg.seed, data_dir=cfg.data_dir, drop_remainder=False,
                          preprocessing=test.preprocessing, classes=cfg.class_subset)
    log.info("testing %s on the %s split", os.path.basename(path) if os.path.exists(path) else "the model",
             splits["evaluated_on"])
    report = _report(model, test.dataset, class_names, cfg.tta)
    history = rundir.read_history(cfg.out)
    speeds = [row["images_per_sec"] for row in history if "images_per_sec" in row]
    metrics = {
        "model": cfg.model,
        "data": splits["test"].source,
        "evaluated_on": splits["evaluated_on"],
        "checkpoint": "best" if splits["select"] == "best" else "last",
        "epochs_completed": len(history),
        "top1": report["top1"],
        "top5": report["top5"],
        "loss": report["loss"],
        "num_images": report["num_images"],
        "per_class_accuracy": report["per_class_accuracy"],
        # Throughput leaves out the fit's compile step and validation: every epoch's figure is the
        # steady training speed.
        "images_per_sec": float(np.median(speeds)) if speeds else None,
        "wall_time_s": float(sum(row.get("epoch_seconds", 0.0) for row in history) + time.perf_counter() - start),
        # This call's wall clock, data loading and final evaluation included (one process, no resume).
        "process_seconds": float(seconds_so_far + time.perf_counter() - start),
        "params": int(model.count_params()),
        "replicas": replicas,
        "processes": distributed.process_count(),
        "global_batch": cfg.batch_size * replicas,
        "backend": keras.backend.backend(),
    }
    if "tta" in report:
        metrics["tta"] = report["tta"]
    plot_confusion(np.asarray(report["confusion"]), class_names, rundir.run_file(cfg.out, "confusion"),
                   title=f"{cfg.model}: top-1 {report['top1']:.1%}")
    plot_curves(history, rundir.run_file(cfg.out, "curves"), title=cfg.model)
    if finalize is not None:
        finalize(model, metrics)
    # metrics.json is written last: its presence marks the run as finished.
    with open(rundir.run_file(cfg.out, "metrics"), "w") as f:
        json.dump(metrics, f, indent=2)
    return TrainResult(cfg.out, metrics, model, history)


def evaluate(checkpoint: str, data: str | None = None, split: str = "test", out: str | None = None,
             batch_size: int = 256, data_dir: str | None = None, tta: str | None = None,
             map_classes_by_position: bool = False, classes: str | list | None = None) -> dict[str, Any]:
    """Evaluate a saved `.keras` model: top-1, top-5, per-class accuracy and a confusion-matrix PNG.

    Results go to `out` (default: beside the checkpoint) as eval.json and confusion.png. With
    `tta` ("flip", "translate" or both, comma-separated) the report also holds `tta`: the top-1,
    top-5 and loss of the logits averaged over the augmented views, beside the plain figures.
    The data's class names must equal the checkpoint's (class_names.json beside it);
    `map_classes_by_position=True` pairs differing names by position on purpose. `classes` keeps
    some classes of `data` only (a model trained with --class-subset: pass the same subset).

    Example:
        >>> kzoo.evaluate("runs/demo/best.keras")["top1"]  # doctest: +SKIP
    """
    model = load_checkpoint(checkpoint)
    return evaluate_predictor(model, checkpoint, get_preprocessing(model), data, split=split, out=out,
                              batch_size=batch_size, data_dir=data_dir, tta=tta,
                              map_classes_by_position=map_classes_by_position, classes=classes)


def evaluate_predictor(model: Any, path: str, preprocessing: Any, data: str | None, *, split: str = "test",
                       out: str | None = None, batch_size: int = 256, data_dir: str | None = None,
                       tta: str | None = None, map_classes_by_position: bool = False,
                       class_names: list[str] | None = None, stem: str | None = None,
                       extra: dict[str, Any] | None = None, classes: str | list | None = None) -> dict[str, Any]:
    """`evaluate` for anything with Keras' `predict_on_batch` and `input_shape` (a Keras model, or
    an exported file run by its runtime: kzoo.deploy), saved as `path`; `class_names` are the
    model's when no class_names.json lies beside `path`; `extra` goes into the report. Writes
    eval-STEM.json and confusion-STEM.png."""
    from kzoo import data as kdata

    image_size = tuple(model.input_shape[1:3])
    bundle = kdata.load(data, split, image_size=image_size, batch_size=batch_size, data_dir=data_dir,
                        preprocessing=preprocessing, classes=classes)
    predicted = num_classes(model)
    if predicted != bundle.num_classes:
        hint = "" if classes else " (a model trained with --class-subset: pass the same --class-subset)"
        raise KzooError(f"{path} predicts {predicted} classes but {bundle.source} has "
                        f"{bundle.num_classes}; evaluate on the data the model was trained for{hint}")
    check_class_names(path, bundle.class_names, bundle.source, map_classes_by_position, trained=class_names)
    report = _report(model, bundle.dataset, bundle.class_names, tta)
    out = out or os.path.dirname(os.path.abspath(path))
    os.makedirs(out, exist_ok=True)
    stem = stem or os.path.splitext(os.path.basename(path))[0]
    report.update(checkpoint=path, data=bundle.source, split=split, **(extra or {}))
    with open(os.path.join(out, f"eval-{stem}.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot_confusion(np.asarray(report["confusion"]), bundle.class_names,
                   os.path.join(out, f"confusion-{stem}.png"), title=f"{stem}: top-1 {report['top1']:.1%}")
    return report


def _report(model: keras.Model, dataset, class_names, tta: str | None) -> dict[str, Any]:
    """classification_report of `model` on `dataset`, plus under "tta" the figures of the logits
    averaged over the test-time views (one pass over the data gives both)."""
    modes = parse_tta(tta)
    progress = log.isEnabledFor(logging.INFO)
    if not modes:
        return classification_report(*predict_logits(model, dataset, progress=progress), class_names)
    logits, tta_logits, labels = predict_logits(model, dataset, tta=modes, progress=progress)
    report = classification_report(logits, labels, class_names)
    augmented = classification_report(tta_logits, labels, class_names)
    report["tta"] = {"modes": modes, **{k: augmented[k] for k in ("top1", "top5", "loss")}}
    return report


#: How a `kzoo.generative.GAN` is named in a .keras file's config.
GAN_CLASS = "kzoo>GAN"


def saved_class(path: str) -> str | None:
    """The registered class name of the model in a .keras file ("Functional", "kzoo>GAN", ...),
    read from its config.json without building anything; None when the file does not say."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # load_model reports what is wrong with the file
    return config.get("registered_name") or config.get("class_name")


def load_checkpoint(path: str) -> keras.Model:
    """Load a `.keras` model saved by kzoo (safe mode on: no arbitrary code is run)."""
    import kzoo.layers  # noqa: F401  registers kzoo's serialisable layers
    import kzoo.models  # noqa: F401

    if not os.path.exists(path):
        raise KzooError(f"checkpoint not found: {path}")
    if not path.endswith(".keras"):
        raise KzooError(f"checkpoint {path} is not a .keras file; pass RUN/best.keras or RUN/last.keras")
    if saved_class(path) == GAN_CLASS:
        raise KzooError(f"{path} is a GAN checkpoint (kzoo gan train), not a classifier: make images with "
                        f"kzoo gan sample --checkpoint {path}, or pass a classifier's .keras file here")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # corrupt zip, wrong format, unknown layer: one line, no traceback
        raise KzooError(f"cannot load {path}: {str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}") from None
