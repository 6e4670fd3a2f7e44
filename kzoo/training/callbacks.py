"""The callbacks every run gets: throughput and learning-rate logging, atomic checkpoints and
backups (resumable mid-epoch), the EMA weight swap, and the wall-clock budget."""

from __future__ import annotations

import json
import os
import time
from typing import Sequence

import keras
import numpy as np

from kzoo import distributed
from kzoo.training import rundir
from kzoo.training.config import TrainConfig


class Throughput(keras.callbacks.Callback):
    """Adds `images_per_sec` (training speed), `epoch_seconds` (the epoch's whole wall clock,
    validation included) and `lr` to the epoch logs.

    `images_per_sec` counts training steps only. Each step is timed from the previous step's end (an
    epoch's first step from the epoch's start) to its own end, so waiting for data and the per-step
    callbacks count, as in the progress bar's time per step; validation, which runs after an epoch's
    last step, does not, nor does the first step of each `fit`, which traces and compiles the train
    function (seconds to minutes, once). An epoch with no other step has no honest figure: its logs
    leave the key out rather than report 0 (`HistoryCSV` writes it blank).
    """

    def __init__(self, global_batch: int):
        super().__init__()
        self.global_batch = global_batch
        self._compile_pending = True

    def on_train_begin(self, logs=None):
        self._compile_pending = True

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last_end = time.perf_counter()
        self._steps, self._train_seconds = 0, 0.0
        self._batch_begin = None

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_begin = batch

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        # With steps_per_execution > 1 one callback covers steps begin..end (Keras passes both).
        begin = batch if self._batch_begin is None else self._batch_begin
        steps = max(batch - begin + 1, 1)
        if self._compile_pending:
            self._compile_pending = False
        else:
            self._steps += steps
            self._train_seconds += now - self._last_end
        self._last_end = now

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        if self._steps:
            logs["images_per_sec"] = self._steps * self.global_batch / max(self._train_seconds, 1e-9)
        logs["epoch_seconds"] = time.perf_counter() - self._start
        logs.update({key: float(keras.ops.convert_to_numpy(optimizer.learning_rate))
                     for key, optimizer in _optimizers(self.model).items()})


def _optimizers(model: keras.Model) -> dict[str, keras.optimizers.Optimizer]:
    """The optimizers whose rates a run logs and sets, by log key: `lr`, or one per network of a
    model with several (a GAN's `optimizers_by_name()`: `lr_g`, `lr_d`)."""
    by_name = getattr(model, "optimizers_by_name", None)
    if by_name is None:
        return {"lr": model.optimizer}
    return {f"lr_{name}": optimizer for name, optimizer in by_name().items()}


class _BlankWhenMissing(dict):
    """Epoch logs whose missing keys read as "": Keras' CSVLogger fills one with `logs.get(key, "NA")`."""

    def get(self, key: str, default: object = None) -> object:
        return super().get(key, "")


