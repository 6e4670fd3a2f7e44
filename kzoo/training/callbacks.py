"""The callbacks every run gets, plus the two kzoo adds (throughput and learning-rate logging)."""

from __future__ import annotations

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


def standard(cfg: TrainConfig, global_batch: int, resumed: bool) -> list[keras.callbacks.Callback]:
    """Checkpoints (best by `cfg.monitor`, last), resume, CSV + TensorBoard logs, NaN guard."""
    out = cfg.out
    mode = "min" if cfg.monitor.endswith("loss") else "max"
    best = keras.callbacks.ModelCheckpoint(
        rundir.run_file(out, "best"), monitor=cfg.monitor, mode=mode, save_best_only=True
    )
    if resumed:
        # A resumed run must not replace best.keras with a worse epoch: seed the tracker from history.
        values = [row[cfg.monitor] for row in rundir.read_history(out) if cfg.monitor in row]
        if values:
            best.best = float(np.min(values) if mode == "min" else np.max(values))
    callbacks = [
        Throughput(global_batch),
        keras.callbacks.TerminateOnNaN(),
        best,
        keras.callbacks.ModelCheckpoint(rundir.run_file(out, "last")),
        keras.callbacks.CSVLogger(rundir.run_file(out, "history"), append=True),
        # Kept after training so a run that died after fit() resumes into evaluation, not a rerun.
        keras.callbacks.BackupAndRestore(rundir.run_file(out, "backup"), delete_checkpoint=False),
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
