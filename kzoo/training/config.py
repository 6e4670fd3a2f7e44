"""The resolved training configuration: one dataclass, saved as JSON in every run directory."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from kzoo.errors import KzooError

OPTIMIZERS = ("adamw", "sgd", "lamb", "lion")
SCHEDULES = ("cosine", "onecycle", "triangle", "multistep", "constant")
DISTRIBUTE = (None, "mirrored", "data-parallel")
LOSSES = ("crossentropy", "adaptive")
AUGMENT_ON = ("pipeline", "device")
MIXED = (None, "bfloat16", "float16")
# Fields a resumed run may change: they do not alter what was already trained.
RESUMABLE_CHANGES = ("epochs", "budget_minutes", "backup_steps", "tta")


@dataclass
class TrainConfig:
    """Everything a run needs; `kzoo train` flags map one to one onto these fields.

    Example:
        >>> cfg = TrainConfig(model="vit_cifar_tiny", epochs=5)
        >>> cfg.validate().optimizer
        'adamw'
    """

    model: str = "vit_cifar_tiny"
    data: str | None = None  # None = the sample bundled with kzoo
    out: str = "runs/default"
    epochs: int = 10
    batch_size: int = 128  # per replica
    lr: float = 1e-3  # for one replica; scaled linearly with the replica count
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 0.05
    schedule: str = "cosine"
    warmup: int = 0  # epochs of linear warmup
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    label_smoothing: float = 0.0
    loss: str = "crossentropy"
    augment: str = "basic"
    augment_on: str = "pipeline"  # or "device": inside the train step, on the accelerator
    image_size: list[int] | None = None  # None = the model's own input size
    val_split: float | None = None
    seed: int = 0
    mixed_precision: str | None = None
    jit_compile: bool = True  # XLA: 1.7x faster than graph mode for the CIFAR ViT on this CPU (docs/decisions.md)
    distribute: str | None = None
    weights: str | None = None
    pretrained: bool = False  # start from the model's default checkpoint
    freeze: str | None = None
    clip_norm: float | None = None  # clip the global gradient norm to this value
    ema: float | None = None  # EMA decay per step (e.g. 0.999): validate, checkpoint and test the average
    layer_decay: float | None = None  # ViT fine-tuning: block i's rate is lr * layer_decay ** (depth - i)
    norm_bias_lr: float | None = None  # multiply the rate of BatchNorm offsets (airbench: 64)
    lookahead: int | None = None  # every N steps pull the weights toward a slow copy (airbench's lookahead)
    augmix_jsd: float | None = None  # weight of AugMix's Jensen-Shannon consistency loss (the paper: 12)
    tta: str | None = None  # test-time augmentation of the final test: "flip", "translate" or "flip,translate"
    budget_minutes: float | None = None  # stop fit after this much wall clock; the schedule follows time
    backup_steps: int | None = None  # also back up every N steps, so a kill loses at most N steps
    recipe: str | None = None  # the named recipe this configuration was expanded from (kzoo train --recipe)
    early_stopping: int | None = None  # patience in epochs
    monitor: str = "val_accuracy"
    data_dir: str | None = None
    download: bool = False
    steps_per_epoch: int | None = None  # cap, for smoke runs
    shots: int | None = None  # few-shot: train on this many seeded images of every class
    class_subset: str | None = None  # these classes of --data only, e.g. "0-4" or "cat,dog" (every split)
    train_fraction: float | None = None  # a seeded, class-stratified fraction of the training split

    def validate(self) -> "TrainConfig":
        """Check every field; raise a one-line KzooError naming the first bad one."""
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("distribute", self.distribute, DISTRIBUTE)
        _choice("loss", self.loss, LOSSES)
        _choice("augment-on", self.augment_on, AUGMENT_ON)
        if self.mixed_precision in ("float32", "none"):  # lets a flag undo a recipe's mixed precision
            self.mixed_precision = None
        _choice("mixed-precision", self.mixed_precision, MIXED)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise KzooError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise KzooError(f"--lr must be positive, got {self.lr}")
        if self.val_split is not None and not 0 < self.val_split < 1:
            raise KzooError(f"--val-split must be between 0 and 1 (exclusive), got {self.val_split}")
        if not 0 <= self.label_smoothing < 1:
            raise KzooError(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.warmup < 0 or (self.warmup and self.warmup >= self.epochs):
            raise KzooError(f"--warmup must be 0 or fewer epochs than --epochs ({self.epochs}), got {self.warmup}")
        if self.schedule == "multistep":
            if not self.milestones:
                self.milestones = [self.epochs // 2, self.epochs * 3 // 4]
            if sorted(self.milestones) != list(self.milestones) or min(self.milestones) < 1:
                raise KzooError(f"--milestones must be increasing positive epochs, got {self.milestones}")
        _positive_or_none("clip-norm", self.clip_norm)
        _positive_or_none("shots", self.shots)
        if self.train_fraction is not None and not 0 < self.train_fraction <= 1:
            raise KzooError(f"--train-fraction must be in (0, 1], got {self.train_fraction}")
        _positive_or_none("budget-minutes", self.budget_minutes)
        _positive_or_none("backup-steps", self.backup_steps)
        _positive_or_none("norm-bias-lr", self.norm_bias_lr)
        _positive_or_none("lookahead", self.lookahead)
        _positive_or_none("augmix-jsd", self.augmix_jsd)
        if self.augmix_jsd and (self.augment in ("augmix", "strong", "cutmix") or self.augment_on == "device"):
            raise KzooError(f"--augmix-jsd makes its own AugMix views of each clean image: use it with a plain "
                            f"--augment (basic, flip_translate, ...) in the pipeline, not {self.augment!r}"
                            + (" on the device" if self.augment_on == "device" else ""))
        if self.augment == "simclr" and type(self) is TrainConfig:
            raise KzooError("--augment simclr makes two views of every image for contrastive pretraining: use it "
                            "with kzoo pretrain; kzoo train wants a one-view preset (basic, strong, ...)")
        for flag, value in (("ema", self.ema), ("layer-decay", self.layer_decay)):
            if value is not None and not 0 < value < 1:
                raise KzooError(f"--{flag} must be between 0 and 1 (exclusive), got {value}")
        if self.tta is not None:
            from kzoo.training.tta import parse_tta

            self.tta = ",".join(parse_tta(self.tta)) or None
        if self.image_size is not None:
            self.image_size = list(self.image_size)
            if len(self.image_size) == 1:
                self.image_size = self.image_size * 2
            if len(self.image_size) != 2 or min(self.image_size) < 8:
                raise KzooError(f"--image-size must be one or two sizes of at least 8 pixels, got {self.image_size}")
        return self

    def to_json(self, path: str) -> None:
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path: str) -> "TrainConfig":
        with open(path) as f:
            raw: dict[str, Any] = json.load(f)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise KzooError(f"{path}: unknown config keys {unknown}")
        return cls(**raw)

    def differs_from(self, other: "TrainConfig", ignore: tuple[str, ...] = RESUMABLE_CHANGES) -> list[str]:
        """Field names whose values differ (for refusing to resume a run with another setup)."""
        a, b = (_with_image_size(dataclasses.asdict(c)) for c in (self, other))
        return [k for k in a if k not in ignore and a[k] != b[k]]


def _with_image_size(fields: dict[str, Any]) -> dict[str, Any]:
    # `image_size: None` means the model's input size: runs record the resolved size (a config.json
    # from before that, or a TrainConfig built by hand, holds None), so compare resolved sizes.
    if fields.get("image_size") is None:
        from kzoo.registry import get_entry

        try:
            fields["image_size"] = list(get_entry(fields["model"]).input_shape[:2])
        except KzooError:  # an unknown model differs anyway
            pass
    return fields


def _positive_or_none(flag: str, value: float | None) -> None:
    if value is not None and not value > 0:
        raise KzooError(f"--{flag} must be positive, got {value}")


def _choice(flag: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        shown = ", ".join(str(a) for a in allowed if a is not None)
        raise KzooError(f"--{flag} {value!r} is not supported: choose one of {shown}")


def config_path(run_dir: str) -> str:
    return os.path.join(run_dir, "config.json")