class HistoryCSV(keras.callbacks.CSVLogger):
    """`CSVLogger` that writes a key an epoch lacks as a blank cell, which `rundir.read_history`
    skips, and always has an `images_per_sec` column.

    Keras takes the columns from the first epoch of each `fit` (plus `val_*` twins when that epoch
    has no validation figures), writes "NA" for a key missing later (read_history cannot parse it),
    and writes no header when appending. So without this an epoch lacking `images_per_sec` (only the
    compile step) that came first in a fit would drop the column for the whole fit and, after a
    resume, shift every later column under the old header.
    """

    ALWAYS = ("images_per_sec",)

    def __init__(self, filename: str, append: bool = False, validation: bool = True):
        super().__init__(filename, append=append)
        self.validation = validation

    def on_epoch_end(self, epoch, logs=None):
        row = _BlankWhenMissing(logs or {})
        for key in self.ALWAYS:
            row.setdefault(key, "")
        if self.keys is None and not self.validation:
            self.keys = sorted(row)  # a fit without validation (pretraining): no empty val_* twins
        super().on_epoch_end(epoch, row)


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves a `.keras` file each epoch (or only on improvement of `monitor`) via a temporary file
    and an atomic rename, so a kill mid-write never destroys the previous checkpoint."""

    def __init__(self, path: str, monitor: str | None = None):
        super().__init__()
        self.path, self.monitor = path, monitor
        self.sign = -1.0 if monitor and lower_is_better(monitor) else 1.0
        self.best = -np.inf

    def seed(self, values) -> None:
        if len(values):
            self.best = max(self.sign * v for v in values)

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is not None:
            value = (logs or {}).get(self.monitor)
            if value is None or not self.sign * value > self.best:
                return
            self.best = self.sign * value
        tmp = f"{self.path}.tmp.keras"
        # A device-augmentation wrapper trains the model; the checkpoint is the model alone.
        with distributed.undistributed():
            getattr(self.model, "model", self.model).save(tmp, overwrite=True)
        os.replace(tmp, self.path)


def lower_is_better(monitor: str) -> bool:
    """Whether a smaller value of the logged figure `monitor` is the better one (losses, FID, KID)."""
    return monitor.endswith("loss") or monitor.split("_")[-1] in ("fid", "kid")


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose files are replaced by atomic renames, and which also records how
    many steps of the current epoch the backup holds (`steps_done`, 0 at an epoch's end), so a
    resumed run can finish that epoch with exactly the missing steps (`backup_position`).

    Keras writes the backup in place, so a kill during the write leaves a corrupt file and the
    run cannot resume (seen in the kill test). Weights are renamed into place before the epoch
    counter: a kill between the two repeats steps from the newer weights, never loses one.
    """

    def __init__(self, backup_dir: str, save_freq="epoch", **kwargs):
        super().__init__(backup_dir, save_freq=save_freq, **kwargs)
        self.step_offset = 0  # steps of this epoch done before this fit() began (a resumed epoch)
        self._at_epoch_end = False

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch  # Keras counts from 0 after a resume until the first epoch ends

    def on_epoch_end(self, epoch, logs=None):
        self._at_epoch_end = True
        super().on_epoch_end(epoch, logs)
        if self.save_freq != "epoch":  # step-based backups also mark every epoch's end
            self._save_model()
        self._at_epoch_end, self.step_offset = False, 0

    def _save_model(self):
        if not distributed.is_chief():  # every process restores from the backup; process 0 writes it
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp_weights = f"{self._weights_path}.tmp.weights.h5"
        with distributed.undistributed():
            self.model.save_weights(tmp_weights, overwrite=True)
        os.replace(tmp_weights, self._weights_path)
        tmp_meta = f"{self._training_metadata_path}.tmp"
        done = 0 if self._at_epoch_end else self.step_offset + self._last_batch_seen + 1
        with open(tmp_meta, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen, "steps_done": done}, f)
        os.replace(tmp_meta, self._training_metadata_path)


