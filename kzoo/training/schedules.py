"""Learning-rate schedules as serialisable Keras schedules (keras.ops only, any backend)."""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kzoo")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then cosine decay to `final_fraction * peak`, multistep decay, or constant;
    or `onecycle` (Smith's 1cycle as in PyTorch's OneCycleLR, cosine both ways): from peak/25 up to
    `peak` over `warmup_steps` (30% of the steps when 0), then down to peak/250,000; or `triangle`
    (airbench's): linear from 0.2 * peak up to `peak` over `warmup_steps` (23% of the steps when 0),
    then linear down to `final_fraction * peak` (0.07 when 0).

    Steps are optimizer steps; epoch-based settings are converted by `make_schedule`.

    Example:
        >>> s = WarmupSchedule(1e-3, total_steps=100, warmup_steps=10)
        >>> float(s(0)) < float(s(10))
        True
    """

    def __init__(
        self,
        peak: float,
        total_steps: int,
        warmup_steps: int = 0,
        kind: str = "cosine",
        boundaries: Sequence[int] = (),
        gamma: float = 0.1,
        final_fraction: float = 0.0,
    ):
        self.peak = float(peak)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.kind = kind
        self.boundaries = [int(b) for b in boundaries]
        self.gamma = float(gamma)
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        if self.kind == "onecycle":
            return self._one_cycle(step)
        if self.kind == "triangle":
            return self._triangle(step)
        warm = max(self.warmup_steps, 1)
        warmup_lr = self.peak * (step + 1.0) / warm
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            progress = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
            floor = self.final_fraction * self.peak
            main = floor + (self.peak - floor) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        elif self.kind == "multistep":
            passed = sum(ops.cast(step >= b, "float32") for b in self.boundaries) if self.boundaries else 0.0
            main = self.peak * ops.power(self.gamma, passed)
        else:
            main = ops.full_like(step, self.peak)
        if self.warmup_steps == 0:
            return main
        return ops.where(step < self.warmup_steps, warmup_lr, main)

    def _one_cycle(self, step):
        up = float(self.warmup_steps or max(round(0.3 * self.total_steps), 1))
        start, end = self.peak / 25.0, self.peak / 25.0 / 1e4
        rise = start + (self.peak - start) * 0.5 * (1.0 - ops.cos(math.pi * ops.clip(step / up, 0.0, 1.0)))
        progress = ops.clip((step - up) / max(self.total_steps - up, 1.0), 0.0, 1.0)
        fall = end + (self.peak - end) * 0.5 * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < up, rise, fall)

    def _triangle(self, step):
        up = float(self.warmup_steps or max(round(0.23 * self.total_steps), 1))
        end = (self.final_fraction or 0.07) * self.peak
        rise = self.peak * (0.2 + 0.8 * ops.clip(step / up, 0.0, 1.0))
        fall = self.peak + (end - self.peak) * ops.clip((step - up) / max(self.total_steps - up, 1.0), 0.0, 1.0)
        return ops.where(step < up, rise, fall)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "kind": self.kind,
            "boundaries": self.boundaries,
            "gamma": self.gamma,
            "final_fraction": self.final_fraction,
        }


def make_schedule(
    kind: str, peak: float, epochs: int, steps_per_epoch: int, warmup_epochs: int = 0,
    milestones: Sequence[int] = (), gamma: float = 0.1,
) -> WarmupSchedule:
    """Build a step-based schedule from epoch-based settings.

    Example:
        >>> s = make_schedule("multistep", 0.1, epochs=4, steps_per_epoch=10, milestones=[2])
        >>> round(float(s(25)), 4)
        0.01
    """
    return WarmupSchedule(
        peak,
        total_steps=epochs * steps_per_epoch,
        warmup_steps=warmup_epochs * steps_per_epoch,
        kind=kind,
        boundaries=[m * steps_per_epoch for m in milestones],
        gamma=gamma,
    )
