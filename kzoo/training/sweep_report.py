"""What `kzoo sweep` writes: each cell's figures, sweep.md (one table per varied option) and one
overlaid validation-curve plot per option."""

from __future__ import annotations

import json
import os
import shlex
from typing import Any

from kzoo.training import rundir


def cell_figures(cell_dir: str) -> dict[str, Any]:
    history = rundir.read_history(cell_dir)
    metrics: dict[str, Any] = {}
    if os.path.exists(rundir.run_file(cell_dir, "metrics")):
        with open(rundir.run_file(cell_dir, "metrics")) as f:
            metrics = json.load(f)
    wall = metrics.get("wall_time_s")
    return {
        "dir": cell_dir,
        "train_top1": history[-1].get("accuracy") if history else None,
        "test_top1": metrics.get("top1"),
        "test_top5": metrics.get("top5"),
        "evaluated_on": metrics.get("evaluated_on"),
        "epochs_completed": metrics.get("epochs_completed", len(history)),
        "images_per_sec": metrics.get("images_per_sec"),
        "wall_minutes": wall / 60 if wall is not None else None,
        "val_accuracy": [row.get("val_accuracy") for row in history],
    }


def write_reports(out: str, report: dict) -> None:
    cells = {c["slug"]: c for c in report["cells"]}
    for flag, option in report["options"].items():
        _plot_option(flag, option, cells, os.path.join(out, f"{flag}_curves.png"))
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write(_markdown(report, cells))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.2%}"


def _markdown(report: dict, cells: dict[str, dict]) -> str:
    lines = ["# kzoo sweep", "", f"Baseline: `kzoo train {shlex.join(report['base_flags'])}`", "",
             "One option varies per table; every other varied option keeps its baseline value. Train top-1: "
             "the last epoch's training accuracy (on augmented batches); test top-1/top-5: the run's final "
             "evaluation (metrics.json).", ""]
    for flag, option in report["options"].items():
        lines += [f"## {flag}", "", "| value | train top-1 | test top-1 | test top-5 | epochs completed | images/s "
                  "| wall minutes | status |", "|---|---:|---:|---:|---:|---:|---:|---|"]
        for value, slug in zip(option["values"], option["cells"]):
            c = cells[slug]
            status = c["status"] if c["status"] != "failed" else f"failed: {c['error']}"
            speed = "-" if c["images_per_sec"] is None else f"{c['images_per_sec']:.0f}"
            wall = "-" if c["wall_minutes"] is None else f"{c['wall_minutes']:.2f}"
            mark = " **(baseline)**" if value == option["baseline"] else ""
            row = [f"{value}{mark}", _pct(c["train_top1"]), _pct(c["test_top1"]), _pct(c["test_top5"]),
                   str(c["epochs_completed"]), speed, wall, status]
            lines.append("| " + " | ".join(t.replace("|", "\\|") for t in row) + " |")
        on_val = [slug for slug in option["cells"] if cells[slug]["evaluated_on"] == "val"]
        if on_val:  # honest labels: these "test" figures come from the validation split
            lines += ["", f"Test figures of {', '.join(on_val)} are on the validation split (no test split)."]
        lines += ["", f"![{flag}: validation top-1 per epoch]({flag}_curves.png)", ""]
    return "\n".join(lines)


def _plot_option(flag: str, option: dict, cells: dict[str, dict], path: str) -> None:
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    from kzoo.training.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for value, slug in zip(option["values"], option["cells"]):
        points = [(e + 1, a) for e, a in enumerate(cells[slug]["val_accuracy"]) if a is not None]
        if points:
            label = f"{flag}={value}" + (" (baseline)" if value == option["baseline"] else "")
            ax.plot(*zip(*points), marker="o", markersize=5, label=label)
    if ax.lines:
        ax.legend(fontsize=9, loc="best")
        ax.set_xlim(0.5, max(max(line.get_xdata()) for line in ax.lines) + 0.5)  # whole epochs, even just one
    else:  # a sweep stopped before any epoch still gets its (empty) figure
        ax.text(0.5, 0.5, "no finished epochs yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation top-1 accuracy")
    ax.set_title(f"{flag}: validation top-1 per epoch (other options at baseline)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