def backup_position(run_dir: str) -> tuple[int, int]:
    """(epoch, steps of that epoch done) of a run directory's backup; (0, 0) without one."""
    path = os.path.join(rundir.run_file(run_dir, "backup"), "training_metadata.json")
    if not os.path.exists(path):
        return 0, 0
    with open(path) as f:
        meta = json.load(f)
    return int(meta["epoch"]), int(meta.get("steps_done", 0))


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` once `minutes` of wall clock have passed (counting `spent_seconds` already used
    before the first `fit`, e.g. on loading data), and makes the learning
    rate follow the clock: at step s it is `schedule(max(s, elapsed / budget * total_steps))`, so a
    run the budget cuts short still warms up and anneals completely.

    The optimizer's learning rate must be a variable (a float), which this callback sets every
    `every` steps or `every_seconds`, whichever comes first (under JAX each set syncs the training
    state once). A model with several optimizers (a GAN) takes a dict of schedules keyed as its
    logged rates (`{"lr_g": ..., "lr_d": ...}`).
    """

    def __init__(self, minutes: float, schedule, total_steps: int, spent_seconds: float = 0.0, every: int = 10,
                 every_seconds: float = 2.0):
        super().__init__()
        self.seconds, self.schedule, self.total_steps = minutes * 60.0, schedule, total_steps
        self.spent, self.every, self.every_seconds = spent_seconds, every, every_seconds
        self.start = None  # set when the first fit() begins, minus what was spent before (data loading)
        self.exhausted = False
        self._step = None

    def on_train_begin(self, logs=None):
        if self.start is None:
            self.start = time.perf_counter() - self.spent
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self._set_rate()

    def on_train_batch_begin(self, batch, logs=None):
        if self._step % self.every == 0 or time.perf_counter() - self._last_set >= self.every_seconds:
            self._set_rate()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if time.perf_counter() - self.start >= self.seconds:
            self.exhausted = self.model.stop_training = True  # Keras still validates this epoch

    def progress(self) -> float:
        """Fraction of training done: by steps or by the clock, whichever is further."""
        return max(self._step, (time.perf_counter() - self.start) / self.seconds * self.total_steps) / self.total_steps

    def _set_rate(self):
        self._last_set = time.perf_counter()
        progress = self.progress() * self.total_steps
        schedules = self.schedule if isinstance(self.schedule, dict) else {"lr": self.schedule}
        _sync_jax_state(self.model)  # else the next step's cached state would overwrite the rate
        optimizers = _optimizers(self.model)
        for key, schedule in schedules.items():
            rate = float(keras.ops.convert_to_numpy(schedule(min(progress, self.total_steps))))
            optimizers[key].learning_rate.assign(rate)


class Lookahead(keras.callbacks.Callback):
    """airbench's lookahead: every `every` steps a slow copy of the model's float variables (BatchNorm
    statistics included) moves toward the model, `slow = rho * slow + (1 - rho) * model`, and the model
    is reset to it. `rho = base ** every * progress ** power` grows from 0 (no effect) to about
    0.77 at the end, so training moves fast first and averages strongly last. Before each validation
    and at each epoch's end the model takes the slow weights, so every checkpoint holds them.

    The slow copy lives in memory only: a resumed run starts it again from the restored weights (the
    same weights at an epoch's end; a mid-epoch backup loses at most `every - 1` steps of averaging).
    """

    def __init__(self, every: int, total_steps: int, base: float = 0.95, power: float = 3.0, progress=None):
        super().__init__()
        self.every, self.total_steps, self.base, self.power = every, max(total_steps, 1), base, power
        self.progress = progress  # a callable giving the fraction of training done (TimeBudget.progress)
        self._slow = None

    def on_train_begin(self, logs=None):
        _sync_jax_state(self.model)
        self._vars = [v for v in self.model.weights if "float" in str(v.dtype)]
        self._slow = [np.array(keras.ops.convert_to_numpy(v), dtype="float32") for v in self._vars]
        self._step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every == 0:
            done = self.progress() if self.progress else self._step / self.total_steps
            self._pull(self.base ** self.every * min(done, 1.0) ** self.power)

    def on_test_begin(self, logs=None):
        if self._slow is not None:  # validation inside fit
            self._pull(1.0)

    def on_epoch_end(self, epoch, logs=None):
        self._pull(1.0)

    def on_train_end(self, logs=None):
        self._slow = None

    def _pull(self, rho: float) -> None:
        _sync_jax_state(self.model)
        for variable, slow in zip(self._vars, self._slow):
            if rho < 1.0:
                slow *= rho
                slow += (1.0 - rho) * keras.ops.convert_to_numpy(variable).astype("float32")
            variable.assign(slow)


def _sync_jax_state(model) -> None:
    """Under JAX, fit carries the training state outside the variables between steps: write it back
    (and make the next step read the variables again) before a callback reads or sets one."""
    if keras.backend.backend() == "jax" and getattr(model, "_jax_state", None) is not None:
        model.jax_state_sync()


def standard(cfg: TrainConfig, global_batch: int, resumed: bool,
             epoch_metrics: Sequence[keras.callbacks.Callback] = (),
             validation: bool = True) -> list[keras.callbacks.Callback]:
    """Checkpoints (best by `cfg.monitor`, last), resume, CSV + TensorBoard logs, NaN guard, and
    with `cfg.ema` the EMA weights swapped in for validation and both checkpoints. `epoch_metrics`
    (callbacks that add to the epoch's logs, e.g. a kNN monitor) see the EMA weights and come
    before the checkpoints and the CSV log, which therefore record what they add. `validation`:
    whether the fit validates (history.csv then has val_* columns)."""
    out = cfg.out
    best = AtomicCheckpoint(rundir.run_file(out, "best"), monitor=cfg.monitor)
    if resumed:
        # A resumed run must not replace best.keras with a worse epoch: seed the tracker from history.
        best.seed([row[cfg.monitor] for row in rundir.read_history(out) if cfg.monitor in row])
    callbacks = [
        Throughput(global_batch),
        keras.callbacks.TerminateOnNaN(),
        # Before the CSV logger: an epoch that is in history.csv is also in the backup.
        # Kept after training so a run that died after fit() resumes into evaluation, not a rerun.
        # Before the EMA swap: the backup holds the raw weights (the averages are optimizer state).
        AtomicBackupAndRestore(rundir.run_file(out, "backup"), save_freq=cfg.backup_steps or "epoch",
                               delete_checkpoint=False),
    ]
    if cfg.ema:
        callbacks.append(keras.callbacks.SwapEMAWeights(swap_on_epoch=True))
    callbacks += [*epoch_metrics]
    if not distributed.is_chief():  # process 0 of a job writes the run directory
        return callbacks + _early_stopping(cfg)
    callbacks += [
        best,
        AtomicCheckpoint(rundir.run_file(out, "last")),
        HistoryCSV(rundir.run_file(out, "history"), append=True, validation=validation),
    ]
    if _has_tensorboard():  # Keras' TensorBoard writer needs tf.summary and the tensorboard package
        callbacks.append(keras.callbacks.TensorBoard(rundir.run_file(out, "tensorboard"), write_graph=False))
    return callbacks + _early_stopping(cfg)


def _early_stopping(cfg: TrainConfig) -> list[keras.callbacks.Callback]:
    # Validation figures are the job's (global batches), so every process stops at the same epoch.
    if not cfg.early_stopping:
        return []
    return [keras.callbacks.EarlyStopping(monitor=cfg.monitor, patience=cfg.early_stopping, restore_best_weights=False)]


def _has_tensorboard() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))
