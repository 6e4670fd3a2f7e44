"""How long a short `kzoo train` run takes from the command to its summary line, beside a peer checkout
(e.g. the commit before a change), run alternately in the same session under the same backend.

    git worktree add /tmp/kzoo-before ca47350
    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/train_startup.py --peer /tmp/kzoo-before --repeats 3

Each run is `python -m kzoo.cli train` in a fresh process with the checkout as its working directory,
on a 512-image toy set (written once), one epoch of a few steps: what dominates is start-up, tracing
and compilation, which is what a short run, a sweep cell or a test pays. Reports the median wall time
per model and checkout and the ratio peer/this.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

MODELS = ["vit_cifar_tiny", "resnet18_cifar", "airbench94"]


def toy(path: str, n: int = 512, size: int = 32) -> str:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 255, (n, size, size, 3)).astype(np.uint8)
    np.savez(path, x=x, y=y)
    return path


def run(checkout: str, model: str, data: str, out: str, args: argparse.Namespace) -> float:
    env = {**os.environ, "PYTHONPATH": checkout, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "kzoo.cli", "train", "--model", model, "--data", data, "--epochs", "1",
               "--steps-per-epoch", str(args.steps), "--batch-size", str(args.batch_size), "--val-split", "0.1",
               "--augment", "none", "--out", out]
    if not args.jit_compile:
        command.append("--no-jit-compile")
    start = time.perf_counter()
    subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=1800, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", required=True, help="another kzoo checkout to compare with")
    parser.add_argument("--repeats", type=int, default=3, help="runs per model and checkout (default: 3)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated (default: {','.join(MODELS)})")
    parser.add_argument("--steps", type=int, default=5, help="training steps (default: 5)")
    parser.add_argument("--batch-size", type=int, default=64, help="default: 64")
    parser.add_argument("--jit-compile", action="store_true", help="XLA on (default: off, graph mode)")
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkouts = {"this": here, "peer": os.path.abspath(args.peer)}
    with tempfile.TemporaryDirectory() as tmp:
        data = toy(os.path.join(tmp, "toy.npz"))
        print(f"backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}, batch {args.batch_size}, {args.steps} steps, "
              f"float32, XLA {'on' if args.jit_compile else 'off'}, {args.repeats} alternating runs each")
        print("| model | this (s) | peer (s) | peer/this |")
        print("| --- | ---: | ---: | ---: |")
        for model in args.models.split(","):
            times: dict[str, list[float]] = {name: [] for name in checkouts}
            for i in range(args.repeats):
                for name, path in (checkouts.items() if i % 2 == 0 else reversed(checkouts.items())):
                    times[name].append(run(path, model, data, os.path.join(tmp, f"{model}-{name}-{i}"), args))
            this, peer = statistics.median(times["this"]), statistics.median(times["peer"])
            print(f"| {model} | {this:.1f} | {peer:.1f} | {peer / this:.2f} |", flush=True)


if __name__ == "__main__":
    main()
