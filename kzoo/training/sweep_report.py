"""What `kzoo sweep` writes: each cell's figures, sweep.md (one table per varied option, or one for a
--grid) and overlaid per-epoch curves per option (or one set for the grid). A grid that varies seed
also gets a table of mean ± std over the seeds (`seed_summary`).

Two kinds of report, picked by the sweep's target: "classifier" (kzoo train and CoOp cells: top-1,
top-5, images/s; validation top-1 curves) and "gan" (kzoo gan train cells: FID, KID, losses,
steps/s; FID curves and D/G loss curves)."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import statistics
from dataclasses import dataclass
from typing import Any, Callable

from kzoo.training import rundir


@dataclass(frozen=True)
class _Figure:
    suffix: str  # file OPTION_<suffix>.png (grid_<suffix>.png for a grid)
    what: str  # the figure's title and the markdown's alt text
    ylabel: str
    series: tuple[tuple[str, str], ...]  # (cell key of per-epoch values, line style), one colour per cell
    percent: bool = False
    optional: bool = False  # drawn only when a cell has a point (FID off: no FID figure)
    styles: tuple[tuple[str, str], ...] = ()  # legend entries that explain the line styles


@dataclass(frozen=True)
class _Kind:
    read: Callable[[list[dict], dict], dict]  # (history, metrics) -> a cell's table figures and curves
    intro: Callable[[list[dict]], str]  # (cells) -> what the columns mean
    columns: tuple[tuple[str, Callable[[dict], str]], ...]  # (header, cell -> text), right-aligned
    figures: tuple[_Figure, ...]
    note: Callable[[list[dict]], str | None] = lambda cells: None  # a line under a table
    # (sweep.json name, cell key, header, format) of the figures averaged over seeds, the first also per seed
    seed_metrics: tuple[tuple[str, str, str, str], ...] = ()


def cell_figures(cell_dir: str, kind: str = "classifier") -> dict[str, Any]:
    """A cell's table figures and per-epoch curves, from its history.csv and metrics.json (either
    may be missing: a cell not run or stopped early). `kind` is "classifier" or "gan".

    Example:
        >>> cell_figures("runs/sweep/cells/baseline", "gan")["fid"]  # doctest: +SKIP
        41.7
    """
    metrics: dict[str, Any] = {}
    if os.path.exists(rundir.run_file(cell_dir, "metrics")):
        with open(rundir.run_file(cell_dir, "metrics")) as f:
            metrics = json.load(f)
    return {"dir": cell_dir, **KINDS[kind].read(rundir.read_history(cell_dir), metrics)}


def write_reports(out: str, report: dict) -> None:
    """OUT/sweep.md and the curve figures of a sweep.json-shaped `report`.

    Example:
        >>> write_reports("runs/sweep", json.load(open("runs/sweep/sweep.json")))  # doctest: +SKIP
    """
    kind = KINDS[report.get("kind", "classifier")]
    cells = {c["slug"]: c for c in report["cells"]}
    groups = _groups(report, cells)
    drawn = {g["prefix"]: [f for f in kind.figures if _plot(f, g, os.path.join(out, f"{g['prefix']}_{f.suffix}.png"))]
             for g in groups}
    with open(os.path.join(out, "sweep.md"), "w") as f:
        f.write(_markdown(report, kind, groups, drawn))


def seed_summary(report: dict) -> dict | None:
    """For a --grid that varies seed: per combination of the other varied options, each seed metric's
    mean, sample standard deviation (ddof=1; None below 2 finished seeds), n (finished seeds) and
    per-seed values (None: no result). None for any other sweep.

    Example:
        >>> cells = [{"slug": s, "values": {"seed": s}, "test_top1": v, "test_top5": None}
        ...          for s, v in (("0", 0.70), ("1", 0.72))]
        >>> row = seed_summary({"grid": True, "options": {"seed": {"values": ["0", "1"]}}, "cells": cells})["rows"][0]
        >>> round(row["top1"]["mean"], 4), round(row["top1"]["std"], 4), row["top1"]["n"], row["top5"]["mean"]
        (0.71, 0.0141, 2, None)
    """
    options = report["options"]
    if not report.get("grid") or "seed" not in options:
        return None
    kind = KINDS[report.get("kind", "classifier")]
    seeds, others = options["seed"]["values"], [flag for flag in options if flag != "seed"]
    by_combo: dict[tuple, dict[str, dict]] = {}
    for cell in report["cells"]:
        by_combo.setdefault(tuple(cell["values"][f] for f in others), {})[cell["values"]["seed"]] = cell
    rows = []
    for combo in itertools.product(*(options[f]["values"] for f in others)):
        cells = by_combo.get(combo, {})
        row: dict[str, Any] = {"values": dict(zip(others, combo)),
                               "cells": {seed: cells[seed]["slug"] for seed in seeds if seed in cells}}
        for name, key, _, _ in kind.seed_metrics:
            per_seed = {seed: cells[seed].get(key) if seed in cells else None for seed in seeds}
            found = [v for v in per_seed.values() if v is not None]
            row[name] = {"mean": statistics.fmean(found) if found else None,
                         "std": statistics.stdev(found) if len(found) > 1 else None,
                         "n": len(found), "per_seed": per_seed}
        rows.append(row)
    return {"seeds": seeds, "options": others, "std": "sample (ddof=1)", "rows": rows}


def _seed_markdown(summary: dict, kind: _Kind) -> list[str]:
    """sweep.md's table of `seed_summary`: one row per combination of the other options."""
    seeds, others = summary["seeds"], summary["options"]
    first, _, first_header, first_spec = kind.seed_metrics[0]
    headers = [*(others or ["options"]), *(header for _, _, header, _ in kind.seed_metrics), "n",
               f"{first_header} per seed ({', '.join(seeds)})"]
    align = ["---"] * len(others or [""]) + ["---:"] * (len(kind.seed_metrics) + 2)
    lines = [f"## seeds: mean ± std over seed={','.join(seeds)}", "",
             (f"One row per combination of the other varied options: mean ± sample standard deviation (n - 1) "
              f"over the seeds whose cell has the figure; n of {len(seeds)} seeds."), "",
             _row(headers), "|" + "|".join(align) + "|"]
    for row in summary["rows"]:
        figures = [_mean_std(row[name], spec) for name, _, _, spec in kind.seed_metrics]
        per_seed = ", ".join(_num(row[first]["per_seed"][seed], first_spec) for seed in seeds)
        lines.append(_row([*(row["values"].values() if others else ["base flags"]), *figures,
                           str(row[first]["n"]), per_seed]))
    return [*lines, ""]


