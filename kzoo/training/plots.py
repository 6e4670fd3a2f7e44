"""Figures a person would rather look at than read: training curves and confusion matrices."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: Sequence[dict[str, float]], path: str, title: str = "") -> None:
    """Learning rate, train/val loss and train/val top-1 per epoch, side by side, saved to `path`.

    Example:
        >>> plot_curves([{"epoch": 0, "loss": 2.0, "val_loss": 1.9, "accuracy": 0.2,
        ...               "val_accuracy": 0.25, "lr": 1e-3}], "/tmp/curves.png")
    """
    plt = _pyplot()
    epochs = [row["epoch"] + 1 for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [
        ("learning rate", [("lr", "lr")]),
        ("loss", [("loss", "train"), ("val_loss", "val")]),
        ("top-1 accuracy", [("accuracy", "train"), ("val_accuracy", "val")]),
    ]
    for ax, (label, series) in zip(axes, panels):
        for key, name in series:
            values = [row.get(key, np.nan) for row in history]
            if not np.all(np.isnan(values)):
                ax.plot(epochs, values, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str, title: str = "") -> None:
    """Row-normalised confusion matrix (true class per row) with counts in the cells."""
    plt = _pyplot()
    n = len(class_names)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), class_names, rotation=90 if n > 10 else 45, ha="right", fontsize=8)
    ax.set_yticks(range(n), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 20:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(title or "confusion matrix (rows normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
