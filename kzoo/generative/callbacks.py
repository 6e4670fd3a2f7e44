"""What a GAN run records besides its losses: sample grids of fixed noise (one PNG per epoch and
an animated GIF), FID/KID against a fixed set of real images, and a latent interpolation figure.

Both callbacks read the GAN at an epoch's end, where Keras has written the training state back
to the variables under every backend."""

from __future__ import annotations

import glob
import logging
import os
from typing import Any

import keras
import numpy as np

from kzoo.errors import KzooError
from kzoo.generative.metrics import FeatureExtractor, frechet_distance, feature_statistics, kernel_inception_distance
from kzoo.generative.networks import to_pixels

log = logging.getLogger("kzoo.generative")


def image_grid(images: np.ndarray, columns: int) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images into one (rows * (H + 1) + 1, columns * (W + 1) + 1, C) picture
    with 1-pixel gaps, filled row by row.

    Example:
        >>> image_grid(np.zeros((6, 4, 4, 3), "uint8"), columns=3).shape
        (11, 16, 3)
    """
    n, h, w, c = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + 1) + 1, columns * (w + 1) + 1, c), 255, dtype="uint8")
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + col * (w + 1):1 + col * (w + 1) + w] = image
    return grid


def save_png(array: np.ndarray, path: str, scale: int = 1) -> None:
    """Write a uint8 (H, W, 3) array as a PNG via a temporary file and an atomic rename."""
    from PIL import Image

    image = Image.fromarray(array)
    if scale > 1:  # nearest: 32x32 samples stay sharp when enlarged
        image = image.resize((array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST)
    tmp = f"{path}.tmp.png"
    image.save(tmp)
    os.replace(tmp, path)


def uint8_pixels(images: Any) -> np.ndarray:
    """Generator output in [-1, 1] as uint8 pixels (rounded)."""
    return np.round(keras.ops.convert_to_numpy(to_pixels(images))).astype("uint8")


class SampleGrid(keras.callbacks.Callback):
    """Every `every` epochs, draw the GAN's samples of one fixed noise batch as a grid
    (`folder/epoch_NNNN.png`, epochs counted from 1); at the end of training, `gif` animates every
    grid in `folder` (a resumed run's earlier grids included), one frame per saved epoch.

    Example:
        >>> grid = SampleGrid(noise, "runs/gan/samples", gif="runs/gan/samples.gif")  # doctest: +SKIP
        >>> gan.fit(ds, epochs=20, callbacks=[grid])  # doctest: +SKIP
    """

    def __init__(self, noise: np.ndarray, folder: str, gif: str | None = None, every: int = 1, scale: int = 2):
        super().__init__()
        if every < 1:
            raise KzooError(f"SampleGrid: every must be >= 1, got {every}")
        self.noise, self.folder, self.gif, self.every, self.scale = np.asarray(noise), folder, gif, every, scale
        self.columns = int(np.ceil(np.sqrt(len(self.noise))))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        last = epoch + 1 == (self.params or {}).get("epochs") or self.model.stop_training
        if (epoch + 1) % self.every and not last:
            return
        os.makedirs(self.folder, exist_ok=True)
        grid = image_grid(uint8_pixels(self.model.sample(self.noise)), self.columns)
        save_png(grid, os.path.join(self.folder, f"epoch_{epoch + 1:04d}.png"), self.scale)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.gif:
            write_gif(sorted(glob.glob(os.path.join(self.folder, "epoch_*.png"))), self.gif)


def write_gif(frames: list[str], path: str, seconds_per_frame: float = 0.4) -> None:
    """Animate PNG files into a looping GIF (the last frame held 2 s); nothing is written without frames."""
    from PIL import Image

    if not frames:
        return
    images = [Image.open(frame).convert("RGB") for frame in frames]
    durations = [int(seconds_per_frame * 1000)] * (len(images) - 1) + [2000]
    tmp = f"{path}.tmp.gif"
    images[0].save(tmp, save_all=True, append_images=images[1:], duration=durations, loop=0)
    os.replace(tmp, path)


class GanScores(keras.callbacks.Callback):
    """Puts `fid`, `kid` and `kid_std` of the GAN's samples into the epoch logs, measured against
    fixed real features with `extractor`, at the first epoch of each fit (so a CSV logger after it
    gets the columns), every `every`-th epoch and the fit's last one. The generated images come
    from a fixed noise seed, so two epochs differ only by the generator.

    Example:
        >>> scores = GanScores(extractor, real_features, every=5, images=5000)  # doctest: +SKIP
    """

    def __init__(self, extractor: FeatureExtractor, real_features: np.ndarray, every: int = 1, images: int = 5000,
                 seed: int = 0, kid_subsets: int = 100, kid_subset_size: int = 1000):
        super().__init__()
        self.extractor, self.real = extractor, np.asarray(real_features, dtype="float64")
        self.real_stats = feature_statistics(self.real)
        self.every, self.images, self.seed = every, images, seed
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self._first = True

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._first = True

    def scores(self) -> dict[str, float]:
        """FID, KID mean and KID std of `images` samples of the model (the GAN being fitted)."""
        fakes = self.model.generate(self.images, seed=self.seed)
        features = self.extractor.features(to_pixels(fakes))
        mu, sigma = feature_statistics(features)
        kid, kid_std = kernel_inception_distance(self.real, features, subsets=self.kid_subsets,
                                                 subset_size=self.kid_subset_size, seed=self.seed)
        return {"fid": frechet_distance(*self.real_stats, mu, sigma), "kid": kid, "kid_std": kid_std}

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        last = epoch + 1 == (self.params or {}).get("epochs") or self.model.stop_training
        if not (self._first or (epoch + 1) % self.every == 0 or last):
            return
        self._first = False
        result = self.scores()
        if logs is not None:
            logs.update(result)
        log.info("epoch %d: %s FID %.2f  KID %.4f +- %.4f (%d generated vs %d real images)", epoch + 1,
                 self.extractor.name, result["fid"], result["kid"], result["kid_std"], self.images, len(self.real))


def interpolation_figure(gan: Any, path: str, rows: int = 6, steps: int = 10, seed: int = 0) -> None:
    """Save `rows` walks through the latent space, each `steps` images along the great circle
    (spherical interpolation, which keeps a Gaussian vector's norm) between two noise vectors.

    Example:
        >>> interpolation_figure(gan, "runs/gan/interpolation.png")  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    ends = rng.standard_normal((2, rows, gan.latent_dim))
    a, b = ends / np.linalg.norm(ends, axis=-1, keepdims=True)
    omega = np.arccos(np.clip(np.sum(a * b, axis=-1, keepdims=True), -1.0, 1.0))  # (rows, 1)
    t = np.linspace(0.0, 1.0, steps)[:, None, None]  # (steps, 1, 1)
    unit = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.maximum(np.sin(omega), 1e-8)
    norms = (1 - t) * np.linalg.norm(ends[0], axis=-1, keepdims=True) + t * np.linalg.norm(ends[1], axis=-1,
                                                                                       keepdims=True)
    noise = np.transpose(unit * norms, (1, 0, 2)).reshape(rows * steps, gan.latent_dim).astype("float32")
    save_png(image_grid(uint8_pixels(gan.sample(noise)), steps), path, scale=2)
