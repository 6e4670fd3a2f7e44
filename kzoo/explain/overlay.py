"""Rendering heatmaps: an overlay on the image, an (original | overlay) panel, and an
(image | heatmap | overlay) grid figure.

Model inputs are often tiny (32x32 for CIFAR), so everything written to a file is first upsampled
to at least `MIN_SIDE` pixels on its short side: the image with Lanczos (sharp, no blocky pixels),
the heatmap bilinearly (smooth, it is a coarse map anyway). Larger inputs are never shrunk.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kzoo.errors import KzooError

# Short side, in pixels, of what `kzoo explain` writes: big enough to see a 32x32 image's details.
MIN_SIDE = 256


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


def upsampled_size(shape: tuple[int, int], min_side: int = MIN_SIDE) -> tuple[int, int]:
    """(height, width) scaled up, aspect kept, so the short side is at least `min_side`; never smaller.

    Example:
        >>> upsampled_size((32, 48))
        (256, 384)
        >>> upsampled_size((224, 224))
        (256, 256)
        >>> upsampled_size((300, 400))
        (300, 400)
    """
    height, width = int(shape[0]), int(shape[1])
    short = min(height, width)
    if short >= min_side or short < 1:
        return height, width
    # The short side is set exactly: scaling it by a float ratio could round to min_side +- 1.
    if height <= width:
        return min_side, max(min_side, round(width * min_side / height))
    return max(min_side, round(height * min_side / width)), min_side


def upsample_image(image, min_side: int = MIN_SIDE) -> np.ndarray:
    """(H, W, C) pixels -> uint8 RGB with the short side at least `min_side` (Lanczos; never shrinks).

    Example:
        >>> upsample_image(np.zeros((32, 32, 3))).shape
        (256, 256, 3)
    """
    image = _to_uint8_rgb(image)
    size = upsampled_size(image.shape[:2], min_side)
    if size == image.shape[:2]:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), Image.LANCZOS))


def original_and_overlay(image, heatmap, alpha: float = 0.4, cmap: str = "jet",
                         min_side: int = MIN_SIDE) -> np.ndarray:
    """The image and its heatmap overlay side by side, (H', 2 W', 3) uint8, upsampled to `min_side`.

    The left half is the upsampled image, the right half `overlay` of it with the heatmap resized
    bilinearly straight from its own resolution (one resize, so no blur is compounded).

    Example:
        >>> original_and_overlay(np.zeros((32, 32, 3)), np.ones((8, 8))).shape
        (256, 512, 3)
    """
    big = upsample_image(image, min_side)
    return np.concatenate([big, overlay(big, heatmap, alpha, cmap)], axis=1)


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
    min_side: int = MIN_SIDE,
):
    """A figure with one row per image: image | heatmap | overlay, titled with predicted and true class.

    Each tile is upsampled to `min_side` pixels on its short side first, as `original_and_overlay`
    does, so small inputs show smooth instead of as blocks. Saves a PNG to `path` if given (and
    closes the figure); returns the figure otherwise.

    Example:
        >>> heatmap_grid(np.zeros((2, 32, 32, 3)), np.zeros((2, 8, 8)), "/tmp/grid.png")  # doctest: +SKIP
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

    dpi = 100
    # Tiles as large as the upsampled image (plus room for a caption), so it is not shrunk back.
    tile = max(2.5, min_side / dpi + 0.35)
    height = tile * n + (0.4 if title else 0)
    fig, axes = plt.subplots(n, 3, figsize=(3 * tile, height), squeeze=False)
    for i in range(n):
        image = upsample_image(images[i], min_side)
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
    # tight_layout does not always clear the suptitle (it overlapped the first row's titles with 8
    # rows): keep the title's 0.4 inch out of the tiles' area.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / height) if title else None)
    if path is None:
        return fig
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
