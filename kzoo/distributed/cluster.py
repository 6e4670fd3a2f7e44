"""Which process of how many this is, and where the coordinator listens: from flags, Keras'
variables, SLURM or a Kubernetes indexed Job. Pure Python: nothing here starts JAX.

Precedence (first found wins, field by field for the flags):
1. `--num-processes N --process-id I --coordinator HOST:PORT` (`kzoo train`, `kzoo pretrain`);
2. Keras' own variables `KERAS_DISTRIBUTION_JOB_ADDRESSES` (the coordinator, or every process's
   address with the coordinator first), `KERAS_DISTRIBUTION_NUM_PROCESSES`,
   `KERAS_DISTRIBUTION_PROCESS_ID` (what `kzoo launch` sets);
3. SLURM (`srun`): `SLURM_NTASKS` processes, this one `SLURM_PROCID`, the coordinator on the first
   host of `SLURM_STEP_NODELIST` (or `SLURM_JOB_NODELIST`) at port `KZOO_COORDINATOR_PORT`
   (default 29500);
4. a Kubernetes indexed Job: `JOB_COMPLETION_INDEX` is the process id; the Job spec sets
   `KERAS_DISTRIBUTION_NUM_PROCESSES` (= completions) and `KERAS_DISTRIBUTION_JOB_ADDRESSES`
   (the index-0 pod's stable name behind a headless Service, e.g. `train-0.train:29500`).
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Mapping

from kzoo.errors import KzooError

DEFAULT_PORT = 29500
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclasses.dataclass(frozen=True)
class Cluster:
    """One process's place in a job.

    Example:
        >>> resolve(env={"KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1",
        ...              "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234"})
        Cluster(num_processes=2, process_id=1, coordinator='10.0.0.1:1234', source='KERAS_DISTRIBUTION_*')
    """

    num_processes: int = 1
    process_id: int = 0
    coordinator: str | None = None
    source: str = "single process"

    @property
    def is_multi_process(self) -> bool:
        return self.num_processes > 1


def resolve(num_processes: int | None = None, process_id: int | None = None, coordinator: str | None = None,
            env: Mapping[str, str] | None = None) -> Cluster:
    """The cluster this process belongs to (see the module docstring for the precedence), checked:
    a process id outside 0..N-1 or a coordinator that is not HOST:PORT is a one-line KzooError."""
    env = os.environ if env is None else env
    found = _from_env(env)
    flags = {k: v for k, v in (("num_processes", num_processes), ("process_id", process_id),
                               ("coordinator", coordinator)) if v is not None}
    source = "flags" if flags else found.source
    cluster = dataclasses.replace(found, source=source, **flags)
    return _checked(cluster)


def _from_env(env: Mapping[str, str]) -> Cluster:
    keras_vars = {k: env[k] for k in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                                       "KERAS_DISTRIBUTION_PROCESS_ID") if env.get(k, "").strip()}
    if "JOB_COMPLETION_INDEX" in env and "KERAS_DISTRIBUTION_PROCESS_ID" not in keras_vars and keras_vars:
        keras_vars["KERAS_DISTRIBUTION_PROCESS_ID"] = env["JOB_COMPLETION_INDEX"]
        source = "Kubernetes indexed Job"
    else:
        source = "KERAS_DISTRIBUTION_*"
    if keras_vars:
        addresses = keras_vars.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "").split(",")
        return Cluster(_int(keras_vars, "KERAS_DISTRIBUTION_NUM_PROCESSES", len(addresses)),
                       _int(keras_vars, "KERAS_DISTRIBUTION_PROCESS_ID", 0), addresses[0].strip() or None, source)
    if _int(env, "SLURM_NTASKS", 1) > 1:
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or ""
        port = _int(env, "KZOO_COORDINATOR_PORT", DEFAULT_PORT)
        return Cluster(_int(env, "SLURM_NTASKS", 1), _int(env, "SLURM_PROCID", 0),
                       f"{first_host(nodes)}:{port}" if nodes else None, "SLURM")
    return Cluster()


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[003-005,9],cpu1" -> "gpu003".

    Example:
        >>> first_host("node[07-09]"), first_host("a1,b2")
        ('node07', 'a1')
    """
    match = re.match(r"^([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        raise KzooError(f"SLURM node list {nodelist!r}: cannot read its first host; set --coordinator HOST:PORT")
    prefix, ranges = match.groups()
    if not ranges:
        return prefix
    return prefix + re.split(r"[-,]", ranges)[0]


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = str(env.get(name, "")).strip()
    if not raw:
        return default
    if not re.fullmatch(r"-?\d+", raw):
        raise KzooError(f"{name}={raw!r}: expected a whole number")
    return int(raw)


def _checked(cluster: Cluster) -> Cluster:
    n, i = cluster.num_processes, cluster.process_id
    where = f" (from {cluster.source})"
    if n < 1:
        raise KzooError(f"--num-processes {n}{where}: expected at least 1")
    if not 0 <= i < n:
        raise KzooError(f"--process-id {i}{where}: expected 0..{n - 1} for {n} processes")
    if n > 1:
        if not cluster.coordinator:
            raise KzooError(f"{n} processes{where} but no coordinator: pass --coordinator HOST:PORT (process 0's "
                            "host and a free port) or set KERAS_DISTRIBUTION_JOB_ADDRESSES")
        match = _HOST_PORT.match(cluster.coordinator)
        if not match or not 0 < int(match.group(2)) < 65536:
            raise KzooError(f"--coordinator {cluster.coordinator!r}{where}: expected HOST:PORT, e.g. 10.0.0.1:29500")
    return cluster
