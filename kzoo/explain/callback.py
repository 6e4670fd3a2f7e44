"""`HeatmapCallback`: a grid of heatmaps of fixed validation images after every epoch."""

from __future__ import annotations

import os
from typing import Sequence

import keras
import numpy as np

from kzoo.errors import KzooError


class HeatmapCallback(keras.callbacks.Callback):
    """Saves `out_dir/heatmaps-epoch{NNN}.png` (image | heatmap | overlay per image) every `every` epochs.

    Args:
        images: (N, H, W, C) pixels as the model takes them (keep N small, e.g. 4-8).
        out_dir: directory for the PNGs (created).
        every: save after every `every`-th epoch.
        labels: optional true class indices (or one-hot rows) shown in the titles.
        class_names: optional names for the class indices.
        method, layer: as in `kzoo.explain.grad_cam`.

    Example:
        >>> cb = HeatmapCallback(x_val[:6], "runs/demo/heatmaps", labels=y_val[:6])  # doctest: +SKIP
        >>> model.fit(x, y, callbacks=[cb])  # doctest: +SKIP
    """

    def __init__(
        self,
        images,
        out_dir: str,
        every: int = 1,
        labels: Sequence[int] | None = None,
        class_names: Sequence[str] | None = None,
        method: str = "gradcam",
        layer: str | None = None,
    ):
        super().__init__()
        self.images = np.asarray(images, "float32")
        if self.images.ndim != 4:
            raise KzooError(f"HeatmapCallback: images must be (N, H, W, C), got shape {self.images.shape}")
        if not isinstance(every, int) or every < 1:
            raise KzooError(f"HeatmapCallback: every must be an int >= 1, got {every!r}")
        if labels is not None:
            labels = np.asarray(labels)
            labels = labels.argmax(axis=-1) if labels.ndim == 2 else labels.astype(int)
        self.labels = labels
        self.out_dir = out_dir
        self.every = every
        self.class_names = class_names
        self.method = method
        self.layer = layer
        self.paths: list[str] = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        from kzoo.explain.cam import explain
        from kzoo.explain.overlay import heatmap_grid

        result = explain(self.model, self.images, layer=self.layer, method=self.method)
        probs = _softmax(result.logits)
        os.makedirs(self.out_dir, exist_ok=True)
        path = os.path.join(self.out_dir, f"heatmaps-epoch{epoch + 1:03d}.png")
        heatmap_grid(
            self.images, result.heatmaps, path,
            predicted=result.class_index, probabilities=probs[np.arange(len(probs)), result.class_index],
            labels=self.labels, class_names=self.class_names, title=f"epoch {epoch + 1} ({result.layer})",
        )
        self.paths.append(path)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
