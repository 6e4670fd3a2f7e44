"""`PretrainConfig`: `kzoo pretrain`'s settings, every `kzoo train` field plus the method's own.

Keras-free (the CLI's help and argument checks import it without starting a backend)."""

from __future__ import annotations

from dataclasses import dataclass

from kzoo.errors import KzooError
from kzoo.training.config import TrainConfig

METHODS = ("simclr",)
#: Presets that yield [view 1; view 2] batches, which a contrastive method needs.
TWO_VIEW_PRESETS = ("simclr",)

PRETRAIN_HELP = {
    "method": "self-supervised method: " + ", ".join(METHODS),
    "temperature": "NT-Xent temperature (> 0; SimCLR's CIFAR-10 runs use 0.5)",
    "projection_dim": "size of the projection head's output, the embedding the loss compares",
    "hidden_dim": "hidden width of the projection head (SimCLR: 2048)",
    "knn_every": "kNN-monitor the encoder every N epochs (k=200, cosine, on the labelled train and test "
                 "splits of --data; 0 = off); the last epoch is always monitored",
    "knn_limit": "images of each split the kNN monitor uses (a seeded subset; the full 50,000-image bank "
                 "costs a minute per check on a 2-core CPU)",
}


@dataclass
class PretrainConfig(TrainConfig):
    """A `TrainConfig` (budget, schedule, EMA, resume, run directory: all as in `kzoo train`) with
    the self-supervised method's settings. Defaults follow lightly's CIFAR-10 SimCLR benchmark
    (ResNet-18, SGD lr 0.06 per 256 images, weight decay 5e-4, cosine) where kzoo's differ, and
    it runs without XLA (slower for convolutional backbones on a CPU: pass --jit-compile for a ViT).

    Example:
        >>> PretrainConfig(model="resnet18_cifar", epochs=2).validate().temperature
        0.5
    """

    model: str = "resnet18_cifar"
    out: str = "runs/pretrain"
    batch_size: int = 256
    lr: float = 0.06
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    augment: str = "simclr"
    monitor: str = "knn_top1"
    # XLA made ResNet-18 SimCLR 1.6x slower on the 2-core CPU (22 vs 36 pairs/s; docs/benchmarks.md).
    jit_compile: bool = False
    method: str = "simclr"
    temperature: float = 0.5
    projection_dim: int = 128
    hidden_dim: int = 2048
    knn_every: int = 1
    knn_limit: int | None = 10000

    def validate(self) -> PretrainConfig:
        """TrainConfig's checks plus the method's; a one-line KzooError names the first bad field."""
        super().validate()
        if self.method not in METHODS:
            raise KzooError(f"--method {self.method!r} is not supported: choose one of {', '.join(METHODS)}")
        if not self.temperature > 0:
            raise KzooError(f"--temperature must be > 0, got {self.temperature}")
        for flag in ("projection_dim", "hidden_dim"):
            if getattr(self, flag) < 1:
                raise KzooError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(self, flag)}")
        if self.knn_every < 0 or (self.knn_limit is not None and self.knn_limit < 1):
            raise KzooError(f"--knn-every must be >= 0 and --knn-limit >= 1, got {self.knn_every}, {self.knn_limit}")
        if self.augment not in TWO_VIEW_PRESETS:
            raise KzooError(f"--augment {self.augment!r} makes one view per image; {self.method} compares two: "
                            f"use {' or '.join(TWO_VIEW_PRESETS)}")
        if self.augmix_jsd or self.val_split or self.loss != "crossentropy" or self.label_smoothing:
            raise KzooError("--augmix-jsd, --val-split, --loss and --label-smoothing are supervised settings; "
                            "kzoo pretrain trains on unlabelled views (drop them)")
        return self
