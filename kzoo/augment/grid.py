"""A picture of a batch before and after augmentation (`kzoo augment-grid`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kzoo.errors import KzooError


def make_grid(rows: list[np.ndarray], scale: int = 1, gap: int = 2) -> np.ndarray:
    """Tiles rows of images ((N, H, W, 3) each, [0, 255]) into one uint8 picture."""
    n, height, width, _ = rows[0].shape
    cell_h, cell_w = height * scale + gap, width * scale + gap
    canvas = np.full((len(rows) * cell_h + gap, n * cell_w + gap, 3), 255, np.uint8)
    for r, images in enumerate(rows):
        images = np.clip(np.rint(np.asarray(images, np.float32)), 0, 255).astype(np.uint8)
        if scale > 1:
            images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        for i, image in enumerate(images):
            top, left = gap + r * cell_h, gap + i * cell_w
            canvas[top:top + height * scale, left:left + width * scale] = image
    return canvas


def augment_grid(
    data: str | os.PathLike | None,
    augment: str,
    out: str | os.PathLike,
    *,
    num_images: int = 8,
    num_augmented: int = 3,
    image_size: tuple[int, int] = (32, 32),
    seed: int = 0,
) -> Path:
    """Writes a PNG: the first row holds `num_images` images from the `data` source's train
    split, each next row the same batch through preset `augment` with another seed.

    Small images are enlarged (nearest neighbour) to about 96 pixels so the effect is visible.
    Mixed labels are not drawn: CutMix/MixUp partners come from the same batch.

    Example:
        >>> augment_grid("../shared/data/cifar10-jpg.tar.gz", "strong", "grid.png")  # doctest: +SKIP
        PosixPath('grid.png')
    """
    from keras import ops
    from PIL import Image

    from kzoo.augment.presets import get_preset
    from kzoo.data import to_numpy

    images, labels, class_names = to_numpy(data, "train", image_size, limit=num_images, seed=seed)
    if len(images) == 0:
        raise KzooError(f"augment-grid: the train split of {data} has no images")
    layer = get_preset(augment, num_classes=len(class_names), image_size=tuple(image_size), seed=seed)
    before = images.astype(np.float32)
    rows = [before]
    if layer is not None:
        one_hot = np.eye(len(class_names), dtype=np.float32)[labels]
        for i in range(num_augmented):
            batch = layer({"images": ops.convert_to_tensor(before), "labels": ops.convert_to_tensor(one_hot)},
                          seed=seed * 1000 + i)
            rows.append(np.asarray(ops.convert_to_numpy(batch["images"])))
    scale = max(1, 96 // max(image_size))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(make_grid(rows, scale=scale)).save(out)
    return out
