"""The model behind `kzoo serve`: loaded once (safe mode), warmed up, fed in padded micro-batches."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from typing import Any

import numpy as np

from kzoo.errors import KzooError

MAX_PIXELS = 40_000_000  # a 40-megapixel photo decodes; a 30,000 x 30,000 "bomb" is refused from its header


class Predictor:
    """A checkpoint ready to answer: `predict(images) -> probabilities`, `explain(image) -> PNG`.

    Batches are padded to the next power of two (at most `max_batch`), so the model compiles a
    handful of shapes instead of one per batch size; the shapes 1 and `max_batch` are compiled at
    start-up. One lock serialises model calls: the micro-batcher is the concurrency.

    Example:
        >>> predictor = Predictor("runs/r18/best.keras")  # doctest: +SKIP
        >>> predictor.predict(predictor.decode(open("cat.png", "rb").read())[None]).shape  # doctest: +SKIP
        (1, 10)
    """

    def __init__(self, checkpoint: str, max_batch: int = 32, warm_up: bool = True):
        from kzoo.explain.commands import read_class_names
        from kzoo.training.api import load_checkpoint
        from kzoo.training.evaluation import num_classes
        from kzoo.weights.preprocessing import get_preprocessing

        started = time.perf_counter()
        self.checkpoint = checkpoint
        self.model = load_checkpoint(checkpoint)
        shape = self.model.input_shape[0] if isinstance(self.model.input_shape, list) else self.model.input_shape
        if None in shape[1:]:
            raise KzooError(f"{checkpoint} takes images of any size; kzoo serve needs a model with a fixed input size")
        self.input_shape = tuple(int(s) for s in shape[1:])
        self.num_classes = num_classes(self.model)
        self.class_names = read_class_names(checkpoint, num_classes=self.num_classes)
        self.preprocessing = get_preprocessing(self.model)
        self.max_batch = max_batch
        self._lock = threading.Lock()
        if warm_up:
            for n in sorted({1, _bucket(max_batch, max_batch)}):
                self.predict(np.zeros((n, *self.input_shape), np.float32))
        self.load_seconds = time.perf_counter() - started

    def decode(self, data: bytes, name: str = "upload") -> np.ndarray:
        """Image bytes -> (H, W, C) float32 pixels at the model's input size (KzooError if unreadable)."""
        from kzoo.explain.commands import load_image

        return load_image(data, self.input_shape[:2], self.input_shape[2], self.preprocessing,
                          max_pixels=MAX_PIXELS, name=name)

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W, C) pixels -> (N, classes) softmax probabilities, in padded chunks of <= max_batch."""
        from kzoo.explain.commands import _logits, _softmax

        out = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start:start + self.max_batch]
            padded = _bucket(len(chunk), self.max_batch)
            if padded > len(chunk):
                chunk = np.concatenate([chunk, np.zeros((padded - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            with self._lock:
                logits = _logits(self.model.predict_on_batch(chunk))
            out.append(_softmax(logits)[:min(self.max_batch, len(images) - start)])
        return np.concatenate(out)

    def top_k(self, probabilities: np.ndarray, k: int = 5) -> list[dict[str, Any]]:
        order = np.argsort(-probabilities)[:min(k, self.num_classes)]
        return [{"index": int(i), "name": self.class_names[i], "probability": float(probabilities[i])} for i in order]

    def explain(self, image: np.ndarray, alpha: float = 0.4) -> bytes:
        """The Grad-CAM overlay of one (H, W, C) image as PNG bytes (original | overlay)."""
        from PIL import Image

        from kzoo.explain.cam import explain
        from kzoo.explain.overlay import original_and_overlay

        with self._lock:
            heatmap = explain(self.model, image[None]).heatmaps[0]
        buffer = io.BytesIO()
        Image.fromarray(original_and_overlay(image, heatmap, alpha)).save(buffer, format="PNG")
        return buffer.getvalue()

    def card(self) -> dict[str, Any]:
        """Name, parameters, input size, classes and the run's test accuracy (metrics.json), if any."""
        metrics = {}
        path = os.path.join(os.path.dirname(os.path.abspath(self.checkpoint)), "metrics.json")
        try:
            with open(path, encoding="utf-8") as f:
                metrics = json.load(f)
        except (OSError, ValueError):
            pass
        return {"name": metrics.get("model", self.model.name), "checkpoint": os.path.basename(self.checkpoint),
                "parameters": int(self.model.count_params()), "input_shape": list(self.input_shape),
                "classes": self.class_names, "test_top1": metrics.get("top1"),
                "evaluated_on": metrics.get("evaluated_on"), "max_batch": self.max_batch,
                "load_seconds": round(self.load_seconds, 2)}


def _bucket(n: int, cap: int) -> int:
    """The next power of two >= n, at most cap."""
    return min(cap, 1 << max(0, (n - 1).bit_length()))
