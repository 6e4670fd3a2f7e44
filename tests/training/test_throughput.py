"""`Throughput` reports training speed from training steps only: not validation, not the fit's
first (tracing/compiling) step; and `HistoryCSV` keeps history.csv aligned when an epoch has no figure."""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from kzoo.training import rundir
from kzoo.training.callbacks import HistoryCSV, Throughput, standard
from kzoo.training.config import TrainConfig

BATCH = 8
STEP_S = 0.1  # every training step
COMPILE_S = 1.5  # the first training step of the process, as tracing/compilation would
VALIDATION_S = 0.4  # every validation step


class Timed(keras.layers.Layer):
    """Sleeps a known time per call: the training steps, the first one and validation differ."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.calls = 0

    def call(self, x, training=None):
        if training:
            self.calls += 1
            time.sleep(COMPILE_S if self.calls == 1 else STEP_S)
        else:
            time.sleep(VALIDATION_S)
        return x


def tiny_model() -> keras.Model:
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(Timed()(inputs)))
    # Eagerly, so the layer's Python sleeps run inside each step (a traced step would skip them).
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", run_eagerly=True)
    return model


def data(n: int) -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, 4)).astype("float32"), rng.integers(0, 2, n)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)


def test_images_per_sec_counts_training_steps_only():
    steps = 5
    model, throughput = tiny_model(), Throughput(BATCH)
    history = model.fit(data(steps * BATCH).repeat(), steps_per_epoch=steps, epochs=2,
                        validation_data=data(4 * BATCH), callbacks=[throughput], verbose=0).history
    ideal = BATCH / STEP_S  # 80 img/s: what the training steps alone allow
    for epoch in range(2):
        speed, seconds = history["images_per_sec"][epoch], history["epoch_seconds"][epoch]
        # Python and Keras overhead per eager step only lowers the figure; the sleeps bound it above.
        assert 0.5 * ideal < speed <= 1.02 * ideal, (epoch, speed)
        # epoch_seconds stays the whole epoch: training steps and the 4 validation steps.
        assert seconds >= steps * STEP_S + 4 * VALIDATION_S, (epoch, seconds)
        # The old figure (all steps over the whole epoch) was off by more than 3x.
        assert steps * BATCH / seconds < 0.3 * ideal
    assert history["epoch_seconds"][0] >= COMPILE_S  # epoch 1 holds the first step...
    assert history["images_per_sec"][0] > 0.5 * ideal  # ...which its speed leaves out


def test_epoch_with_only_the_compile_step_has_no_figure_and_history_stays_aligned(tmp_path):
    """A resumed run's first fit can be a single step; history.csv must still parse (and a later
    epoch keep its figure) when that epoch comes first."""
    path = str(tmp_path / "history.csv")
    model = tiny_model()
    train = data(3 * BATCH).repeat()

    first = model.fit(train, steps_per_epoch=1, epochs=1, verbose=0,
                      callbacks=[Throughput(BATCH), HistoryCSV(path, append=True)]).history
    assert "images_per_sec" not in first and first["epoch_seconds"][0] >= COMPILE_S  # not 0 img/s

    model.fit(train, steps_per_epoch=3, initial_epoch=1, epochs=2, verbose=0,
              callbacks=[Throughput(BATCH), HistoryCSV(path, append=True)])
    rows = rundir.read_history(str(tmp_path))
    assert [row["epoch"] for row in rows] == [0, 1]
    assert "images_per_sec" not in rows[0]
    assert 0.5 * BATCH / STEP_S < rows[1]["images_per_sec"] <= 1.02 * BATCH / STEP_S
    for row in rows:  # every column under its own header
        assert row["epoch_seconds"] >= STEP_S and 0 < row["lr"] < 1 and row["loss"] > 0


def test_standard_callbacks_log_history_with_history_csv(tmp_path):
    callbacks = standard(TrainConfig(out=str(tmp_path / "run")), global_batch=BATCH, resumed=False)
    loggers = [c for c in callbacks if isinstance(c, keras.callbacks.CSVLogger)]
    assert len(loggers) == 1 and isinstance(loggers[0], HistoryCSV)
    assert loggers[0].filename == rundir.run_file(str(tmp_path / "run"), "history")
