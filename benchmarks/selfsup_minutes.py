"""kNN and linear-probe accuracy against SimCLR pretraining minutes (docs/selfsup.md): one figure
from the histories and probe.json files of the standard-protocol runs (pretrain and probe on all of
CIFAR-10), archived in docs/selfsup/.

Each run is a (label, history.csv, probe.json) triple. The x axis sums `epoch_seconds` (training
plus the kNN checks); the kNN curve is history.csv's `knn_top1`, the probe a single point at the
run's end. Each `--floor LABEL PROBE` adds the probe of a randomly initialised backbone at 0 minutes.

    python benchmarks/selfsup_minutes.py --out docs/img/selfsup_minutes.png \\
        --floor airbench94 docs/selfsup/random_ab94_probe.json \\
        --floor airbench94_w512 docs/selfsup/random_w512_probe.json \\
        --run "15 min, airbench94, T=0.5, fp32" docs/selfsup/simclr_ab94_15min_history.csv \\
            docs/selfsup/simclr_ab94_15min_probe.json \\
        --run "57 min, airbench94, T=0.2, bf16" docs/selfsup/simclr_ab94_60min_history.csv \\
            docs/selfsup/simclr_ab94_60min_probe.json \\
        --run "56 min, airbench94_w512, T=0.2, bf16" docs/selfsup/simclr_w512_60min_history.csv \\
            docs/selfsup/simclr_w512_60min_probe.json
"""

from __future__ import annotations

import argparse
import csv
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_run(history: str, probe: str) -> tuple[list[float], list[float], float, float]:
    """(minutes at each monitored epoch, kNN top-1 there, minutes at the end, probe top-1)."""
    minutes, knn, elapsed = [], [], 0.0
    with open(history) as f:
        for row in csv.DictReader(f):
            elapsed += float(row["epoch_seconds"]) / 60
            if row.get("knn_top1"):
                minutes.append(elapsed)
                knn.append(100 * float(row["knn_top1"]))
    with open(probe) as f:
        return minutes, knn, elapsed, 100 * json.load(f)["top1"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--floor", nargs=2, action="append", default=[], metavar=("LABEL", "PROBE"),
                   help="probe.json of a randomly initialised backbone (drawn at 0 minutes)")
    p.add_argument("--run", nargs=3, action="append", metavar=("LABEL", "HISTORY", "PROBE"), required=True)
    args = p.parse_args(argv)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (label, history, probe) in enumerate(args.run):
        minutes, knn, end, top1 = read_run(history, probe)
        colour = f"C{i}"
        ax.plot(minutes, knn, marker="o", color=colour, label=f"{label}: kNN top-1 (k=200)")
        ax.plot([end], [top1], marker="*", markersize=14, color=colour, linestyle="none",
                label=f"{label}: linear probe {top1:.2f}%")
    for i, (label, probe) in enumerate(args.floor):
        with open(probe) as f:
            floor = 100 * json.load(f)["top1"]
        ax.plot([0], [floor], marker="s", color=f"C{len(args.run) + i}", linestyle="none",
                label=f"random {label}: probe {floor:.2f}%")
    ax.axhline(70, color="black", linewidth=0.8, linestyle=":", label="issue target: probe 70%")
    ax.set_ylim(top=73)  # room above the 70% line
    ax.set_xlabel("pretraining minutes (2-core CPU)")
    ax.set_ylabel("CIFAR-10 test top-1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
