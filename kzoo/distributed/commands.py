"""`kzoo launch` and the flags that make `kzoo train` / `kzoo pretrain` one process of a job
(Keras-free until a command runs)."""

from __future__ import annotations

import argparse
import sys
from typing import Callable


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """--num-processes / --process-id / --coordinator / --coordinator-timeout for a training command."""
    group = parser.add_argument_group("several processes (docs/distributed.md; default: one process, or what "
                                      "KERAS_DISTRIBUTION_*, SLURM or a Kubernetes indexed Job say)")
    group.add_argument("--num-processes", type=int, default=None, help="processes in the job (JAX backend)")
    group.add_argument("--process-id", type=int, default=None, help="this process's index, 0..N-1 (0 writes the run)")
    group.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                       help="process 0's reachable address and a free port")
    group.add_argument("--coordinator-timeout", type=float, default=120, metavar="SECONDS",
                       help="give up joining the job after this long (default: 120)")


def join(args: argparse.Namespace) -> None:
    """Join the job the flags (or the environment) describe, before any Keras computation."""
    from kzoo.distributed.runtime import initialize

    initialize(args.num_processes, args.process_id, args.coordinator, timeout=args.coordinator_timeout)


def _cmd_launch(args: argparse.Namespace) -> int:
    from kzoo.distributed.launcher import launch

    outcome = launch(args.job, args.nproc, port=args.port, grace=args.grace,
                     cpus_per_process=args.cpus_per_process)
    if outcome.message:
        print(f"kzoo launch: error: {outcome.message}", file=sys.stderr)
    return outcome.status


def add_commands(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `launch` with the `kzoo` parser; `command` is cli's subcommand factory."""
    p = command(sub, "launch", "run kzoo train/pretrain as N processes of one job on this machine",
                "Start N processes of one kzoo command on 127.0.0.1 (Keras' JAX backend; CPU processes\n"
                "exchange gradients over gloo). The global batch is --batch-size x all devices of all\n"
                "processes; process 0 writes the run directory. Ctrl-C stops every process; if one dies,\n"
                "the others are stopped and one line names it; rerunning the command resumes.",
                "kzoo launch --nproc 2 -- train --model vit_cifar_tiny --batch-size 64 --out runs/two", _cmd_launch)
    p.add_argument("--nproc", type=int, required=True, help="processes to start")
    p.add_argument("--port", type=int, default=None, help="coordinator port on 127.0.0.1 (default: a free one)")
    p.add_argument("--cpus-per-process", type=int, default=None,
                   help="pin each process to this many CPUs of its own (default: no pinning)")
    p.add_argument("--grace", type=float, default=10,
                   help="seconds a process gets to stop before it is killed (default: 10)")
    p.add_argument("job", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                   help="the kzoo command and its flags, after --: train ... or pretrain ...")