def _mean_std(stats: dict, spec: str) -> str:
    if stats["mean"] is None:
        return "-"
    return format(stats["mean"], spec) + ("" if stats["std"] is None else f" ± {format(stats['std'], spec)}")


def _groups(report: dict, cells: dict[str, dict]) -> list[dict]:
    """The tables (and figure sets): one per option, or one for a grid. Each row: the values that
    name it and its cell."""
    if report.get("grid"):
        flags = list(report["options"])
        rows = [([c["values"][flag] for flag in flags], c) for c in report["cells"]]
        return [{"heading": "grid: " + " × ".join(flags), "prefix": "grid", "flags": flags, "headers": flags,
                 "rows": rows, "scope": "every combination"}]
    return [{"heading": flag, "prefix": flag, "flags": [flag], "headers": ["value"], "scope": "other options at "
             "baseline", "rows": [([value], cells[slug]) for value, slug in zip(option["values"], option["cells"])]}
            for flag, option in report["options"].items()]


def _label(group: dict, values: list[str], cell: dict) -> str:
    name = ", ".join(f"{flag}={value}" for flag, value in zip(group["flags"], values))
    return name + (" (baseline)" if cell["slug"] == "baseline" else "")


def _num(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _markdown(report: dict, kind: _Kind, groups: list[dict], drawn: dict[str, list[_Figure]]) -> str:
    mode = ("One row per combination of the varied options' values (--grid), the baseline's first."
            if report.get("grid") else
            "One option varies per table; every other varied option keeps its baseline value.")
    program = report.get("program", "kzoo train")  # sweeps from before --command ran kzoo train
    lines = ["# kzoo sweep", "", f"Baseline: `{program} {shlex.join(report['base_flags'])}`", "",
             f"{mode} {kind.intro(report['cells'])}", ""]
    for group in groups:
        headers = [*group["headers"], *(header for header, _ in kind.columns), "status"]
        align = ["---"] * len(group["headers"]) + ["---:"] * len(kind.columns) + ["---"]
        lines += [f"## {group['heading']}", "", _row(headers), "|" + "|".join(align) + "|"]
        for values, c in group["rows"]:
            status = c["status"] if c["status"] != "failed" else f"failed: {c['error']}"
            mark = " **(baseline)**" if c["slug"] == "baseline" else ""
            lines.append(_row([values[0] + mark, *values[1:], *(text(c) for _, text in kind.columns), status]))
        note = kind.note([c for _, c in group["rows"]])
        if note:
            lines += ["", note]
        for figure in drawn[group["prefix"]]:
            name = group["prefix"] if report.get("grid") else group["heading"]
            lines += ["", f"![{name}: {figure.what}]({group['prefix']}_{figure.suffix}.png)"]
        lines.append("")
    if report.get("seed_summary") and kind.seed_metrics:
        lines += _seed_markdown(report["seed_summary"], kind)
    return "\n".join(lines)


def _row(texts: list[str]) -> str:
    return "| " + " | ".join(t.replace("|", "\\|") for t in texts) + " |"


def _plot(figure: _Figure, group: dict, path: str) -> bool:
    """Draw one figure of a group's cells to `path`; False (nothing written) for an optional figure
    without data."""
    rows = [(_label(group, values, c), c) for values, c in group["rows"]]
    has_data = any(v is not None for _, c in rows for key, _ in figure.series for v in c.get(key) or [])
    if figure.optional and not has_data:
        return False
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    from kzoo.training.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    handles = []
    for label, cell in rows:
        colour, drew = f"C{len(handles)}", False  # one colour per cell that has a curve, in table order
        for key, style in figure.series:
            points = [(e + 1, v) for e, v in enumerate(cell.get(key) or []) if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=5, linestyle=style, color=colour)
                drew = True
        if drew:
            handles.append(Line2D([], [], color=colour, marker="o", markersize=5, label=label))
    if handles:
        styles = [Line2D([], [], color="0.3", linestyle=style, label=text) for style, text in figure.styles]
        ax.legend(handles=handles + styles, fontsize=9, loc="best")
        ax.set_xlim(0.5, max(max(line.get_xdata()) for line in ax.lines) + 0.5)  # whole epochs, even just one
    else:  # a sweep stopped before any epoch still gets its (empty) figure
        ax.text(0.5, 0.5, "no finished epochs yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("epoch")
    ax.set_ylabel(figure.ylabel)
    ax.set_title(f"{' × '.join(group['flags'])}: {figure.what} ({group['scope']})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if figure.percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _wall_minutes(metrics: dict) -> float | None:
    wall = metrics.get("wall_time_s")
    return wall / 60 if wall is not None else None


def _classifier_cell(history: list[dict], metrics: dict) -> dict[str, Any]:
    return {
        "train_top1": history[-1].get("accuracy") if history else None,
        "test_top1": metrics.get("top1"),
        "test_top5": metrics.get("top5"),
        "evaluated_on": metrics.get("evaluated_on"),
        "epochs_completed": metrics.get("epochs_completed", len(history)),
        "images_per_sec": metrics.get("images_per_sec"),
        "wall_minutes": _wall_minutes(metrics),
        "val_accuracy": [row.get("val_accuracy") for row in history],
    }


def _on_val_note(cells: list[dict]) -> str | None:
    on_val = [c["slug"] for c in cells if c["evaluated_on"] == "val"]
    # Honest labels: these "test" figures come from the validation split.
    return f"Test figures of {', '.join(on_val)} are on the validation split (no test split)." if on_val else None


def _gan_cell(history: list[dict], metrics: dict) -> dict[str, Any]:
    last = history[-1] if history else {}
    return {
        **{key: metrics.get(key) for key in ("fid", "kid", "kid_std", "best_fid", "fid_extractor", "steps_per_sec")},
        "d_loss": last.get("d_loss"),
        "g_loss": last.get("g_loss"),
        "epochs_completed": metrics.get("epochs_completed", len(history)),
        "wall_minutes": _wall_minutes(metrics),
        **{f"{key}_per_epoch": [row.get(key) for row in history] for key in ("fid", "d_loss", "g_loss")},
    }


def _gan_intro(cells: list[dict]) -> str:
    extractors = sorted({c["fid_extractor"] for c in cells if c.get("fid_extractor")})
    scores = ("FID and KID (mean ± std): each run's last measurement (metrics.json), over the features of "
              + ", ".join(f"`{e}`" for e in extractors) + " (metrics.json's fid_extractor; lower is better, "
              "comparable only with scores of the same network); best FID: the lowest measured; - where FID "
              "was off." if extractors else
              "FID/KID: - (no cell measured them; --fid-every and --fid-extractor turn them on).")
    return (f"{scores} Last d_loss/g_loss: the last epoch's mean discriminator and generator losses; steps/s: "
            "generator steps (each after --d-steps discriminator steps) per second.")


def _kid(c: dict) -> str:
    return "-" if c["kid"] is None else f"{c['kid']:.4f} ± {_num(c['kid_std'], '.4f')}"


def _col(header: str, key: str, spec: str) -> tuple[str, Callable[[dict], str]]:
    """A table column showing a cell's `key` formatted by `spec` ("-" when missing)."""
    return header, lambda c: _num(c[key], spec)


_EPOCHS = ("epochs completed", lambda c: str(c["epochs_completed"]))

KINDS = {
    "classifier": _Kind(
        read=_classifier_cell,
        intro=lambda cells: ("Train top-1: the last epoch's training accuracy (on augmented batches); test "
                             "top-1/top-5: the run's final evaluation (metrics.json)."),
        columns=(_col("train top-1", "train_top1", ".2%"), _col("test top-1", "test_top1", ".2%"),
                 _col("test top-5", "test_top5", ".2%"), _EPOCHS, _col("images/s", "images_per_sec", ".0f"),
                 _col("wall minutes", "wall_minutes", ".2f")),
        figures=(_Figure("curves", "validation top-1 per epoch", "validation top-1 accuracy",
                         (("val_accuracy", "-"),), percent=True),),
        note=_on_val_note,
        seed_metrics=(("top1", "test_top1", "test top-1", ".2%"), ("top5", "test_top5", "test top-5", ".2%"))),
    "gan": _Kind(
        read=_gan_cell,
        intro=_gan_intro,
        columns=(_col("FID", "fid", ".2f"), ("KID", _kid), _col("best FID", "best_fid", ".2f"),
                 _col("last d_loss", "d_loss", ".4f"), _col("last g_loss", "g_loss", ".4f"), _EPOCHS,
                 _col("steps/s", "steps_per_sec", ".2f"), _col("wall minutes", "wall_minutes", ".2f")),
        figures=(_Figure("curves", "FID per epoch", "FID (lower is better)", (("fid_per_epoch", "-"),),
                         optional=True),
                 _Figure("losses", "D and G losses per epoch", "loss",
                         (("d_loss_per_epoch", "-"), ("g_loss_per_epoch", "--")),
                         styles=(("-", "D loss (solid)"), ("--", "G loss (dashed)")))),
        seed_metrics=(("fid", "fid", "FID", ".2f"), ("kid", "kid", "KID", ".4f")),
    ),
}
