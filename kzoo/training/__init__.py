"""Training on `model.fit`: configuration, schedules, callbacks, run directories, plots."""

from kzoo.training.config import TrainConfig
from kzoo.training.schedules import WarmupSchedule, make_schedule

__all__ = ["TrainConfig", "WarmupSchedule", "make_schedule"]
