"""ODConv on GTSRB: the headline run and the ODConv-vs-Conv2D / AdaptiveLoss-vs-CE comparison.

Each run is one `kzoo train` (a fresh process) on the GTSRB archive, with the official test set
for the final figures and 10% of the training tracks held out for picking the best epoch (the
30-frame tracks of one physical sign stay on one side of the split). Augmentation `signs`: no
mirroring, since a mirrored "keep left" is a "keep right". The table is written to
`--out/results.md`; every run directory keeps its metrics.json, curves.png and confusion.png.

    .venv/bin/python examples/gtsrb_odconv.py --out runs/gtsrb \
        --headline-epochs 9 --compare-epochs 3
    .venv/bin/python examples/gtsrb_odconv.py --only headline ...   # one part

Runs: `headline` = odconv_gtsrb, cross-entropy, `--headline-epochs`; `compare` = odconv_gtsrb
and conv_gtsrb with cross-entropy and odconv_gtsrb with AdaptiveLoss, `--compare-epochs` each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "gtsrb-png.tar.gz")


def train(out: str, model: str, loss: str, epochs: int, args) -> dict:
    run = os.path.join(out, f"{model}-{loss}-{epochs}ep")
    cmd = [os.path.join(os.path.dirname(sys.executable), "kzoo"), "train", "--model", model, "--data", args.data,
           "--val-split", "0.1", "--epochs", str(epochs), "--batch-size", "128", "--lr", str(args.lr),
           "--weight-decay", "0.05", "--warmup", "1", "--augment", "signs", "--loss", loss,
           "--label-smoothing", str(args.label_smoothing if loss == "crossentropy" else 0.0), "--out", run]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    with open(os.path.join(run, "metrics.json")) as f:
        metrics = json.load(f)
    metrics.update(run=run, loss_name=loss, epochs=epochs, total_s=time.perf_counter() - start,
                   command=" ".join(cmd[1:]))
    return metrics


def table(rows: list[dict]) -> str:
    lines = ["| model | loss | epochs | params | test top-1 | test top-5 | train img/s | wall time (process) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['loss_name']} | {r['epochs']} | {r['params']:,} | {100 * r['top1']:.2f}% | "
                     f"{100 * r['top5']:.2f}% | {r['images_per_sec']:.0f} | {r['total_s'] / 60:.1f} min |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=DATA)
    p.add_argument("--out", default="runs/gtsrb")
    p.add_argument("--headline-epochs", type=int, default=9)
    p.add_argument("--compare-epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--label-smoothing", type=float, default=0.1, help="cross-entropy runs only")
    p.add_argument("--only", choices=("headline", "compare"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    parts = {"headline": [("odconv_gtsrb", "crossentropy", args.headline_epochs)],
             "compare": [("odconv_gtsrb", "crossentropy", args.compare_epochs),
                         ("conv_gtsrb", "crossentropy", args.compare_epochs),
                         ("odconv_gtsrb", "adaptive", args.compare_epochs)]}
    for part, runs in parts.items():
        if args.only and part != args.only:
            continue
        rows = [train(args.out, *run, args) for run in runs]
        with open(os.path.join(args.out, f"{part}.md"), "w") as f:
            f.write(f"{part}: `{rows[0]['command']}` (model/loss/epochs vary per row)\n\n{table(rows)}\n")
        with open(os.path.join(args.out, f"{part}.json"), "w") as f:
            json.dump([{k: v for k, v in r.items() if k != "per_class_accuracy"} for r in rows], f, indent=2)
        logging_line = table(rows)
        sys.stderr.write(f"\n{part}\n{logging_line}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
