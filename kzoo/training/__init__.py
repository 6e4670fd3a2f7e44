"""Training on `model.fit`: configuration, schedules, callbacks, run directories, plots."""

from kzoo._lazy import lazy_getattr

# Imported on first use: `kzoo.training.config` (the CLI's flags) must not start Keras.
__getattr__ = lazy_getattr(__name__, {"TrainConfig": "kzoo.training.config", "WarmupSchedule": "kzoo.training.schedules",
                                      "make_schedule": "kzoo.training.schedules"})

__all__ = ["TrainConfig", "WarmupSchedule", "make_schedule"]
