"""Scale-out: MirroredStrategy under TensorFlow, keras.distribution.DataParallel under JAX.

`--batch-size` is per replica: the global batch is `batch_size * replicas`, and the learning
rate given for one replica is scaled linearly with the replica count (Goyal et al., 2017).
"""

from __future__ import annotations

import contextlib
import os
from typing import ContextManager

import keras

from kzoo.errors import KzooError


def setup(mode: str | None) -> tuple[ContextManager, int]:
    """Return (scope to build and compile the model in, number of replicas)."""
    backend = keras.backend.backend()
    if mode is None:
        keras.distribution.set_distribution(None)
        return contextlib.nullcontext(), 1
    if mode == "mirrored":
        if backend != "tensorflow":
            raise KzooError(f"--distribute mirrored needs KERAS_BACKEND=tensorflow (now {backend}); "
                            "use --distribute data-parallel under JAX")
        import tensorflow as tf

        _split_cpu(tf)
        strategy = tf.distribute.MirroredStrategy()
        return strategy.scope(), strategy.num_replicas_in_sync
    if mode == "data-parallel":
        if backend != "jax":
            raise KzooError(f"--distribute data-parallel needs KERAS_BACKEND=jax (now {backend}); "
                            "use --distribute mirrored under TensorFlow")
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext(), len(devices)
    raise KzooError(f"--distribute {mode!r} is not supported: choose mirrored or data-parallel")


def _split_cpu(tf) -> None:
    """KZOO_CPU_DEVICES=N splits the CPU into N logical devices, to try mirrored training without
    accelerators (the tests use it); it must run before TensorFlow initialises its devices."""
    count = int(os.environ.get("KZOO_CPU_DEVICES", "0") or 0)
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
