"""`kzoo train --method coop`: CoOp prompt learning as a kzoo run (`model.fit`, run directory, resume).

The run is `kzoo.train`'s: the same splits (few-shot through `--shots`), optimizer, schedule,
callbacks, checkpoints and final test, with a CoOp model (frozen CLIP, learned context) in place
of a registered one. It also leaves `classifier.keras`: the trained prompts folded into a fixed
head, an ordinary classifier that runs no text encoder (`kzoo eval`, `kzoo predict`, export).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import keras

from kzoo.training import rundir
from kzoo.training.api import TrainResult, _finish, _load_splits, _loss, classifier_metrics
from kzoo.training.fitting import fit_run, run_in_directory, learning_rate, prepare_process
from kzoo.training.optimizers import make_optimizer
from kzoo.vlm.config import CoOpConfig

log = logging.getLogger("kzoo.vlm")


def train_coop(config: CoOpConfig | None = None, **overrides: Any) -> TrainResult:
    """Learn CoOp prompt context for a CLIP on a data source's (few-shot) training split.

    Example:
        >>> from kzoo.vlm.training import train_coop
        >>> r = train_coop(clip="clip-dir", data="cifar10-jpg.tar.gz", shots=16, context=16)  # doctest: +SKIP
        >>> r.metrics["top1"]  # doctest: +SKIP
    """
    from kzoo.vlm.checkpoints import load_clip

    prepare_process()
    start = time.perf_counter()
    cfg = CoOpConfig(**{**(config.__dict__ if config else {}), **overrides}).validate()
    clip = load_clip(cfg.clip)  # a bad --clip fails before the run directory exists
    cfg.image_size = [clip.config.image_size] * 2
    return run_in_directory(cfg, lambda resumed: _train(cfg, clip, resumed, start))


def _train(cfg: CoOpConfig, clip, resumed: bool, start: float) -> TrainResult:
    from kzoo import data as kdata
    from kzoo.vlm.coop import build_coop, coop_classifier
    from kzoo.vlm.zeroshot import read_class_names
    from kzoo.weights.preprocessing import get_preprocessing

    keras.utils.set_random_seed(cfg.seed)
    preprocessing = get_preprocessing(clip.image_encoder)
    splits = _load_splits(kdata, cfg, tuple(cfg.image_size), cfg.batch_size, 1, cfg.augment, preprocessing)
    train_data = splits["train"]
    names = train_data.class_names
    if cfg.classes:
        names = read_class_names(cfg.classes, train_data.num_classes, train_data.source)
    with open(rundir.run_file(cfg.out, "class_names"), "w") as f:  # the data's names: kzoo predict reads them
        json.dump(list(train_data.class_names), f)
    steps = cfg.steps_per_epoch or train_data.steps_per_epoch
    model = build_coop(clip, names, cfg.context, cfg.position, cfg.csc, cfg.context_init, seed=cfg.seed)
    log.info("CoOp: %d classes, %d context tokens (%s, %s), %d trainable values, %d training images",
             len(names), cfg.context, cfg.position, "class-specific" if cfg.csc else "unified",
             sum(int(w.numpy().size) for w in model.trainable_weights), train_data.num_examples)
    schedule, rate = learning_rate(cfg, 1, steps)
    model.compile(optimizer=make_optimizer(cfg, rate, model), loss=_loss(cfg, train_data),
                  metrics=classifier_metrics(train_data.num_classes),
                  jit_compile=cfg.jit_compile)
    # CoOp's protocol tests once, at the end: without --val-split no split is watched per epoch (the
    # test split of a few-shot run is ~100x the training images; validating on it every epoch
    # would cost more than the training).
    val = splits["val"].dataset if cfg.val_split else None
    fit_run(cfg, model, model, train_data.dataset, val, steps, cfg.batch_size, resumed, start, schedule)

    def finalize(tested: keras.Model, metrics: dict) -> None:  # before metrics.json marks the run finished
        coop_classifier(tested).save(rundir.run_file(cfg.out, "classifier"))
        metrics.update(clip=cfg.clip, shots=cfg.shots, context=cfg.context, position=cfg.position, csc=cfg.csc)

    return _finish(cfg, model, splits, train_data.class_names, 1, time.perf_counter() - start, finalize)


def train_method(method: str, flags: dict[str, Any]) -> TrainResult:
    """`kzoo train --method coop|clip`: the method's config from the parsed flags, then its run."""
    import dataclasses

    from kzoo.vlm.config import CLIPTrainConfig

    config_type, run = {"coop": (CoOpConfig, train_coop), "clip": (CLIPTrainConfig, train_clip)}[method]
    fields = {f.name for f in dataclasses.fields(config_type)}
    return run(config_type(**{k: v for k, v in flags.items() if k in fields}))


def train_clip(config=None, **overrides: Any) -> TrainResult:
    """Train (or fine-tune, with `clip=`) a CLIP contrastively on captions made from class names.

    Each training image's caption is a random `templates` template with its class name; the run
    ends with a zero-shot test on `eval_templates` (never trained on) and writes RUN/clip/, a kzoo
    CLIP folder that `kzoo zeroshot --clip` and `kzoo train --method coop --clip` take.

    Example:
        >>> from kzoo.vlm.training import train_clip
        >>> r = train_clip(data="cifar10-jpg.tar.gz", tokenizer="tests/fixtures/clip/transformers")  # doctest: +SKIP
        >>> r.metrics["top1"]  # zero-shot top-1 with held-out templates  # doctest: +SKIP
    """
    from kzoo.vlm.config import CLIPTrainConfig

    prepare_process()
    start = time.perf_counter()
    cfg = CLIPTrainConfig(**{**(config.__dict__ if config else {}), **overrides}).validate()
    clip = _starting_clip(cfg)  # a bad --clip or --tokenizer fails before the run directory exists
    cfg.image_size = [clip.config.image_size] * 2
    return run_in_directory(cfg, lambda resumed: _train_clip(cfg, clip, resumed, start))


