"""The one training loop: `fit_run` drives `model.fit` with a run directory's callbacks (checkpoints,
backups and resume, CSV/TensorBoard logs, time budget, lookahead). `kzoo.train` and
`kzoo.selfsup.pretrain` both end in it, so every way of training resumes, budgets and logs alike."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Sequence, TypeVar

import keras
import numpy as np

from kzoo import distributed
from kzoo.training import callbacks as run_callbacks
from kzoo.training import distribute, rundir
from kzoo.training.config import TrainConfig
from kzoo.training.host_memory import keep_host_memory_for_jax_cpu
from kzoo.training.schedules import make_schedule

T = TypeVar("T")
log = logging.getLogger("kzoo.train")


def learning_rate(cfg: TrainConfig, replicas: int, steps: int) -> tuple[Any, Any]:
    """(schedule, what the optimizer takes): the schedule itself, or under --budget-minutes a float
    that `TimeBudget` then sets from the clock. `cfg.lr` is one replica's rate (linear scaling).

    Example:
        >>> schedule, rate = learning_rate(TrainConfig(epochs=2), replicas=1, steps=10)
    """
    schedule = make_schedule(cfg.schedule, cfg.lr * replicas, cfg.epochs, steps, cfg.warmup, cfg.milestones,
                             cfg.gamma)
    rate = float(keras.ops.convert_to_numpy(schedule(0))) if cfg.budget_minutes else schedule
    return schedule, rate


def prepare_process() -> None:
    """First thing `kzoo.train` and `kzoo.selfsup.pretrain` do, before JAX starts: join the job (when
    flags or the environment say so), quiet every process but 0, settle the host's memory and devices."""
    distributed.initialize()
    if not distributed.is_chief():
        logging.getLogger("kzoo").setLevel(logging.WARNING)  # process 0 reports for the job
    keep_host_memory_for_jax_cpu()  # before JAX's first computation (the seed is one)
    distribute.split_cpu_for_jax()


def begin_run(cfg: TrainConfig) -> bool:
    """Stop every process of a job unless all have the same settings, and let process 0 create or
    check the run directory. Returns whether an interrupted run is being resumed."""
    distribute.check_processes(cfg)
    distributed.check_same("settings", dataclasses.asdict(cfg))
    return distributed.on_chief(lambda: rundir.prepare(cfg), "preparing the run directory")


def run_in_directory(cfg: TrainConfig, body: Callable[[bool], T]) -> T:
    """Create or check the run directory, then `body(resumed)`; if it fails before any training state
    exists, the directory is removed again (`abandon_run`). Every kind of kzoo run starts here.

    Example:
        >>> run_in_directory(cfg, lambda resumed: _train(cfg, resumed))  # doctest: +SKIP
    """
    resumed = begin_run(cfg)
    try:
        return body(resumed)
    except BaseException:
        abandon_run(cfg, resumed)
        raise


def abandon_run(cfg: TrainConfig, resumed: bool) -> None:
    """After a failure: a run that never trained leaves nothing behind to block the corrected command."""
    if not resumed and distributed.is_chief():
        rundir.discard_untrained(cfg.out)


