"""Joining a multi-process job and agreeing across it, on JAX's distributed runtime (which Keras'
`keras.distribution` runs on). Under one process (and under TensorFlow) every function here is
a cheap no-op: process 0 of 1, the chief.

The job's rules: every process runs the same command; process 0 (the chief) alone writes the run
directory; a decision that reads the disk (resume or not) is taken by the chief and shared; an
error one process finds stops every process with exit status 2.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import time
from typing import Any, Callable, Iterator, TypeVar

from kzoo.distributed.cluster import Cluster, resolve
from kzoo.errors import EchoedError, KzooError

log = logging.getLogger("kzoo.distributed")
T = TypeVar("T")

TF_UNSUPPORTED = ("several processes train under Keras' JAX backend only (KERAS_BACKEND=jax): TensorFlow's "
                  "MultiWorkerMirroredStrategy fails inside Keras 3's model.fit (keras-team/keras#20585, checked "
                  "with TensorFlow 2.21 and Keras 3.15; docs/distributed.md)")
_cluster = Cluster()
_joined = False  # collectives available: joined and not yet left


def initialize(num_processes: int | None = None, process_id: int | None = None, coordinator: str | None = None,
               timeout: float = 120.0) -> Cluster:
    """Join the job this process belongs to (flags, Keras' variables, SLURM or Kubernetes: see
    `kzoo.distributed.cluster`), before JAX's first computation; idempotent.

    CPU processes exchange gradients over gloo; `timeout` bounds the wait for the coordinator (an
    unreachable one is a one-line KzooError, not a hang).

    Example:
        >>> kzoo.distributed.initialize(num_processes=2, process_id=0, coordinator="127.0.0.1:29500")  # doctest: +SKIP
        Cluster(num_processes=2, process_id=0, coordinator='127.0.0.1:29500', source='flags')
    """
    global _cluster, _joined
    if _cluster.is_multi_process and num_processes is process_id is coordinator is None:
        return _cluster  # kzoo train after the CLI joined with its flags
    cluster = resolve(num_processes, process_id, coordinator)
    if _cluster.is_multi_process:
        if (cluster.num_processes, cluster.process_id) != (_cluster.num_processes, _cluster.process_id):
            raise KzooError(f"this process already joined a job as process {_cluster.process_id} of "
                            f"{_cluster.num_processes}; it cannot also be process {cluster.process_id} of "
                            f"{cluster.num_processes}")
        return _cluster
    if not cluster.is_multi_process:
        return cluster
    import keras

    if keras.backend.backend() != "jax":
        raise KzooError(TF_UNSUPPORTED)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    # JAX ends a process that cannot join in time with a fatal C++ log and a stack trace; the
    # watchdog ends it first, with one line and exit status 2.
    watchdog = threading.Timer(timeout, _give_up_joining, (cluster, timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        # Keras' `keras.distribution.initialize` makes this same call but passes no timeout (JAX then
        # waits 300 s for a coordinator that is not there); kzoo seeds every process itself.
        jax.distributed.initialize(cluster.coordinator, cluster.num_processes, cluster.process_id,
                                   initialization_timeout=int(timeout) + 60)
    except RuntimeError as err:
        if "before any JAX computations" in str(err):
            raise KzooError("this process ran JAX before joining the job: call kzoo.distributed.initialize() "
                            "first (kzoo train does)") from err
        raise
    finally:
        watchdog.cancel()
    _cluster, _joined = cluster, True
    log.debug("joined %s as process %d of %d (%s)", cluster.coordinator, cluster.process_id,
              cluster.num_processes, cluster.source)
    return cluster


def _give_up_joining(cluster: Cluster, timeout: float) -> None:
    if cluster.process_id == 0:
        what = (f"waited {timeout:g} s for the other {cluster.num_processes - 1} process(es) to join at "
                f"{cluster.coordinator}; start them with the same command and --coordinator")
    else:
        what = (f"could not join the coordinator at {cluster.coordinator} within {timeout:g} s; check that "
                "process 0 is running and that HOST:PORT is its reachable address")
    sys.stderr.write(f"kzoo: error: process {cluster.process_id} of {cluster.num_processes} {what}\n")
    sys.stderr.flush()
    time.sleep(0.5)  # the CLI's stderr filter forwards the line
    os._exit(2)


def process_count() -> int:
    """Processes in the job (1 without one)."""
    return _cluster.num_processes


def process_index() -> int:
    """This process's index in the job (0 without one)."""
    return _cluster.process_id


