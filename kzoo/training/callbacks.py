"""The callbacks every run gets, plus the two kzoo adds (throughput and learning-rate logging)."""

from __future__ import annotations

import json
import os
import time

import keras
import numpy as np

from kzoo.training import rundir
from kzoo.training.config import TrainConfig


class Throughput(keras.callbacks.Callback):
    """Adds `images_per_sec` (training images per second of the epoch) and `lr` to the epoch logs."""

    def __init__(self, global_batch: int):
        super().__init__()
        self.global_batch = global_batch

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._steps = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        seconds = time.perf_counter() - self._start
        logs["images_per_sec"] = self._steps * self.global_batch / max(seconds, 1e-9)
        logs["epoch_seconds"] = seconds
        logs["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class AtomicCheckpoint(keras.callbacks.Callback):
    """Saves a `.keras` file each epoch (or only on improvement of `monitor`) via a temporary file
    and an atomic rename, so a kill mid-write never destroys the previous checkpoint."""

    def __init__(self, path: str, monitor: str | None = None):
        super().__init__()
        self.path, self.monitor = path, monitor
        self.sign = -1.0 if monitor and monitor.endswith("loss") else 1.0
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
        getattr(self.model, "model", self.model).save(tmp, overwrite=True)
        os.replace(tmp, self.path)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` whose files are replaced by atomic renames.

    Keras writes the backup in place, so a kill during the write leaves a corrupt file and the
    run cannot resume (seen in the kill test). Weights are renamed into place before the epoch
    counter: a kill between the two repeats one epoch from the newer weights, never loses one.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        tmp_weights = f"{self._weights_path}.tmp.weights.h5"
        self.model.save_weights(tmp_weights, overwrite=True)
        os.replace(tmp_weights, self._weights_path)
        tmp_meta = f"{self._training_metadata_path}.tmp"
        with open(tmp_meta, "w") as f:
            json.dump({"epoch": self._current_epoch, "batch": self._last_batch_seen}, f)
        os.replace(tmp_meta, self._training_metadata_path)


def standard(cfg: TrainConfig, global_batch: int, resumed: bool) -> list[keras.callbacks.Callback]:
    """Checkpoints (best by `cfg.monitor`, last), resume, CSV + TensorBoard logs, NaN guard."""
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
        AtomicBackupAndRestore(rundir.run_file(out, "backup"), delete_checkpoint=False),
        best,
        AtomicCheckpoint(rundir.run_file(out, "last")),
        keras.callbacks.CSVLogger(rundir.run_file(out, "history"), append=True),
    ]
    if _has_tensorboard():  # Keras' TensorBoard writer needs tf.summary and the tensorboard package
        callbacks.append(keras.callbacks.TensorBoard(rundir.run_file(out, "tensorboard"), write_graph=False))
    if cfg.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(monitor=cfg.monitor, patience=cfg.early_stopping, restore_best_weights=False)
        )
    return callbacks


def _has_tensorboard() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "tensorboard"))
