"""How long `kzoo` commands take to answer, and how many lines they print on stderr, beside a peer:
another checkout of kzoo (e.g. the commit before a change), run alternately in the same session.

    git worktree add /tmp/kzoo-before 3663ef3
    .venv/bin/python benchmarks/cli_startup.py --peer /tmp/kzoo-before --repeats 5

Each command runs as `python -m kzoo.cli ...` in a fresh process with the checkout as its working
directory (so that checkout's kzoo is imported: checked once per checkout). Reports the median
wall time per command and checkout, the ratio, and stderr's line count (TensorFlow's start-up
notes included) of the first run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ["--help"],
    ["train", "--help"],
    ["eval", "--help"],
    ["models"],
    ["recipes"],
    ["eval", "--checkpoint", "no-such-run/best.keras"],  # starts Keras + TensorFlow, then a one-line error
    ["models", "--table"],
]


def run(checkout: str, args: list[str]) -> tuple[float, int, int]:
    env = {**os.environ, "PYTHONPATH": checkout}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "kzoo.cli", *args], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=900)
    return time.perf_counter() - start, proc.returncode, len(proc.stderr.strip().splitlines())


def which_kzoo(checkout: str) -> str:
    proc = subprocess.run([sys.executable, "-c", "import kzoo; print(kzoo.__file__)"], cwd=checkout,
                          env={**os.environ, "PYTHONPATH": checkout}, capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", required=True, help="another kzoo checkout to compare with")
    parser.add_argument("--repeats", type=int, default=5, help="runs per command and checkout (default: 5)")
    parser.add_argument("--table-repeats", type=int, default=2, help="runs of `models --table` (default: 2)")
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    checkouts = {"this": here, "peer": os.path.abspath(args.peer)}
    for name, path in checkouts.items():
        found = which_kzoo(path)
        if not found.startswith(path):
            raise SystemExit(f"{name}: imports {found}, not the kzoo in {path}")
    print(f"| command | this (s) | peer (s) | peer/this | stderr lines this | stderr lines peer |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for command in COMMANDS:
        repeats = args.table_repeats if "--table" in command else args.repeats
        times: dict[str, list[float]] = {"this": [], "peer": []}
        lines: dict[str, int] = {}
        for i in range(repeats):
            order = ("this", "peer") if i % 2 == 0 else ("peer", "this")  # alternate who goes first
            for name in order:
                seconds, _, count = run(checkouts[name], command)
                times[name].append(seconds)
                lines.setdefault(name, count)
        this, peer = statistics.median(times["this"]), statistics.median(times["peer"])
        print(f"| `kzoo {' '.join(command)}` | {this:.2f} | {peer:.2f} | {peer / this:.1f}x | "
              f"{lines['this']} | {lines['peer']} |", flush=True)


if __name__ == "__main__":
    main()
