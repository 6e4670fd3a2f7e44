"""Two-view augmentation for contrastive pretraining (SimCLR, Chen et al. 2020).

`TwoViews` stacks the batch on itself; every per-image augmentation after it then draws its
own parameters for each copy, so image i comes out as two independent views. kzoo's layout:
rows [0, B) are view 1, rows [B, 2B) view 2, row B + i the second view of row i (what
`kzoo.selfsup.SimCLR` splits for `kzoo.losses.nt_xent`). Labels are duplicated the same way.
"""

from __future__ import annotations

import keras

from kzoo.augment import _rng
from kzoo.augment.base import BatchAugmentation, Compose
from kzoo.augment.color import ColorJitter, grayscale
from kzoo.augment.geometric import RandomFlip, RandomResizedCrop, select


@keras.saving.register_keras_serializable(package="kzoo")
class TwoViews(BatchAugmentation):
    """Doubles the batch: images [x; x] and labels [y; y] along axis 0 (view 1, then view 2).

    Deterministic itself; put per-image random layers after it (see `simclr_views`).

    Example:
        >>> TwoViews()(keras.ops.zeros((4, 8, 8, 3))).shape
        (8, 8, 8, 3)
    """

    def augment(self, F, images, labels, key):
        images = F.concatenate([images, images], axis=0)
        labels = None if labels is None else F.concatenate([labels, labels], axis=0)
        return images, labels

    def compute_output_spec(self, data, *args, **kwargs):
        def doubled(x, dtype):
            batch = None if x.shape[0] is None else 2 * x.shape[0]
            return keras.KerasTensor((batch,) + tuple(x.shape[1:]), dtype=dtype)

        if not isinstance(data, dict):
            return doubled(data, data.dtype)
        out = {k: keras.KerasTensor(v.shape, dtype=v.dtype) for k, v in data.items()}
        out["images"] = doubled(data["images"], data["images"].dtype)
        if "labels" in data:
            out["labels"] = doubled(data["labels"], "float32")
        return out


