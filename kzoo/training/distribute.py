"""Scale-out: MirroredStrategy under TensorFlow, keras.distribution.DataParallel under JAX.

`--batch-size` is per replica: the global batch is `batch_size * replicas`, and the learning
rate given for one replica is scaled linearly with the replica count (Goyal et al., 2017).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import ContextManager

import keras

from kzoo.errors import KzooError

log = logging.getLogger("kzoo.train")


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
        devices = keras.distribution.list_devices()  # every process's devices in a multi-process job
        # kzoo's pipeline shards the data itself (kzoo.data.pipeline.keep_shard), before decoding
        # and augmenting, where Keras' auto-sharding would prepare every image on every process.
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices,
                                                                            auto_shard_dataset=False))
        return contextlib.nullcontext(), len(devices)
    raise KzooError(f"--distribute {mode!r} is not supported: choose mirrored or data-parallel")


def log_scaling(cfg, replicas: int) -> None:
    """Say once (process 0) what data parallelism does to the batch and the learning rate."""
    from kzoo import distributed

    if replicas > 1:
        processes = distributed.process_count()
        log.info("%d replicas%s: global batch %d (%d per replica); learning rate %g x %d = %g (linear scaling)",
                 replicas, f" in {processes} processes" if processes > 1 else "", cfg.batch_size * replicas,
                 cfg.batch_size, cfg.lr, replicas, cfg.lr * replicas)


def check_processes(cfg) -> None:
    """Settle `cfg` for a multi-process job: data-parallel over every process's devices."""
    from kzoo import distributed

    if distributed.process_count() == 1:
        return
    if cfg.distribute == "mirrored":
        raise KzooError("--distribute mirrored is TensorFlow's one-machine strategy; several processes train "
                        "data-parallel under JAX: drop --distribute")
    if cfg.budget_minutes:
        raise KzooError("--budget-minutes is for one process (each process's clock would stop it at another "
                        "step): give --epochs")
    cfg.distribute = "data-parallel"


def cpu_device_count() -> int:
    """KZOO_CPU_DEVICES=N: split the CPU into N logical devices (0 or 1: no split)."""
    raw = os.environ.get("KZOO_CPU_DEVICES", "").strip() or "0"
    if not raw.isdigit():
        raise KzooError(f"KZOO_CPU_DEVICES={raw!r}: expected a whole number of CPU devices, e.g. 2")
    return int(raw)


def split_cpu_for_jax() -> None:
    """Under JAX, give the CPU KZOO_CPU_DEVICES logical devices for `--distribute data-parallel`.

    Besides trying data-parallel training without accelerators, two devices on a 2-core CPU train
    vit_cifar_tiny 1.2x faster than one (docs/benchmarks.md): XLA:CPU runs the step's many small
    kernels one after another, and two devices keep both cores busy. Must run before JAX starts
    its backends (`kzoo.train` calls it before anything else touches JAX).
    """
    count = cpu_device_count()
    if count < 2 or keras.backend.backend() != "jax":
        return
    import jax

    from kzoo.training.host_memory import jax_started

    if not jax_started():
        jax.config.update("jax_num_cpu_devices", count)
    elif len(jax.devices("cpu")) != count:
        log.warning("KZOO_CPU_DEVICES=%d ignored: JAX had already started with %d CPU device(s); set it "
                    "before the process's first JAX computation", count, len(jax.devices("cpu")))


def _split_cpu(tf) -> None:
    """KZOO_CPU_DEVICES=N splits the CPU into N logical devices, to try mirrored training without
    accelerators (the tests use it); it must run before TensorFlow initialises its devices."""
    count = cpu_device_count()
    if count > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
