"""Figures a person would rather look at than read: training curves and confusion matrices."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


#: plot_curves' default panels: (title, [(history key, legend label), ...]) each.
CLASSIFIER_PANELS = (
    ("learning rate", [("lr", "lr")]),
    ("loss", [("loss", "train"), ("val_loss", "val")]),
    ("top-1 accuracy", [("accuracy", "train"), ("val_accuracy", "val"), ("knn_top1", "kNN (pretraining)")]),
)


def plot_curves(history: Sequence[dict[str, float]], path: str, title: str = "",
                panels: Sequence[tuple[str, Sequence[tuple[str, str]]]] = CLASSIFIER_PANELS) -> None:
    """Learning rate, train/val loss and train/val top-1 per epoch, side by side, saved to `path`
    (a self-supervised run's kNN top-1 shares the accuracy panel); `panels` draws other series
    (a GAN's losses and FID). A series absent from `history` is left out.

    Example:
        >>> plot_curves([{"epoch": 0, "loss": 2.0, "val_loss": 1.9, "accuracy": 0.2,
        ...               "val_accuracy": 0.25, "lr": 1e-3}], "/tmp/curves.png")
    """
    plt = _pyplot()
    epochs = [row["epoch"] + 1 for row in history]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.35 * len(panels), 3.6), squeeze=False)
    for ax, (label, series) in zip(axes[0], panels):
        for key, name in series:
            # Only the epochs that have the figure: a monitor measured every N epochs gives one line.
            points = [(epoch, row[key]) for epoch, row in zip(epochs, history) if key in row]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.set_title(label)
        ax.grid(alpha=0.3)
        if len(series) > 1 and ax.get_lines():  # a self-supervised run has no accuracy unless kNN-monitored
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# Confusion-matrix layout, in inches at `_DPI`. Tick labels stay at `_TICK_FONT` pt whatever the
# class count (smaller text is what made a 50-class plot unreadable); the figure grows instead, up
# to `_MAX_SIDE_IN`, and past that only every k-th class gets a label.
_DPI = 110
_TICK_FONT = 8
_ANNOTATE_UP_TO = 20  # counts in the cells need ~0.45 in cells; beyond this they are skipped
_MAX_SIDE_IN = 24.0  # 2640 px: large enough for ~100 labels a side, small enough to open anywhere
_MIN_PITCH_IN = 0.18  # a tick label is ~0.13 in tall at 8 pt; closer than this they overlap
_CHAR_IN = 0.07  # average width of one 8 pt character
MAX_LABEL_CHARS = 20


def short_label(name: str, limit: int = MAX_LABEL_CHARS) -> str:
    """`name` cut to `limit` characters, the cut marked with an ellipsis.

    Example:
        >>> short_label("a_very_long_class_name_from_a_folder")
        'a_very_long_class_n…'
    """
    name = str(name)
    return name if len(name) <= limit else name[: limit - 1] + "…"


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str = ""):
    """The row-normalised confusion matrix (true class per row) as a matplotlib Figure, not saved.

    Up to 10 classes: a compact 6.5 in figure with counts in the cells (the CIFAR look). More
    classes: the figure grows with the count so cells and 8 pt tick labels stay legible, counts
    are dropped past 20 classes, labels longer than `MAX_LABEL_CHARS` are cut with an ellipsis,
    and when even the largest figure has no room for every label only every k-th class is
    labelled, which the title says.

    Example:
        >>> fig = confusion_figure(np.eye(3) * 5, ["cat", "dog", "bird"])
        >>> fig.savefig("/tmp/confusion.png")
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kzoo.errors import KzooError

    matrix = np.asarray(matrix)
    n = len(class_names)
    if matrix.shape != (n, n):
        raise KzooError(f"confusion matrix has shape {matrix.shape} but there are {n} class names; "
                        f"pass an ({n}, {n}) matrix")
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    labels = [short_label(name) for name in class_names]
    annotate = n <= _ANNOTATE_UP_TO
    if n <= 10:
        size = max(5.0, 0.45 * n + 2)
    else:
        cell = 0.45 if annotate else 0.22
        label_room = _CHAR_IN * max(len(label) for label in labels) + 1.2  # labels, axis titles, title
        size = min(_MAX_SIDE_IN, max(5.0, cell * n + label_room))

    # A bare Figure with its own Agg canvas: no pyplot state to leak, and the caller (or a test)
    # can measure the drawn text with fig.canvas.get_renderer().
    fig = Figure(figsize=(size, size))  # laid out at the default dpi, as before; saved at _DPI
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if annotate:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    title = title or "confusion matrix (rows normalised)"

    def label_every(step: int) -> None:
        ticks = list(range(0, n, step))
        if n <= 10:
            ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=45, ha="right", fontsize=_TICK_FONT)
        else:  # vertical and centred on the tick, so neighbours never overlap
            ax.set_xticks(ticks, [labels[t] for t in ticks], rotation=90, ha="center", fontsize=_TICK_FONT)
        ax.set_yticks(ticks, [labels[t] for t in ticks], fontsize=_TICK_FONT)
        suffix = "th" if step % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(step % 10, "th")
        note = "" if step == 1 else f"\n({n} classes: every {step}{suffix} labelled)"
        ax.set_title(title + note)
        fig.tight_layout()

    # The cell pitch is known only once tight_layout has fitted the labels: measure, then thin.
    step = 1
    label_every(step)
    for _ in range(3):
        position = ax.get_position()
        pitch = min(position.width * fig.get_figwidth(), position.height * fig.get_figheight()) / n
        needed = int(np.ceil(_MIN_PITCH_IN / pitch))
        if needed <= step:
            break
        step = needed
        label_every(step)
    return fig


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: str, title: str = "") -> None:
    """Save `confusion_figure(matrix, class_names, title)` as a PNG at `path`.

    Example:
        >>> plot_confusion(np.eye(3) * 5, ["cat", "dog", "bird"], "/tmp/confusion.png")
    """
    confusion_figure(matrix, class_names, title).savefig(path, dpi=_DPI)
