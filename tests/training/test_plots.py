"""The confusion-matrix figure stays readable from 10 to 1000 classes, long class names included."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from kzoo.errors import KzooError
from kzoo.training.plots import MAX_LABEL_CHARS, confusion_figure, plot_confusion, short_label

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _matrix(n: int) -> np.ndarray:
    rng = np.random.default_rng(n)
    matrix = rng.integers(0, 5, (n, n))
    matrix[np.arange(n), np.arange(n)] += 60
    return matrix


def _long_names(n: int) -> list[str]:
    # 40 characters each, distinct in the first characters as folder names usually are
    return [f"{i:03d}_a_rather_long_image_folder_class_nm" for i in range(n)]


def _labels(fig):
    ax = fig.axes[0]
    return ([t for t in ax.get_xticklabels() if t.get_visible() and t.get_text()],
            [t for t in ax.get_yticklabels() if t.get_visible() and t.get_text()])


def _overlapping(texts, renderer) -> list[tuple[str, str]]:
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    return [(a, b) for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2)
            if min(box_a.x1, box_b.x1) > max(box_a.x0, box_b.x0) and min(box_a.y1, box_b.y1) > max(box_a.y0, box_b.y0)]


def test_png_grows_with_the_number_of_classes(tmp_path):
    sizes = {}
    for n, names in [(10, CIFAR), (50, _long_names(50))]:
        path = tmp_path / f"c{n}.png"
        plot_confusion(_matrix(n), names, str(path), title="model: top-1 50%")
        sizes[n] = Image.open(path).size
    assert sizes[10] == (715, 715)  # the 10-class figure is as before
    # 5x the classes: far more pixels, at least 20 px (0.18 in at 110 dpi) per cell
    assert sizes[50][0] > 1.8 * sizes[10][0] and sizes[50][0] / 50 > 20


def test_fifty_long_names_are_cut_legible_and_do_not_overlap():
    names = _long_names(50)
    fig = confusion_figure(_matrix(50), names)
    renderer = fig.canvas.get_renderer()
    xs, ys = _labels(fig)
    assert len(xs) == len(ys) == 50  # every class labelled
    expected = [name[:MAX_LABEL_CHARS - 1] + "…" for name in names]
    assert [t.get_text() for t in xs] == expected and [t.get_text() for t in ys] == expected
    assert all(t.get_fontsize() >= 8 for t in xs + ys)
    assert _overlapping(xs, renderer) == [] and _overlapping(ys, renderer) == []
    # labels are inside the figure, not cut off at its edge
    page = fig.bbox
    for t in xs + ys:
        box = t.get_window_extent(renderer)
        assert box.x0 >= page.x0 and box.y0 >= page.y0 and box.x1 <= page.x1 and box.y1 <= page.y1
    assert len(fig.axes[0].texts) == 0  # 2500 per-cell counts would be noise: none drawn


def test_thousand_classes_label_every_kth_and_say_so():
    fig = confusion_figure(_matrix(1000), [f"n{i:08d} tench, Tinca tinca" for i in range(1000)], title="resnet50")
    renderer = fig.canvas.get_renderer()
    assert max(fig.get_size_inches()) <= 24  # capped: 2640 px at 110 dpi
    xs, ys = _labels(fig)
    ticks = fig.axes[0].get_yticks()
    step = int(ticks[1] - ticks[0])
    assert 1 < step < 20 and len(ys) == len(range(0, 1000, step)) and np.all(np.diff(ticks) == step)
    assert ys[1].get_text() == f"n{step:08d} tench, Tinca tinca"[:MAX_LABEL_CHARS - 1] + "…"
    assert f"every {step}th labelled" in fig.axes[0].get_title() and "resnet50" in fig.axes[0].get_title()
    assert all(t.get_fontsize() >= 8 for t in xs + ys)
    assert _overlapping(xs, renderer) == [] and _overlapping(ys, renderer) == []


def test_ten_classes_keep_the_cifar_look():
    matrix = _matrix(10)
    fig = confusion_figure(matrix, CIFAR, title="resnet20")
    ax = fig.axes[0]
    assert tuple(fig.get_size_inches()) == (6.5, 6.5)
    assert [t.get_text() for t in ax.get_xticklabels()] == CIFAR
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    assert [t.get_text() for t in ax.texts] == [str(v) for v in matrix.ravel()]  # counts in the cells
    assert ax.get_title() == "resnet20"


def test_short_label_and_bad_matrix():
    assert short_label("cat") == "cat" and short_label("x" * MAX_LABEL_CHARS) == "x" * MAX_LABEL_CHARS
    assert short_label("x" * (MAX_LABEL_CHARS + 1)) == "x" * (MAX_LABEL_CHARS - 1) + "…"
    with pytest.raises(KzooError, match="3 class names") as err:
        confusion_figure(np.zeros((4, 4)), ["a", "b", "c"])
    assert "\n" not in str(err.value)
