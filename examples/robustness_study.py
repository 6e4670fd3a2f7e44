"""Robustness study: one model and recipe trained with different augmentations under the same
budget, then clean accuracy and accuracy under the 15 common corruptions side by side.

The robustness section that closes one of the source write-ups, done the way papers report it
(Hendrycks & Dietterich 2019): each run is a `kzoo.train` run directory under `--out/<augment>`
(a finished run with the same settings is reused, an interrupted one resumed), evaluated by
`kzoo.robustness.evaluate_robustness` against the first augmentation's run as the mCE baseline.

Writes into `--out`: one run directory per augmentation, each with `robustness/` (json, table,
heatmap), plus `results.md` (one row per augmentation: clean accuracy, mean corruption accuracy,
mCE, relative mCE, per-family accuracy), `results.json` and `study.png` (clean vs corruption
accuracy per augmentation, and accuracy against severity per augmentation).

Usage (from the repository root):
    KERAS_BACKEND=tensorflow .venv/bin/python examples/robustness_study.py --out runs/robustness-study \\
        [--recipe airbench94] [--augments none,basic,randaugment,augmix] [--budget-minutes 10] \\
        [--data ../shared/data/cifar10-jpg.tar.gz] [--limit 2000] [--severities 1-5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os

import numpy as np

import kzoo
from kzoo.robustness import evaluate_robustness

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10 = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))

log = logging.getLogger("robustness_study")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="study directory")
    p.add_argument("--data", default=CIFAR10, help="data source (default: the CIFAR-10 JPEG archive)")
    p.add_argument("--recipe", default="airbench94", help="kzoo train recipe shared by every run (default: airbench94)")
    p.add_argument("--model", default=None, help="override the recipe's model (default: the recipe's)")
    p.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA-compile the train step (default: the recipe's choice)")
    p.add_argument("--augments", default="none,basic,randaugment,augmix",
                   help="--augment presets to compare; the first is the mCE baseline (default: %(default)s)")
    p.add_argument("--budget-minutes", type=float, default=10.0, help="training wall clock per run (default: 10)")
    p.add_argument("--epochs", type=int, default=None, help="epoch ceiling per run (default: the recipe's)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke runs)")
    p.add_argument("--limit", type=int, default=None, help="evaluate on a seeded subset of the test images")
    p.add_argument("--corruptions", default="all", help="corruptions to evaluate (default: the 15)")
    p.add_argument("--severities", default="1-5", help="severities to evaluate (default: 1-5)")
    p.add_argument("--seed", type=int, default=0, help="seeds training and the corruptions (default: 0)")
    return p.parse_args(argv)


def train_run(augment: str, args: argparse.Namespace) -> str:
    """Train (or reuse) the run of one augmentation; returns the checkpoint its figures come from."""
    out = os.path.join(args.out, augment)
    metrics_file = os.path.join(out, "metrics.json")
    if not os.path.exists(metrics_file):
        settings = dict(recipe=args.recipe, data=args.data, augment=augment, out=out, seed=args.seed,
                        budget_minutes=args.budget_minutes, steps_per_epoch=args.steps_per_epoch)
        for key in ("epochs", "model", "jit_compile"):
            if getattr(args, key) is not None:
                settings[key] = getattr(args, key)
        kzoo.train(**settings)
    with open(metrics_file) as f:
        return os.path.join(out, f"{json.load(f)['checkpoint']}.keras")


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    augments = [a.strip() for a in args.augments.split(",") if a.strip()]
    checkpoints = {a: train_run(a, args) for a in augments}
    baseline = checkpoints[augments[0]]
    results = []
    for augment in augments:
        report = evaluate_robustness(checkpoints[augment], args.data, corruptions=args.corruptions,
                                     severities=args.severities, baseline=None if augment == augments[0] else baseline,
                                     limit=args.limit, seed=args.seed)
        results.append({"augment": augment, "checkpoint": checkpoints[augment], "summary": report["summary"],
                        "accuracy": report["accuracy"], "num_images": report["num_images"]})
    _write(args, results)
    return results


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _write(args: argparse.Namespace, results: list[dict]) -> None:
    families = list(results[0]["summary"]["family_accuracy"])
    lines = [f"Recipe `{args.recipe}`, {args.budget_minutes:g} min of training each, {results[0]['num_images']} test "
             f"images of {args.data}; baseline for mCE: `{results[0]['augment']}` (100).", "",
             "| --augment | clean | corruption acc. | mCE | rel. mCE | " + " | ".join(families) + " |",
             "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in families) + " |"]
    for r in results:
        s = r["summary"]
        mce = s.get("mce", 1.0 if r is results[0] else None)
        rel = s.get("relative_mce", 1.0 if r is results[0] else None)
        lines.append(f"| {r['augment']} | {_pct(s['clean_accuracy'])} | {_pct(s['mean_corruption_accuracy'])} | "
                     f"{_pct(mce)} | {_pct(rel)} | " + " | ".join(_pct(s["family_accuracy"][f]) for f in families)
                     + " |")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"recipe": args.recipe, "budget_minutes": args.budget_minutes, "data": args.data,
                   "results": results}, f, indent=2)
    _figure(results, os.path.join(args.out, "study.png"))


def _figure(results: list[dict], path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    bars, curves = fig.subplots(1, 2)
    names = [r["augment"] for r in results]
    x = np.arange(len(names))
    clean = [100 * r["summary"]["clean_accuracy"] for r in results]
    corrupted = [100 * r["summary"]["mean_corruption_accuracy"] for r in results]
    bars.bar(x - 0.2, clean, 0.4, label="clean")
    bars.bar(x + 0.2, corrupted, 0.4, label="mean over corruptions")
    bars.set_xticks(x, names)
    bars.set_ylabel("accuracy (%)")
    bars.legend(loc="upper center", ncol=2)  # above the bars (they stay under 100)
    bars.set_ylim(0, 110)
    for r in results:
        # int severities, also when `results` was read back from results.json (string keys)
        table = {c: {int(s): acc for s, acc in by.items()} for c, by in r["accuracy"].items()}
        levels = sorted({s for by in table.values() for s in by})
        mean = [100 * np.mean([table[c][s] for c in table]) for s in levels]
        curves.plot([0, *levels], [100 * r["summary"]["clean_accuracy"], *mean], marker="o", label=r["augment"])
    curves.set_xlabel("severity (0 = clean)")
    curves.set_ylabel("mean accuracy over corruptions (%)")
    curves.grid(alpha=0.3)
    curves.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