def _starting_clip(cfg):
    from kzoo.vlm.checkpoints import CLIPCheckpoint, load_clip
    from kzoo.vlm.clip import CLIP_SIZES, CLIPConfig, build_clip
    from kzoo.vlm.tokenizer import CLIPTokenizer

    if cfg.clip:
        return load_clip(cfg.clip)
    size = CLIP_SIZES[cfg.clip_size]
    tokenizer = CLIPTokenizer.from_directory(cfg.tokenizer, context_length=size.get("context_length", 77))
    config = CLIPConfig(**size).replace(vocab_size=tokenizer.vocab_size, end_id=tokenizer.end_id)
    keras.utils.set_random_seed(cfg.seed)
    return CLIPCheckpoint(build_clip(config), tokenizer, config, "kzoo", f"{cfg.clip_size} (new)")


def _train_clip(cfg, clip, resumed: bool, start: float) -> TrainResult:
    import os

    import numpy as np

    from kzoo import data as kdata
    from kzoo.training.evaluation import classification_report, predict_logits
    from kzoo.training.plots import plot_confusion, plot_curves
    from kzoo.vlm.checkpoints import save_clip
    from kzoo.vlm.contrastive import CaptionedCLIP, ClassAwareContrastiveLoss, caption_table
    from kzoo.vlm.zeroshot import read_class_names, resolve_templates, zero_shot_classifier
    from kzoo.weights.preprocessing import get_preprocessing

    keras.utils.set_random_seed(cfg.seed)
    splits = _load_splits(kdata, cfg, tuple(cfg.image_size), cfg.batch_size, 1, cfg.augment,
                          get_preprocessing(clip.image_encoder))
    train_data = splits["train"]
    names = read_class_names(cfg.classes, train_data.num_classes, train_data.source) if cfg.classes \
        else train_data.class_names
    templates = resolve_templates(cfg.templates)
    trainer = CaptionedCLIP(clip.model, caption_table(clip.tokenizer, names, templates), len(templates), seed=cfg.seed)
    n = train_data.num_classes
    trainer({"images": np.zeros((2, *cfg.image_size, 3), "float32"), "labels": np.eye(n, dtype="float32")[:2]})
    steps = cfg.steps_per_epoch or train_data.steps_per_epoch
    schedule, rate = learning_rate(cfg, 1, steps)
    trainer.compile(optimizer=make_optimizer(cfg, rate, clip.model), loss=ClassAwareContrastiveLoss(),
                    jit_compile=cfg.jit_compile)
    log.info("CLIP %s: %d parameters, %d captions (%d classes x %d templates)", clip.source,
             clip.model.count_params(), n * len(templates), n, len(templates))
    # The validation loss needs batches of mixed classes: a split stored class by class (CIFAR-10's
    # test folders) gives batches of one class, where every caption is a positive and the loss
    # cannot fall below log(batch). Validate on a seeded shuffle of the split instead.
    val = kdata.load(cfg.data, splits["val"].split, image_size=tuple(cfg.image_size), batch_size=cfg.batch_size,
                     val_split=cfg.val_split, seed=cfg.seed, data_dir=cfg.data_dir, shuffle=True,
                     preprocessing=splits["val"].preprocessing)
    fit_run(cfg, trainer, clip.model, train_data.dataset, val.dataset, steps, cfg.batch_size, resumed, start,
            schedule)
    # The zero-shot test: held-out templates, every test image (no dropped partial batch).
    test = kdata.load(cfg.data, splits["test"].split, image_size=tuple(cfg.image_size), batch_size=256,
                      val_split=cfg.val_split, seed=cfg.seed, data_dir=cfg.data_dir,
                      preprocessing=splits["test"].preprocessing)
    held_out = resolve_templates(cfg.eval_templates, "--eval-templates")
    classifier = zero_shot_classifier(clip, names, held_out)
    report = classification_report(*predict_logits(classifier, test.dataset), train_data.class_names)
    folder = save_clip(clip, os.path.join(cfg.out, "clip"))
    classifier.save(rundir.run_file(cfg.out, "classifier"))
    history = rundir.read_history(cfg.out)
    speeds = [row["images_per_sec"] for row in history if "images_per_sec" in row]
    metrics = {
        "model": f"clip {cfg.clip_size}" if not cfg.clip else f"clip {cfg.clip}", "data": test.source,
        "evaluated_on": splits["evaluated_on"], "zero_shot_templates": list(held_out),
        "training_templates": list(templates), "epochs_completed": len(history),
        **{k: report[k] for k in ("top1", "top5", "loss", "num_images", "per_class_accuracy")},
        "images_per_sec": float(np.median(speeds)) if speeds else None, "params": int(clip.model.count_params()),
        "clip_folder": folder, "backend": keras.backend.backend(),
        "process_seconds": float(time.perf_counter() - start),
    }
    plot_confusion(np.asarray(report["confusion"]), train_data.class_names, rundir.run_file(cfg.out, "confusion"),
                   title=f"zero-shot (held-out templates): top-1 {report['top1']:.1%}")
    plot_curves(history, rundir.run_file(cfg.out, "curves"), title="CLIP contrastive")
    with open(rundir.run_file(cfg.out, "metrics"), "w") as f:  # last: marks the run finished
        json.dump(metrics, f, indent=2)
    return TrainResult(cfg.out, metrics, clip.model, history)
