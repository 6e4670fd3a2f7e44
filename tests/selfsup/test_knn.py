"""knn_accuracy and the KNNMonitor callback (kzoo.selfsup.knn)."""

import csv
import logging

import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.selfsup import KNNMonitor, knn_accuracy

COLOURS = np.array([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (0, 1, 1), (1, 0, 1), (1, 0.4, 0)], "float32")


def colour_batches(n=60, classes=3, size=8, seed=0, batch=16, one_hot=True):
    """Batches whose class decides the image's colour (a direction in RGB: cosine-separable)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.uniform(0, 40, (n, size, size, 3)).astype("float32") + 200 * COLOURS[y][:, None, None, :]
    labels = np.eye(classes, dtype="float32")[y] if one_hot else y
    return [(x[i:i + batch], labels[i:i + batch]) for i in range(0, n, batch)]


def mean_colour_encoder(size=8):
    inputs = keras.Input((size, size, 3))
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inputs))


def test_separable_features_give_full_accuracy_and_no_top5_for_few_classes():
    encoder = mean_colour_encoder()
    result = knn_accuracy(encoder, colour_batches(seed=0), colour_batches(n=30, seed=1), k=5)
    assert result == {"top1": 1.0, "top5": None, "bank": 60, "queries": 30}


def test_top5_with_more_than_five_classes_and_integer_labels():
    encoder = mean_colour_encoder()
    result = knn_accuracy(encoder, colour_batches(n=70, classes=7, one_hot=False),
                          colour_batches(n=35, classes=7, seed=1, one_hot=False), k=3)
    assert result["top5"] is not None and result["top5"] >= result["top1"] >= 0.9


def test_limit_caps_each_side_mid_batch():
    encoder = mean_colour_encoder()
    result = knn_accuracy(encoder, colour_batches(), colour_batches(seed=1), k=200, limit=21)
    assert (result["bank"], result["queries"]) == (21, 21)


def test_refuses_feature_maps_and_empty_data():
    inputs = keras.Input((8, 8, 3))
    maps = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(KzooError, match="one \\(batch, features\\) tensor"):
        knn_accuracy(maps, colour_batches(), colour_batches())
    with pytest.raises(KzooError, match="query data is empty"):
        knn_accuracy(mean_colour_encoder(), colour_batches(), [])


def test_monitor_logs_on_first_every_nth_and_last_epoch(tmp_path, caplog):
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    encoder = keras.Model(inputs, features)
    model = keras.Model(inputs, keras.layers.Dense(3)(features))
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    x = np.concatenate([b[0] for b in colour_batches()]) / 255
    y = np.concatenate([b[1] for b in colour_batches()])
    bank = [(x[:40], y[:40])]  # a list: read again at each measurement
    queries = [(x[40:], y[40:])]
    monitor = KNNMonitor(encoder, bank, queries, every=3, k=5)
    log_path = tmp_path / "log.csv"
    with caplog.at_level(logging.INFO, logger="kzoo.selfsup"):
        model.fit(x, y, epochs=7, batch_size=20, verbose=0,
                  callbacks=[monitor, keras.callbacks.CSVLogger(str(log_path))])
    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    measured = [int(r["epoch"]) + 1 for r in rows if r["knn_top1"] not in ("", "NA")]
    assert measured == [1, 3, 6, 7]
    assert all(0.0 <= float(rows[e - 1]["knn_top1"]) <= 1.0 for e in measured)
    assert "knn_top5" not in rows[0]  # three classes: top-5 is not meaningful
    lines = [r.getMessage() for r in caplog.records if r.name == "kzoo.selfsup"]
    assert len(lines) == 4 and lines[0].startswith("epoch 1: kNN (k=5) top-1")


def test_monitor_refuses_a_bad_period():
    with pytest.raises(KzooError, match="every"):
        KNNMonitor(mean_colour_encoder(), [], [], every=0)


class _StopAfter(keras.callbacks.Callback):
    """Stops fit during epoch `epoch` (1-based), as --budget-minutes does mid-epoch."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch:
            self.model.stop_training = True


def test_monitor_measures_the_epoch_a_budget_stops():
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    encoder = keras.Model(inputs, features)
    model = keras.Model(inputs, keras.layers.Dense(3)(features))
    model.compile("sgd", keras.losses.CategoricalCrossentropy(from_logits=True))
    x = np.concatenate([b[0] for b in colour_batches()]) / 255
    y = np.concatenate([b[1] for b in colour_batches()])
    monitor = KNNMonitor(encoder, [(x[:40], y[:40])], [(x[40:], y[40:])], every=10, k=5)
    history = model.fit(x, y, epochs=20, batch_size=20, verbose=0, callbacks=[_StopAfter(4), monitor])
    assert len(history.history["loss"]) == 4
    # Measured twice: epoch 1 (the first) and epoch 4 (where the budget stopped the fit).
    assert len(history.history["knn_top1"]) == 2, history.history["knn_top1"]
