"""Rendering heatmaps: an overlay on the image, and an (image | heatmap | overlay) grid figure."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kzoo.errors import KzooError


def _to_uint8_rgb(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise KzooError(f"overlay: image must be (H, W) or (H, W, C), got shape {image.shape}")
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    elif image.shape[-1] != 3:
        raise KzooError(f"overlay: image must have 1, 3 or 4 channels, got {image.shape[-1]}")
    if image.dtype != np.uint8:
        image = np.clip(np.asarray(image, "float32"), 0, 255).round().astype(np.uint8)
    return image


def colorize(heatmap, cmap: str = "jet") -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 colours of the matplotlib colormap `cmap`."""
    from matplotlib import colormaps

    try:
        colormap = colormaps[cmap]
    except KeyError:
        raise KzooError(f"overlay: unknown colormap {cmap!r}; e.g. jet, viridis, inferno, turbo") from None
    heatmap = np.clip(np.asarray(heatmap, "float32"), 0.0, 1.0)
    return (colormap(heatmap)[..., :3] * 255).round().astype(np.uint8)


def _resize(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if heatmap.shape == size:
        return heatmap
    from PIL import Image

    img = Image.fromarray(np.asarray(heatmap, "float32"), mode="F").resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(img, "float32")


def overlay(image, heatmap, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped heatmap onto an image: `(1 - alpha) * image + alpha * colours`, uint8.

    Args:
        image: (H, W, C) pixels in [0, 255] (float or uint8; grayscale and RGBA are fine).
        heatmap: (h, w) in [0, 1]; resized to the image if its size differs.
        alpha: weight of the heatmap colours.
        cmap: a matplotlib colormap name.

    Example:
        >>> overlay(np.zeros((4, 4, 3)), np.ones((4, 4))).shape
        (4, 4, 3)
    """
    if not 0.0 <= alpha <= 1.0:
        raise KzooError(f"overlay: alpha must be in [0, 1], got {alpha}")
    image = _to_uint8_rgb(image)
    heatmap = np.asarray(heatmap, "float32")
    if heatmap.ndim != 2:
        raise KzooError(f"overlay: heatmap must be (H, W), got shape {heatmap.shape}")
    colours = colorize(_resize(heatmap, image.shape[:2]), cmap)
    blended = (1.0 - alpha) * image.astype("float32") + alpha * colours.astype("float32")
    return np.clip(blended, 0, 255).round().astype(np.uint8)


def heatmap_grid(
    images,
    heatmaps,
    path: str | None = None,
    predicted: Sequence[int] | None = None,
    probabilities: Sequence[float] | None = None,
    labels: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    alpha: float = 0.4,
    cmap: str = "jet",
    title: str | None = None,
):
    """A figure with one row per image: image | heatmap | overlay, titled with predicted and true class.

    Saves a PNG to `path` if given (and closes the figure); returns the figure otherwise.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    heatmaps = np.asarray(heatmaps)
    n = len(images)
    if len(heatmaps) != n:
        raise KzooError(f"heatmap_grid: {n} images but {len(heatmaps)} heatmaps")

    def name(index):
        index = int(index)
        if class_names is not None and 0 <= index < len(class_names):
            return str(class_names[index])
        return f"class_{index}"

    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n + (0.4 if title else 0)), squeeze=False)
    for i in range(n):
        image = _to_uint8_rgb(images[i])
        caption = []
        if predicted is not None:
            text = f"pred {name(predicted[i])}"
            if probabilities is not None:
                text += f" ({float(probabilities[i]):.0%})"
            caption.append(text)
        if labels is not None:
            caption.append(f"true {name(labels[i])}")
        axes[i, 0].imshow(image)
        axes[i, 0].set_title("  ".join(caption) or "image", fontsize=8)
        axes[i, 1].imshow(_resize(heatmaps[i], image.shape[:2]), cmap=cmap, vmin=0, vmax=1)
        axes[i, 1].set_title("heatmap", fontsize=8)
        axes[i, 2].imshow(overlay(image, heatmaps[i], alpha, cmap))
        axes[i, 2].set_title("overlay", fontsize=8)
        for ax in axes[i]:
            ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