@keras.saving.register_keras_serializable(package="kzoo")
class RandomGrayscale(BatchAugmentation):
    """Replaces each image, with probability `p`, by its luma (`color.grayscale`, PIL's
    weights) repeated over the 3 channels, unrounded (torchvision's RandomGrayscale on floats).

    Example:
        >>> RandomGrayscale(p=0.2, seed=0)(keras.ops.zeros((4, 8, 8, 3))).shape
        (4, 8, 8, 3)
    """

    def __init__(self, p: float = 0.2, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.p = float(p)

    def augment(self, F, images, labels, key):
        apply = _rng.bernoulli(F, key, 1, (F.shape(images)[0],), self.p)
        gray = F.repeat(grayscale(images, F), 3, axis=-1)
        return select(F, apply, gray, images), labels

    def get_config(self):
        return {**super().get_config(), "p": self.p}


def blur_kernel_size(height: int, kernel_fraction: float = 0.1) -> int:
    """The odd Gaussian kernel size for images `height` pixels high: SimCLR's `height // 10`
    made odd upwards (2 * (k // 2) + 1), at least 3.

    Example:
        >>> blur_kernel_size(224), blur_kernel_size(64), blur_kernel_size(32)
        (23, 7, 3)
    """
    # The epsilon: a product just below an integer (0.29 * 100 = 28.999999999999996) must not
    # lose a pixel to float rounding; with 0.1 it matches SimCLR's integer height // 10.
    return 2 * max(1, int(kernel_fraction * height + 1e-6) // 2) + 1


@keras.saving.register_keras_serializable(package="kzoo")
class RandomGaussianBlur(BatchAugmentation):
    """Blurs each image, with probability `p`, by a Gaussian whose sigma (in pixels) is drawn
    per image uniformly in `sigma`; the kernel is `blur_kernel_size(H, kernel_fraction)` taps
    per axis (SimCLR: 10% of the side), separable, with reflect padding (d c b | a b c d, the
    edge not repeated: numpy's and torchvision's "reflect").

    Example:
        >>> RandomGaussianBlur(p=0.5, seed=0)(keras.ops.zeros((4, 64, 64, 3))).shape
        (4, 64, 64, 3)
    """

    def __init__(self, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0), kernel_fraction: float = 0.1,
                 seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.p, self.kernel_fraction = float(p), float(kernel_fraction)
        self.sigma = tuple(float(s) for s in sigma)

    def augment(self, F, images, labels, key):
        _, height, width, _ = images.shape
        # Reflect padding needs the radius below the side; only tiny images are clamped.
        radius = min(blur_kernel_size(height, self.kernel_fraction) // 2, height - 1, width - 1)
        if radius < 1:
            return images, labels
        batch = F.shape(images)[0]
        u = _rng.uniform(F, key, 1, (2, batch))
        sigma = self.sigma[0] + u[1] * (self.sigma[1] - self.sigma[0])
        # Images not picked get sigma 0, clamped to 1e-3: every off-centre tap underflows to
        # exactly 0, a delta kernel, so they come out bit for bit unchanged with no second select.
        sigma = F.maximum(F.where(F.less(u[0], self.p), sigma, 0.0), 1e-3)
        offsets = F.arange(-radius, radius + 1, dtype="float32")[None, :]
        taps = F.exp(-(offsets * offsets) / (2.0 * sigma[:, None] * sigma[:, None]))
        taps = taps / F.sum(taps, axis=1, keepdims=True)  # (B, k): normalised per image
        x = _blur_axis(F, images, taps, radius, axis=2)
        return _blur_axis(F, x, taps, radius, axis=1), labels

    def get_config(self):
        return {**super().get_config(), "p": self.p, "sigma": self.sigma, "kernel_fraction": self.kernel_fraction}


def _blur_axis(F, images, taps, radius: int, axis: int):
    """Per-image 1-D convolution along `axis` (1: rows, 2: columns) as a sum of k shifted slices
    of the reflect-padded batch: k multiply-adds per pixel, cheaper than a (B, W, W) matmul for
    SimCLR's kernels, and a loop over taps, not over images."""
    pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
    pad[axis] = [radius, radius]
    padded = F.pad(images, pad, mode="reflect")
    size = images.shape[axis]
    total = None
    for j in range(2 * radius + 1):
        window = padded[:, j:j + size] if axis == 1 else padded[:, :, j:j + size]
        term = F.reshape(taps[:, j], (-1, 1, 1, 1)) * window
        total = term if total is None else total + term
    return total


def simclr_views(image_size: tuple[int, int], seed: int | None = None, blur: bool | None = None) -> Compose:
    """SimCLR's augmentation as one layer: a batch of B images in, 2B views out ([view 1;
    view 2], labels duplicated). Per view: random resized crop (area 0.08-1), horizontal flip,
    colour jitter with probability 0.8 at strength 0.5 (brightness, contrast, saturation 0.4,
    hue 0.1: SimCLR's CIFAR-10 setting), grayscale with probability 0.2, and, above 32x32
    (`blur=None`; True/False forces it), Gaussian blur with probability 0.5, sigma 0.1-2.0.

    Jitter order is fixed (brightness, contrast, saturation, hue; torchvision shuffles it).

    Example:
        >>> aug = simclr_views((64, 64), seed=0)
        >>> aug({"images": keras.ops.zeros((4, 64, 64, 3)), "labels": keras.ops.eye(4)})["images"].shape
        (8, 64, 64, 3)
    """
    if blur is None:
        # SimCLR's CIFAR recipe drops the blur: at 32x32 a 3-tap kernel mostly destroys detail.
        blur = int(image_size[0]) > 32 or int(image_size[1]) > 32
    layers = [
        TwoViews(),
        RandomResizedCrop(scale=(0.08, 1.0)),
        RandomFlip("horizontal"),
        ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),
        RandomGrayscale(0.2),
    ]
    if blur:
        layers.append(RandomGaussianBlur(0.5))
    return Compose(layers, seed=seed, name="simclr")
