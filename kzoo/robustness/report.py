"""robustness.md (the accuracy table and summary) and robustness.png (a corruption x severity
heatmap beside accuracy against severity, one line per corruption, coloured by family)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kzoo.augment.corruption_names import FAMILIES

_FAMILY_COLOURS = {"noise": "tab:red", "blur": "tab:blue", "weather": "tab:green", "digital": "tab:purple"}


def _family(name: str) -> str:
    return next(family for family, names in FAMILIES.items() if name in names)


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{100 * value:.2f}"


def write_markdown(report: dict[str, Any], path: str) -> None:
    """The table a paper prints: accuracy (%) per corruption and severity, then the summary."""
    levels = report["severities"]
    lines = [f"# Robustness of {report['checkpoint']}", "",
             f"{report['num_images']} {report['split']} images of {report['data']}, "
             + ("the published corrupted copies" if report["seed"] is None else
                f"corrupted on the fly (seed {report['seed']})") + "; accuracy in %.", "",
             "| corruption | family | " + " | ".join(f"s{s}" for s in levels) + " | mean |"
             + (" CE | rel. CE |" if report.get("baseline") else ""),
             "| --- | --- | " + " | ".join("---:" for _ in levels) + " | ---: |"
             + (" ---: | ---: |" if report.get("baseline") else "")]
    errors = report["summary"].get("corruption_errors", {})
    for name, by_severity in report["accuracy"].items():
        row = [by_severity[s] for s in levels]
        line = f"| {name} | {_family(name)} | " + " | ".join(_pct(a) for a in row) + f" | {_pct(np.mean(row))} |"
        if name in errors:
            line += f" {_pct(errors[name]['ce'])} | {_pct(errors[name]['relative_ce'])} |"
        lines.append(line)
    s = report["summary"]
    lines += ["", f"- clean accuracy: {_pct(s['clean_accuracy'])}",
              f"- mean corruption accuracy ({s['corruptions_in_mean']} benchmark corruptions): "
              f"{_pct(s['mean_corruption_accuracy'])}"]
    if s.get("held_out_accuracy") is not None:
        lines.append(f"- held-out corruptions: {_pct(s['held_out_accuracy'])}")
    if "mce" in s:
        lines.append(f"- mCE {_pct(s['mce'])}, relative mCE {_pct(s['relative_mce'])} "
                     f"(baseline {report['baseline']}: 100)")
    if "tta" in report:
        t = report["tta"]
        lines += ["", f"With test-time augmentation ({','.join(t['modes'])}): clean accuracy "
                      f"{_pct(t['summary']['clean_accuracy'])}, mean corruption accuracy "
                      f"{_pct(t['summary']['mean_corruption_accuracy'])}.", "",
                  "| corruption | " + " | ".join(f"s{s}" for s in levels) + " | mean |",
                  "| --- | " + " | ".join("---:" for _ in levels) + " | ---: |"]
        for name, by_severity in t["accuracy"].items():
            row = [by_severity[s] for s in levels]
            lines.append(f"| {name} | " + " | ".join(_pct(a) for a in row) + f" | {_pct(np.mean(row))} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_robustness(report: dict[str, Any], path: str) -> None:
    """Heatmap of accuracy (corruption x severity) beside accuracy against severity per corruption."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(report["accuracy"])
    levels = report["severities"]
    grid = np.array([[report["accuracy"][n][s] for s in levels] for n in names]) * 100
    fig = Figure(figsize=(12, max(4.0, 0.35 * len(names) + 1.5)))
    FigureCanvasAgg(fig)
    heat, lines = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    image = heat.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    heat.set_xticks(range(len(levels)), [str(s) for s in levels])
    heat.set_yticks(range(len(names)), names, fontsize=8)
    heat.set_xlabel("severity")
    for i in range(len(names)):
        for j in range(len(levels)):
            heat.text(j, i, f"{grid[i, j]:.0f}", ha="center", va="center", fontsize=7,
                      color="white" if grid[i, j] < 60 else "black")
    fig.colorbar(image, ax=heat, label="accuracy (%)")
    styles = ["-", "--", ":", "-."]
    seen: dict[str, int] = {}
    for name in names:
        family = _family(name)
        k = seen[family] = seen.get(family, -1) + 1
        lines.plot([0, *levels], [100 * report["clean_accuracy"], *grid[names.index(name)]], marker="o", ms=3,
                   color=_FAMILY_COLOURS[family], linestyle=styles[k % len(styles)], label=f"{name} ({family})")
    lines.set_xticks([0, *levels], ["clean", *map(str, levels)])
    lines.set_xlabel("severity")
    lines.set_ylabel("accuracy (%)")
    lines.grid(alpha=0.3)
    lines.legend(fontsize=7, ncol=2, loc="lower left")
    s = report["summary"]
    title = (f"clean {_pct(s['clean_accuracy'])}%, mean corruption accuracy {_pct(s['mean_corruption_accuracy'])}%"
             + (f", mCE {_pct(s['mce'])}" if "mce" in s else ""))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
