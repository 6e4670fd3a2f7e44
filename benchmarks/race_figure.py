"""The 60-minute CPU race (docs/recipes.md): one figure of test top-1 against wall-clock minutes for
every race run, and the table row of each, from the run directories `kzoo train` wrote.

The race runs train on all 50,000 CIFAR-10 training images without --val-split, so each epoch's
"validation" is the official test split, watched but never used to choose a checkpoint: the curve
is test accuracy over time. The x axis sums `epoch_seconds` (training plus that test pass); the star
at the end is the run's whole wall clock (data loading, whitening fit, final test with TTA included).

    python benchmarks/race_figure.py --out docs/img/race.png --archive docs/race runs/race/cct_airbench_s0 ...
    python benchmarks/race_figure.py --out docs/img/race.png docs/race/*/   # redraw from the archive

`--archive DIR` copies each run's three small summary files (history.csv, metrics.json, config.json)
to DIR/<run name>/, which is committed: run directories are not, and session 4's were lost with its
machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


SUMMARY_FILES = ("history.csv", "metrics.json", "config.json")
TARGETS = {0.80: "plain ViT", 0.88: "transformer", 0.94: "any model"}


def archive(run_dir: str, dest_root: str) -> None:
    dest = os.path.join(dest_root, os.path.basename(os.path.normpath(run_dir)))
    if os.path.abspath(dest) == os.path.abspath(run_dir):
        return
    os.makedirs(dest, exist_ok=True)
    for name in SUMMARY_FILES:
        shutil.copyfile(os.path.join(run_dir, name), os.path.join(dest, name))


def load_run(run_dir: str) -> dict:
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    seconds = [float(r["epoch_seconds"]) for r in rows]
    return {"dir": run_dir, "rows": rows, "metrics": metrics, "config": config, "seconds": seconds}


def table_row(run: dict) -> str:
    m, c = run["metrics"], run["config"]
    tta = m.get("tta") or {}
    ips = statistics.median(float(r["images_per_sec"]) for r in run["rows"] if r.get("images_per_sec"))
    return (f"| {c.get('recipe') or c['model']} | {c['model']} | {c['seed']} | {m['top1']:.2%} | {m['top5']:.2%} | "
            f"{tta.get('top1', float('nan')):.2%} | {tta.get('top5', float('nan')):.2%} | {m['epochs_completed']} | "
            f"{ips:.0f} | {m['wall_time_s'] / 60:.1f} |")


def plot(runs: list[dict], out: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lowest = 1.0
    for run in runs:
        c, m = run["config"], run["metrics"]
        minutes, elapsed = [], 0.0
        for s in run["seconds"]:
            elapsed += s
            minutes.append(elapsed / 60)
        tests = [float(r["val_accuracy"]) for r in run["rows"]]
        lowest = min([lowest, *tests])
        # a budget-stopped run's --epochs is only a ceiling: name its clock instead
        length = f"{c['budget_minutes']:g}-min clock" if c.get("budget_minutes") else f"{c['epochs']} epochs"
        name = c.get("recipe") or c["model"]
        if c.get("recipe") and c["model"] != c["recipe"]:
            name += f" [{c['model']}]"  # a recipe's model can change between sessions
        # with --val-split the per-epoch points are the held-out split, not the test set
        curve = ", val split per epoch" if c.get("val_split") else ""
        label = f"{name}, {length}, {c.get('mixed_precision') or 'float32'}{curve} (seed {c['seed']})"
        (line,) = ax.plot(minutes, tests, marker="o", ms=3, label=label)
        if m.get("tta"):
            ax.plot([m["wall_time_s"] / 60], [m["tta"]["top1"]], marker="*", ms=10, color=line.get_color())
    for target, row in TARGETS.items():
        ax.axhline(target, color="grey", lw=0.8, ls="--")
        ax.annotate(f"{row} target", (1, target), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=7, color="grey")
    ax.axvline(60, color="grey", lw=0.8)
    ax.set_xlabel("minutes of fit (epochs with their test pass); star: the run's end, final test with TTA")
    ax.set_ylabel("CIFAR-10 test top-1")
    ax.set_ylim(min(0.5, np.floor(lowest * 10) / 10), 1.0)
    ax.grid(alpha=0.3)
    # below the axes: inside, it hid the lowest curves once a figure held six runs
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    ax.set_title("60-minute CPU race (2 cores)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories written by kzoo train")
    parser.add_argument("--out", default="docs/img/race.png")
    parser.add_argument("--archive", help="copy each run's summary files to this folder (docs/race)")
    args = parser.parse_args()
    if args.archive:
        for run_dir in args.runs:
            archive(run_dir, args.archive)
    runs = [load_run(d) for d in args.runs]
    plot(runs, args.out)
    print("| recipe | model | seed | test top-1 | top-5 | top-1 TTA | top-5 TTA | epochs | images/s (median epoch) | wall min |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        print(table_row(run))


if __name__ == "__main__":
    main()
