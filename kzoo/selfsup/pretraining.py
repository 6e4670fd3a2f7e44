"""`kzoo.selfsup.pretrain`: self-supervised pretraining as a kzoo run.

The run directory, resume, budget, schedule, EMA and logs are `kzoo.train`'s (the same
`fit_run`); what differs is the model that is fitted (`SimCLR` around the backbone), the
per-epoch kNN monitor instead of validation, and what the run leaves: `encoder.keras` (the
backbone alone, for `kzoo probe` and `kzoo train --weights`), `last.keras` (backbone +
projection head, the whole SimCLR model), and metrics.json with the last kNN accuracy.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import keras
import numpy as np

from kzoo import distributed
from kzoo.errors import KzooError
from kzoo.selfsup.config import PretrainConfig
from kzoo.training import distribute, rundir
from kzoo.training.api import TrainResult, load_checkpoint
from kzoo.training.fitting import (fit_run, run_in_directory, fit_whitening_stem, learning_rate,
                                   prepare_process, report_image_size)
from kzoo.training.optimizers import make_optimizer
from kzoo.training.plots import plot_curves

log = logging.getLogger("kzoo.selfsup")


def pretrain(config: PretrainConfig | None = None, **overrides: Any) -> TrainResult:
    """Pretrain a registered model's backbone with a self-supervised method (SimCLR) by `model.fit`.

    Keyword arguments are `PretrainConfig` fields (the `kzoo pretrain` flags). Labels of `data`
    are never trained on; they only feed the kNN monitor. Returns a `TrainResult` whose `model`
    is the encoder and whose metrics hold `knn_top1` (the last monitored epoch).

    Example:
        >>> from kzoo.selfsup import pretrain
        >>> r = pretrain(model="resnet18_cifar", data="cifar10-jpg.tar.gz", epochs=100, out="runs/simclr")  # doctest: +SKIP
        >>> r.metrics["knn_top1"]  # doctest: +SKIP
    """
    from kzoo.registry import get_entry

    prepare_process()
    start = time.perf_counter()
    cfg = PretrainConfig(**{**(config.__dict__ if config else {}), **overrides}).validate()
    entry = get_entry(cfg.model)
    cfg.image_size = list(cfg.image_size or entry.input_shape[:2])
    return run_in_directory(cfg, lambda resumed: _pretrain(cfg, entry, resumed, start))


def _pretrain(cfg: PretrainConfig, entry, resumed: bool, start: float) -> TrainResult:
    from kzoo import data as kdata
    from kzoo.registry import create_model
    from kzoo.selfsup.simclr import SimCLR

    log.info("%s %s pretraining in %s", "resuming" if resumed else "starting", cfg.method, cfg.out)
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy(f"mixed_{cfg.mixed_precision}" if cfg.mixed_precision else "float32")
    image_size = tuple(cfg.image_size)
    scope, replicas = distribute.setup(cfg.distribute)
    global_batch = cfg.batch_size * replicas
    distribute.log_scaling(cfg, replicas)
    distributed.on_chief(lambda: rundir.record_replicas(cfg.out, replicas, distributed.process_count(), resumed),
                         "checking the run's replicas")
    common = {"image_size": image_size, "seed": cfg.seed, "data_dir": cfg.data_dir, "download": cfg.download,
              "classes": cfg.class_subset}
    # Every step compares a full batch of pairs: the last partial batch is dropped (lightly does too).
    # --train-fraction shrinks the unlabelled pool only; the kNN monitor keeps its labelled bank.
    train = kdata.load(cfg.data, "train", batch_size=global_batch, drop_remainder=True, shard=distributed.shard(),
                       augment=cfg.augment if cfg.augment_on == "pipeline" else None, fraction=cfg.train_fraction,
                       **common)
    if train.num_examples < global_batch:
        raise KzooError(f"--data {train.source} has {train.num_examples} training images, fewer than one batch of "
                        f"{global_batch}: lower --batch-size")
    report_image_size(train.native_size, image_size, cfg.model, tuple(entry.input_shape[:2]))
    plain = kdata.load(cfg.data, "train", batch_size=256, limit=cfg.knn_limit, shuffle=False, **common)
    queries = _knn_queries(kdata, cfg, plain, common)
    distributed.check_same("data", {"classes": train.class_names, "images": train.num_examples})
    if distributed.is_chief():
        with open(rundir.run_file(cfg.out, "class_names"), "w") as f:
            json.dump(list(train.class_names), f)  # what the kNN monitor's labels mean
    steps = cfg.steps_per_epoch or train.steps_per_epoch
    with scope:
        backbone = create_model(cfg.model, num_classes=0, input_shape=(*image_size, 3), weights=cfg.weights,
                                pretrained=cfg.pretrained)
        if not (resumed or cfg.weights or cfg.pretrained):
            pool = plain if not cfg.train_fraction else kdata.load(  # the stem sees the pretraining pool only
                cfg.data, "train", batch_size=256, limit=cfg.knn_limit, shuffle=False, fraction=cfg.train_fraction,
                **common)
            fit_whitening_stem(backbone, pool.dataset)  # on plain images: the views are the stem's input too
        augment = None
        if cfg.augment_on == "device":
            from kzoo.augment import get_preset

            augment = get_preset(cfg.augment, num_classes=train.num_classes, image_size=image_size, seed=cfg.seed)
        trainer = SimCLR(backbone, cfg.projection_dim, cfg.hidden_dim, cfg.temperature, augment=augment,
                         name=f"simclr_{backbone.name}")
        trainer(np.zeros((2, *image_size, 3), "float32"), training=True)  # built, for BackupAndRestore
        schedule, rate = learning_rate(cfg, replicas, steps)
        trainer.compile(optimizer=make_optimizer(cfg, rate, trainer),
                        jit_compile=cfg.jit_compile and cfg.distribute != "mirrored")
    monitors = []
    if queries is not None:
        from kzoo.selfsup.knn import KNNMonitor

        monitors.append(KNNMonitor(backbone, plain.dataset, queries.dataset, every=cfg.knn_every))
    fit_run(cfg, trainer, backbone, train.dataset, None, steps, global_batch, resumed, start, schedule, monitors)
    distributed.leave()  # every process has finished; process 0 writes the encoder and the metrics
    if not distributed.is_chief():
        return TrainResult(cfg.out, {}, backbone, [])
    keras.distribution.set_distribution(None)
    return _finish(cfg, backbone, train, replicas, time.perf_counter() - start)


def _knn_queries(kdata, cfg: PretrainConfig, plain, common: dict):
    """The kNN monitor's query split (the test split), or None when the monitor is off."""
    if not cfg.knn_every:
        return None
    if "test" not in kdata.available_splits(cfg.data, data_dir=cfg.data_dir):
        log.info("kNN monitor off: --data %s has no test split to query", plain.source)
        return None
    if plain.num_classes < 2:
        log.info("kNN monitor off: --data %s has one class", plain.source)
        return None
    return kdata.load(cfg.data, "test", batch_size=256, limit=cfg.knn_limit, **common)