def fit_run(cfg: TrainConfig, trainer: keras.Model, model: keras.Model, train_dataset, val_dataset, steps: int,
            global_batch: int, resumed: bool, start: float, schedule,
            epoch_metrics: Sequence[keras.callbacks.Callback] = ()) -> None:
    """Run `trainer.fit` for `cfg.epochs` epochs of `steps` steps into the run directory `cfg.out`.

    `trainer` is what is fitted (a wrapper such as SimCLR or a device augmentation), `model` the
    network inside it (checked for ODConv layers). `epoch_metrics` are callbacks that add values
    to the epoch's logs (a kNN monitor): they run after the EMA swap and before the checkpoints
    and history.csv. `start` is the run's perf_counter origin (the budget counts from it). A
    resumed run continues from the backup, finishing a mid-epoch backup's epoch first.
    """
    callbacks = run_callbacks.standard(cfg, global_batch, resumed, epoch_metrics, val_dataset is not None)
    budget = None
    if cfg.budget_minutes:
        budget = run_callbacks.TimeBudget(cfg.budget_minutes, schedule, cfg.epochs * steps,
                                          spent_seconds=time.perf_counter() - start)
        callbacks.append(budget)
    if cfg.lookahead:
        # First: it must hand the slow weights to validation, the EMA swap and the checkpoints.
        callbacks.insert(0, run_callbacks.Lookahead(cfg.lookahead, cfg.epochs * steps,
                                                    progress=budget.progress if budget else None))
    from kzoo.layers.odconv import ODConv2D, ODConvTemperatureScheduler

    if contains(model, ODConv2D):
        # ODConv learns slowly (or not at all) without annealing its attention temperature from 30
        # to 1 over the first tenth of training (measured on GTSRB; docs/decisions.md).
        callbacks.append(ODConvTemperatureScheduler(initial=30.0, anneal_epochs=max(1, cfg.epochs // 10)))
    # One endless iterator for the whole fit, epochs counted in steps: a finite dataset makes Keras
    # destroy its tf.data iterator at every epoch end, and on the 2-core CPU that stalled the next
    # step for 30-45 s in about half the epochs (measured; docs/decisions.md).
    train_ds = train_dataset.repeat()
    fit = dict(validation_data=val_dataset, shuffle=False,  # the tf.data pipeline shuffles (seeded)
               callbacks=callbacks, verbose=0 if not distributed.is_chief() else 1 if log.isEnabledFor(logging.INFO) else 2)
    build_before_tracing(trainer, train_dataset.element_spec)
    epoch, done = run_callbacks.backup_position(cfg.out) if resumed else (0, 0)
    if 0 < done < steps and epoch < cfg.epochs:
        # The backup was taken mid-epoch: finish that epoch with exactly its missing steps, so the
        # resumed run makes the same number of optimizer steps as an uninterrupted one.
        log.info("resuming epoch %d at step %d of %d", epoch + 1, done + 1, steps)
        next(c for c in callbacks if isinstance(c, run_callbacks.AtomicBackupAndRestore)).step_offset = done
        trainer.fit(train_ds, epochs=epoch + 1, initial_epoch=epoch, steps_per_epoch=steps - done, **fit)
    if not (budget and budget.exhausted):
        trainer.fit(train_ds, epochs=cfg.epochs, steps_per_epoch=steps, **fit)


def build_before_tracing(trainer: keras.Model, element_spec: Any) -> None:
    """Create the optimizer's and the compiled metrics' variables before `fit` traces its first step.

    Keras' TensorFlow trainer without a distribution strategy creates them inside the first traced
    step, and tf.function then traces the whole step a second time, since variables may only be
    created on a first trace (a short vit_cifar_tiny run took 1.26x as long; docs/decisions.md).
    Keras itself builds first under JAX and under a strategy; this does the same for the plain
    TensorFlow case, through Keras' own private `_symbolic_build` (skipped if a release drops it).
    `element_spec` is the dataset's: only shapes and dtypes are used, no batch is drawn (a drawn batch
    would move the seeded pipeline on).

    Example:
        >>> build_before_tracing(model, train_ds.element_spec)  # doctest: +SKIP
        >>> model.fit(train_ds)  # one trace of the train step instead of two
    """
    build = getattr(trainer, "_symbolic_build", None)
    if keras.backend.backend() != "tensorflow" or build is None or getattr(trainer, "_distribute_strategy", None):
        return
    build(data_batch=element_spec)


def contains(model: keras.Model, layer_type: type) -> bool:
    """Whether `model` or a model nested in it has a layer of `layer_type`."""
    return any(isinstance(layer, layer_type) or (isinstance(layer, keras.Model) and contains(layer, layer_type))
               for layer in model.layers)


def fit_whitening_stem(model: keras.Model, dataset, images: int = 5000) -> None:
    """Fit the model's PatchWhitening filters (airbench's stem, nested models included) to the first
    `images` images of `dataset`; a model without them is left as is."""
    from kzoo.layers.whitening import PatchWhitening, adapt_whitening

    if not contains(model, PatchWhitening):
        return
    batches, seen = [], 0
    for batch in dataset:
        x = batch["images"] if isinstance(batch, dict) else batch[0]
        batches.append(keras.ops.convert_to_numpy(x))
        seen += len(batches[-1])
        if seen >= images:
            break
    if distributed.process_count() == 1:
        adapt_whitening(model, np.concatenate(batches)[:images])
    else:
        # Each process holds another shard: process 0 fits the filters on a local copy of the model
        # (the model's own variables live on every process's devices) and shares them.
        layers = [layer for layer in model.layers if isinstance(layer, PatchWhitening)]
        with distributed.undistributed():
            copy = keras.models.clone_model(model)
            copy.set_weights(model.get_weights())
            if distributed.is_chief():
                adapt_whitening(copy, np.concatenate(batches)[:images])
            fitted = [w for layer in copy.layers if isinstance(layer, PatchWhitening) for w in layer.get_weights()]
        fitted = iter(distributed.broadcast(fitted))
        for layer in layers:
            layer.set_weights([next(fitted) for _ in layer.get_weights()])
    log.info("whitening filters fitted to %d training images", min(seen, images))


def report_image_size(native: tuple[int, int] | None, used: tuple[int, int], model: str,
                       model_size: tuple[int, int]) -> None:
    """Say at the start of every run what size the images are and what size they are trained at."""
    why = f"{model}'s input size" if tuple(used) == model_size else "--image-size"
    if native is None:
        log.info("images are resized to %dx%d (%s)", *used, why)
        return
    log.info("images: %dx%d in the data, trained at %dx%d (%s)", *native, *used, why)
    factor = max(native[0] / used[0], native[1] / used[1])
    if factor > 2:
        log.warning("images are shrunk %.1fx (%dx%d -> %dx%d) to fit %s: fine detail is lost; pass "
                    "--image-size %d,%d or pick a model made for that size (docs/models.md, 'Image sizes')",
                    factor, *native, *used, model, *native)
