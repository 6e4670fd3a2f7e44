"""Weighted kNN accuracy of an encoder's features, the usual monitor of self-supervised training:
the classifier of Wu et al. 2018 as in lightly's and solo-learn's kNN monitors. Features are
L2-normalised; each query's `k` most cosine-similar bank features vote for their class with weight
exp(similarity / temperature); a class's score is the sum of its votes."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import keras
import numpy as np
from keras import ops

from kzoo import distributed
from kzoo.errors import KzooError
from kzoo.training.evaluation import predict_logits

log = logging.getLogger("kzoo.selfsup")


def _unit(x):
    return x / ops.maximum(ops.norm(x, axis=-1, keepdims=True), 1e-12)


def knn_predict(bank_features, bank_labels, query_features, num_classes: int, k: int = 200,
                temperature: float = 0.1, chunk: int = 1024):
    """Class scores (Q, C), a backend tensor, of `query_features` (Q, D) voted by their `k` nearest
    neighbours among `bank_features` (N, D) with integer `bank_labels` (N,). Queries go `chunk` at a
    time, so at most a (chunk, N) similarity matrix exists at once; `k` above N is clamped to N.

    Example:
        >>> scores = knn_predict(bank, bank_labels, queries, num_classes=10, k=20)  # doctest: +SKIP
    """
    if not all(isinstance(v, (int, np.integer)) and v >= 1 for v in (k, chunk, num_classes)) or not temperature > 0:
        raise KzooError(f"knn_predict: k={k!r}, chunk={chunk!r}, num_classes={num_classes!r} must be ints >= 1 "
                        f"and temperature={temperature!r} > 0")
    bank = _unit(ops.cast(ops.convert_to_tensor(bank_features), "float32"))
    queries = ops.cast(ops.convert_to_tensor(query_features), "float32")
    labels = ops.cast(ops.reshape(ops.convert_to_tensor(bank_labels), (-1,)), "int32")
    n = int(bank.shape[0])
    if len(bank.shape) != 2 or len(queries.shape) != 2 or bank.shape[1] != queries.shape[1] or not n == labels.shape[0] > 0:
        raise KzooError(f"knn_predict: expected a non-empty bank (N, D), N labels and queries (Q, D); got "
                        f"{tuple(bank.shape)}, {tuple(labels.shape)} labels and {tuple(queries.shape)}")
    k, chunk, num_classes = min(int(k), n), int(chunk), int(num_classes)
    scores = []
    for start in range(0, int(queries.shape[0]), chunk):
        q = _unit(queries[start:start + chunk])
        rows = int(q.shape[0])
        similarity, index = ops.top_k(ops.matmul(q, ops.transpose(bank)), k)  # (rows, k)
        weights = ops.exp(similarity / temperature)
        # Votes summed per (query, class) by segment sum: memory O(rows * (k + C)), never (rows, k, C).
        segment = ops.take(labels, index) + ops.expand_dims(ops.arange(rows, dtype="int32") * num_classes, 1)
        summed = ops.segment_sum(ops.reshape(weights, (-1,)), ops.reshape(segment, (-1,)),
                                 num_segments=rows * num_classes)
        scores.append(ops.reshape(summed, (rows, num_classes)))
    return ops.concatenate(scores, axis=0) if scores else ops.zeros((0, num_classes), "float32")


class _Capped:
    """`(images, labels)` batches cut at `limit` images; keeps the one-hot width (the class count)."""

    def __init__(self, batches: Iterable, limit: int | None):
        self.batches, self.limit, self.width = batches, limit, None

    def __iter__(self):
        seen = 0
        for images, labels in self.batches:
            if self.limit is not None and seen >= self.limit:
                return
            labels = np.asarray(labels)
            if labels.ndim == 2:
                self.width = labels.shape[-1]
            take = len(labels) if self.limit is None else min(len(labels), self.limit - seen)
            seen += take
            yield np.asarray(images)[:take], labels[:take]


def _features(encoder: keras.Model, data, limit: int | None, side: str) -> tuple[np.ndarray, np.ndarray, int | None]:
    if len(encoder.outputs) != 1 or len(encoder.outputs[0].shape) != 2:
        shapes = ", ".join(str(tuple(o.shape)) for o in encoder.outputs)
        raise KzooError(f"knn: the encoder must output one (batch, features) tensor, got {shapes}")
    capped = _Capped(getattr(data, "dataset", data), limit)  # a DataBundle or plain batches
    try:
        features, labels = predict_logits(encoder, capped)
    except KzooError:
        raise KzooError(f"knn: the {side} data is empty: no images to compute features of") from None
    return features, labels, capped.width or getattr(data, "num_classes", None)


def knn_accuracy(encoder: keras.Model, bank_data, query_data, k: int = 200, temperature: float = 0.1,
                 limit: int | None = None) -> dict:
    """kNN top-1 (and top-5 with more than 5 classes, else None) of `encoder`'s features: each query
    image classified by its neighbours among the bank images (knn_predict). `bank_data`/`query_data`
    are `(images, labels)` batches (labels integer or one-hot; tf.data, a list, or a kzoo DataBundle);
    `limit` caps the images read from each. Returns `{"top1", "top5", "bank", "queries"}` (counts).

    Example:
        >>> knn_accuracy(encoder, train.dataset, test.dataset, k=200, limit=10000)["top1"]  # doctest: +SKIP
    """
    bank, bank_labels, bank_width = _features(encoder, bank_data, limit, "bank")
    queries, query_labels, query_width = _features(encoder, query_data, limit, "query")
    num_classes = max(bank_width or 0, query_width or 0, int(bank_labels.max()) + 1, int(query_labels.max()) + 1)
    scores = ops.convert_to_numpy(knn_predict(bank, bank_labels, queries, num_classes, k=k, temperature=temperature))
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = order[:, :5] == query_labels[:, None]
    return {"top1": float(np.mean(hits[:, 0])),
            "top5": float(np.mean(hits.any(axis=1))) if num_classes > 5 else None,
            "bank": len(bank), "queries": len(queries)}


def _local_copy(model: keras.Model) -> keras.Model:
    """`model` with its weights on this process alone (a job's variables span every process)."""
    with distributed.undistributed():
        copy = keras.models.clone_model(model)
        copy.set_weights(model.get_weights())
    return copy


class KNNMonitor(keras.callbacks.Callback):
    """Puts the kNN accuracy of `encoder` (knn_accuracy) into the epoch logs as `knn_top1` (and
    `knn_top5` with more than 5 classes), so a CSV logger placed after it records them.

    It measures at the end of the first epoch of each fit (so a CSV logger, which fixes its columns
    at its first row, has the columns), of every `every`-th epoch, and of the fit's last epoch
    (also one a time budget or early stopping ends).
    `bank_data`/`query_data` are read again at each measurement: pass re-iterable data (a tf.data
    pipeline, a list), not a generator. `encoder` shares its weights with the model being fitted.

    Example:
        >>> monitor = KNNMonitor(encoder, train_plain.dataset, test.dataset, every=5)  # doctest: +SKIP
        >>> model.fit(ds, epochs=100, callbacks=[monitor, CSVLogger("log.csv")])  # doctest: +SKIP
    """

    def __init__(self, encoder: keras.Model, bank_data, query_data, every: int = 1, k: int = 200,
                 temperature: float = 0.1, limit: int | None = None):
        super().__init__()
        if not isinstance(every, int) or every < 1:
            raise KzooError(f"KNNMonitor: every must be an int >= 1, got {every!r}")
        self.encoder, self.bank_data, self.query_data = encoder, bank_data, query_data
        self.every, self.k, self.temperature, self.limit = every, k, temperature, limit
        self._first = True

    def on_train_begin(self, logs=None):
        self._first = True

    def _measure(self) -> dict:
        if distributed.process_count() == 1:
            return knn_accuracy(self.encoder, self.bank_data, self.query_data, k=self.k,
                                temperature=self.temperature, limit=self.limit)
        with distributed.undistributed():
            return knn_accuracy(_local_copy(self.encoder), self.bank_data, self.query_data, k=self.k,
                                temperature=self.temperature, limit=self.limit)

    def on_epoch_end(self, epoch, logs=None):
        # stop_training: a --budget-minutes run (or early stopping) ends here, so this is its last epoch.
        last = epoch + 1 == (self.params or {}).get("epochs") or getattr(self.model, "stop_training", False)
        if not (self._first or (epoch + 1) % self.every == 0 or last):
            return
        self._first = False
        # Process 0 of a job measures and tells the others, so every process logs the same figures.
        result = distributed.on_chief(self._measure, "measuring the kNN accuracy")
        logs = {} if logs is None else logs
        logs["knn_top1"] = result["top1"]
        if result["top5"] is not None:
            logs["knn_top5"] = result["top5"]
        top5 = f", top-5 {result['top5']:.2%}" if result["top5"] is not None else ""
        log.info("epoch %d: kNN (k=%d) top-1 %.2f%%%s (%d bank, %d query images)", epoch + 1,
                 min(self.k, result["bank"]), 100 * result["top1"], top5, result["bank"], result["queries"])