def _finish(cfg: PretrainConfig, backbone: keras.Model, train, replicas: int, seconds_so_far: float) -> TrainResult:
    # The encoder is last.keras's backbone: with --ema that holds the averaged weights, which a
    # fit cut short by --budget-minutes does not leave in memory.
    last = rundir.run_file(cfg.out, "last")
    encoder = load_checkpoint(last).backbone if os.path.exists(last) else backbone
    path = rundir.run_file(cfg.out, "encoder")
    encoder.save(f"{path}.tmp.keras")
    os.replace(f"{path}.tmp.keras", path)
    history = rundir.read_history(cfg.out)
    monitored = [row for row in history if "knn_top1" in row]
    speeds = [row["images_per_sec"] for row in history if "images_per_sec" in row]
    metrics = {
        "model": cfg.model,
        "method": cfg.method,
        "data": train.source,
        "train_images": train.num_examples,  # the pretraining pool (after --class-subset, --train-fraction)
        "epochs_completed": len(history),
        "loss": history[-1]["loss"] if history else None,
        "knn_top1": monitored[-1]["knn_top1"] if monitored else None,
        "knn_top5": monitored[-1].get("knn_top5") if monitored else None,
        "knn_epoch": int(monitored[-1]["epoch"]) + 1 if monitored else None,
        # One training image gives one pair of views: images/s of the data is pairs/s.
        "pairs_per_sec": float(np.median(speeds)) if speeds else None,
        "wall_time_s": float(sum(row.get("epoch_seconds", 0.0) for row in history)),
        "process_seconds": float(seconds_so_far),
        "params": int(encoder.count_params()),
        "feature_dim": int(encoder.output.shape[-1]),
        "encoder": path,
        "replicas": replicas,
        "processes": distributed.process_count(),
        "global_batch": cfg.batch_size * replicas,
        "backend": keras.backend.backend(),
    }
    plot_curves(history, rundir.run_file(cfg.out, "curves"), title=f"{cfg.method} {cfg.model}")
    with open(rundir.run_file(cfg.out, "metrics"), "w") as f:  # last: marks the run finished
        json.dump(metrics, f, indent=2)
    return TrainResult(cfg.out, metrics, encoder, history)
