"""`kzoo launch`: N local processes of one kzoo command, joined on 127.0.0.1.

For trying a multi-process job on one machine (and for the tests). The launcher gives each process
Keras' variables (KERAS_DISTRIBUTION_JOB_ADDRESSES / _NUM_PROCESSES / _PROCESS_ID), forwards
Ctrl-C and SIGTERM, and when one process ends with an error it stops the others (SIGTERM, then
SIGKILL after `grace` seconds): a job never hangs on a dead peer's collective.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Sequence

from kzoo.errors import KzooError

JOB_COMMANDS = ("train", "pretrain")  # the commands that join a job (kzoo.distributed.initialize)
_PR_SET_PDEATHSIG = 1


@dataclasses.dataclass
class Outcome:
    """How a launched job ended: `status` is the launcher's exit status (0, the failed process's
    status, or 128 + signal), `message` one line for the person, empty on success."""

    status: int
    message: str = ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(command: Sequence[str], nproc: int, port: int | None = None, grace: float = 10.0,
           cpus_per_process: int | None = None) -> Outcome:
    """Run `kzoo COMMAND...` as `nproc` processes of one job and wait for all of them.

    Example:
        >>> launch(["train", "--model", "vit_cifar_tiny", "--out", "runs/two"], nproc=2).status  # doctest: +SKIP
        0
    """
    command = list(command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command or command[0] not in JOB_COMMANDS:
        got = command[0] if command else "nothing"
        raise KzooError(f"launch runs {' or '.join(JOB_COMMANDS)} as one job of several processes, got {got!r}: "
                        "e.g. kzoo launch --nproc 2 -- train --model vit_cifar_tiny")
    if nproc < 1:
        raise KzooError(f"--nproc {nproc}: expected at least 1 process")
    backend = os.environ.get("KERAS_BACKEND", "jax")
    if nproc > 1 and backend != "jax":
        from kzoo.distributed.runtime import TF_UNSUPPORTED

        raise KzooError(f"KERAS_BACKEND={backend}: {TF_UNSUPPORTED}")
    cpus = _cpu_sets(nproc, cpus_per_process)
    address = f"127.0.0.1:{port or free_port()}"
    # Ctrl-C or SIGTERM while the processes start waits until all of them are known: delivered
    # inside Popen, it would leave a started process that no one stops (a CI run hung on that).
    stopping = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stopping)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    children: list[subprocess.Popen] = []
    try:
        for i in range(nproc):
            children.append(_start(command, i, nproc, address, backend, cpus[i] if cpus else None))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)  # a pending signal arrives here
        return _watch(children, grace)
    except KeyboardInterrupt:
        _stop(children, signal.SIGINT, grace)
        return Outcome(130, "interrupted: stopped every process; rerun the same command to resume")
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stopping)
        signal.signal(signal.SIGTERM, previous)
        _stop(children, signal.SIGTERM, grace)


def _start(command: list[str], index: int, nproc: int, address: str, backend: str, cpus: set[int] | None):
    env = {**os.environ, "KERAS_BACKEND": backend, "KERAS_DISTRIBUTION_JOB_ADDRESSES": address,
           "KERAS_DISTRIBUTION_NUM_PROCESSES": str(nproc), "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}

    def prepare() -> None:  # in the child, before exec
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # a killed launcher takes its processes with it
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # blocked while starting
        if cpus:
            os.sched_setaffinity(0, cpus)

    # Own session: a terminal's Ctrl-C reaches the launcher alone, which forwards it once.
    return subprocess.Popen([sys.executable, "-m", "kzoo.cli", *command], env=env, start_new_session=True,
                            preexec_fn=prepare if sys.platform.startswith("linux") else None)


def _watch(children: list[subprocess.Popen], grace: float) -> Outcome:
    while True:
        codes = [child.poll() for child in children]
        failed = [(i, code) for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            index, code = failed[0]
            others = sum(code is None for code in codes)
            _stop(children, signal.SIGTERM, grace)
            how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
            hint = " (its error is above)" if code == 2 else ""
            stopped = f"; stopped the other {others} process{'es' if others != 1 else ''}" if others else ""
            return Outcome(128 - code if code < 0 else code,
                           f"process {index} (pid {children[index].pid}) {how}{hint}{stopped}; rerun the same "
                           "command to resume from the last backup")
        if all(code == 0 for code in codes):
            return Outcome(0)
        time.sleep(0.1)


def _stop(children: list[subprocess.Popen], sig: int, grace: float) -> None:
    """Send `sig` to every running process, then SIGKILL whatever still runs after `grace` seconds."""
    running = [c for c in children if c.poll() is None]
    for child in running:
        child.send_signal(sig)
    deadline = time.monotonic() + grace
    for child in running:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _cpu_sets(nproc: int, per_process: int | None) -> list[set[int]] | None:
    if per_process is None:
        return None
    available = sorted(os.sched_getaffinity(0))
    if per_process < 1 or per_process * nproc > len(available):
        raise KzooError(f"--cpus-per-process {per_process} x --nproc {nproc}: expected at least 1 and at most "
                        f"{len(available)} CPUs in all (this process may use {len(available)})")
    return [set(available[i * per_process:(i + 1) * per_process]) for i in range(nproc)]


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