def is_chief() -> bool:
    """Whether this process writes the run directory and logs progress (process 0)."""
    return _cluster.process_id == 0


def shard() -> tuple[int, int] | None:
    """(this process's index, process count) for the data pipeline; None in a one-process run."""
    return (_cluster.process_id, _cluster.num_processes) if _cluster.is_multi_process else None


def on_chief(fn: Callable[[], T], what: str) -> T:
    """Run `fn` on the chief only and return its JSON-serialisable result on every process; a
    KzooError it raises stops every process (the others exit 2 without repeating the line)."""
    if not _joined:
        return fn()
    outcome: dict[str, Any] = {}
    if is_chief():
        try:
            outcome = {"value": fn()}
        except KzooError as err:
            outcome = {"error": str(err)}
    outcome = json.loads(_broadcast_text(json.dumps(outcome)))
    if "error" in outcome:
        if is_chief():
            raise KzooError(outcome["error"])
        raise EchoedError(f"process 0 stopped while {what}: {outcome['error']}")
    return outcome["value"]


def check_same(what: str, settings: dict[str, Any]) -> None:
    """Stop every process (one line, exit 2) unless all were started with the same `settings`."""
    if not _joined:
        return
    import numpy as np
    from jax.experimental import multihost_utils

    text = json.dumps(settings, sort_keys=True, default=str)
    digest = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") >> 1  # fits int32
    digests = np.asarray(multihost_utils.process_allgather(np.array([digest], np.int32))).reshape(-1)
    odd = [i for i, d in enumerate(digests) if d != digests[0]]
    if not odd:
        return
    chief = json.loads(_broadcast_text(text))
    if is_chief():
        raise KzooError(f"process(es) {', '.join(map(str, odd))} were started with other {what} than process 0: "
                        "start every process with the same command")
    if process_index() not in odd:
        raise EchoedError(f"other processes differ in {what}")
    diff = [f"{k} {settings.get(k)!r} here vs {chief.get(k)!r} on process 0"
            for k in sorted(set(settings) | set(chief)) if settings.get(k) != chief.get(k)]
    raise KzooError(f"process {process_index()} was started with other {what} than process 0 ({'; '.join(diff)}): "
                    "start every process with the same command")


@contextlib.contextmanager
def undistributed() -> Iterator[None]:
    """No Keras distribution inside: the chief saving a model alone (Keras' saving builds a
    throw-away optimizer, whose variables would otherwise be placed on every process's devices
    and wait for processes that are not saving)."""
    import keras

    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def leave() -> None:
    """Leave the job once every process has finished training (a barrier): the chief then
    evaluates on its own, and the others exit without waiting for it. The process keeps its
    index (only the chief writes)."""
    global _joined
    if not _joined:
        return
    import jax

    jax.distributed.shutdown()
    _joined = False


def _broadcast_text(text: str) -> str:
    import numpy as np
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode(), np.uint8) if is_chief() else np.zeros(0, np.uint8)
    size = int(np.asarray(multihost_utils.broadcast_one_to_all(np.array([data.size], np.int32)))[0])
    buffer = np.zeros(size, np.uint8)
    buffer[: data.size] = data[:size]
    return bytes(np.asarray(multihost_utils.broadcast_one_to_all(buffer)).astype(np.uint8)).decode()


def broadcast(arrays: list) -> list:
    """Process 0's numpy arrays on every process (the others pass arrays of the same shapes)."""
    if not _joined:
        return arrays
    import numpy as np
    from jax.experimental import multihost_utils

    return [np.asarray(a) for a in multihost_utils.broadcast_one_to_all([np.asarray(a) for a in arrays])]
