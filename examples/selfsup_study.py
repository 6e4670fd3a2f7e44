"""Self-supervised study: five ways to reach a classifier, and how the pretraining set's size matters.

One of the source write-ups pretrains a ResNet with SimCLR on unlabelled images and compares five
arms: SimCLR + linear head, SimCLR + full fine-tuning, supervised pretraining + linear head,
supervised pretraining + full fine-tuning, and training from scratch. Offline there is no second
dataset, so the transfer is between halves of one (docs/selfsup.md): both pretrainings see only the
`--pool` classes of the training split (SimCLR without their labels, the supervised run with them),
every arm is then trained on the `--target` classes, which no pretraining saw, and tested on their
test images. The set-size study pretrains SimCLR on `--fractions` of the pool (class-stratified,
seeded) for the same wall clock and probes each encoder on the target classes (`kzoo probe`: frozen
features, a linear classifier).

Every run is a `kzoo pretrain` / `kzoo train` run directory under `--out` (a finished run is reused,
an interrupted one resumed); every arm uses the same recipe, budget and seed. Writes into `--out`:
`results.md` (the five-arm table and the set-size table), `results.json` and `study.png` (test
accuracy against epochs for every arm; probe accuracy against the pretraining-set fraction).

Usage (from the repository root; the defaults take about 2 hours on a 2-core CPU):
    KERAS_BACKEND=tensorflow .venv/bin/python examples/selfsup_study.py --out runs/selfsup-study \\
        [--data ../shared/data/cifar10-jpg.tar.gz] [--model airbench94] [--pool 0-4] [--target 5-9] \\
        [--pretrain-minutes 15] [--transfer-minutes 5] [--fractions 0.1,0.3,1]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os

import kzoo
from kzoo.selfsup import linear_probe, pretrain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10 = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))
#: (arm, pretraining it starts from, --freeze): the source's five ways to a classifier.
ARMS = (
    ("simclr + linear", "simclr", "head"),
    ("simclr + fine-tune", "simclr", None),
    ("supervised + linear", "supervised", "head"),
    ("supervised + fine-tune", "supervised", None),
    ("scratch", None, None),
)

log = logging.getLogger("selfsup_study")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="study directory")
    p.add_argument("--data", default=CIFAR10, help="labelled data source (default: the CIFAR-10 JPEG archive)")
    p.add_argument("--model", default="airbench94", help="registered model of every run (default: airbench94)")
    p.add_argument("--recipe", default="airbench94", help="kzoo train recipe of the supervised runs and the arms "
                                                          "(default: airbench94)")
    p.add_argument("--jit-compile", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA-compile the train steps of every run (default: each run's own choice)")
    p.add_argument("--pool", default="0-4", help="classes the pretrainings see (default: 0-4)")
    p.add_argument("--target", default="5-9", help="classes every arm is trained and tested on (default: 5-9)")
    p.add_argument("--fractions", default="0.1,0.3,1", help="pretraining-set fractions of the pool; the largest "
                                                            "feeds the arms (default: %(default)s)")
    p.add_argument("--pretrain-minutes", type=float, default=15.0, help="wall clock of each pretraining (default: 15)")
    p.add_argument("--transfer-minutes", type=float, default=5.0, help="wall clock of each arm (default: 5)")
    p.add_argument("--pretrain-epochs", type=int, default=100, help="epoch ceiling of a pretraining; the budget "
                                                                   "usually ends it first (default: 100)")
    p.add_argument("--transfer-epochs", type=int, default=30, help="epoch ceiling of an arm (default: 30)")
    p.add_argument("--batch-size", type=int, default=512, help="SimCLR pairs per step (default: 512)")
    p.add_argument("--lr", type=float, default=0.12, help="SimCLR SGD rate (default: 0.12)")
    p.add_argument("--temperature", type=float, default=0.2, help="SimCLR NT-Xent temperature (default: 0.2)")
    p.add_argument("--mixed-precision", default=None, help="bfloat16 for the SimCLR runs (default: float32)")
    p.add_argument("--probe-epochs", type=int, default=100, help="epochs of the linear probe (default: 100)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke runs)")
    p.add_argument("--knn-limit", type=int, default=10000, help="images per split of the kNN monitor")
    p.add_argument("--knn-every", type=int, default=10, help="kNN-monitor every N epochs and at the end: a small "
                                                             "pool's epochs are shorter than a check (default: 10)")
    p.add_argument("--seed", type=int, default=0, help="seeds every run (default: 0)")
    return p.parse_args(argv)


def _finished(out: str) -> dict | None:
    path = os.path.join(out, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _jit(args: argparse.Namespace) -> dict:
    return {} if args.jit_compile is None else {"jit_compile": args.jit_compile}


def pretrain_simclr(args: argparse.Namespace, fraction: float) -> dict:
    """The SimCLR run on `fraction` of the pool (reused when finished); its metrics."""
    out = os.path.join(args.out, f"simclr-{fraction:g}")
    if _finished(out) is None:
        pretrain(**_jit(args),model=args.model, data=args.data, out=out, class_subset=args.pool,
                 train_fraction=None if fraction == 1 else fraction, budget_minutes=args.pretrain_minutes,
                 epochs=args.pretrain_epochs, batch_size=args.batch_size, lr=args.lr, temperature=args.temperature,
                 mixed_precision=args.mixed_precision, knn_limit=args.knn_limit, knn_every=args.knn_every, seed=args.seed,
                 steps_per_epoch=args.steps_per_epoch)
    return _finished(out)


def _train(args: argparse.Namespace, out: str, classes: str, minutes: float, **settings) -> dict:
    if _finished(out) is None:
        kzoo.train(recipe=args.recipe, model=args.model, data=args.data, out=out, class_subset=classes,
                   budget_minutes=minutes, epochs=args.transfer_epochs, seed=args.seed,
                   steps_per_epoch=args.steps_per_epoch, **_jit(args), **settings)
    return _finished(out)


def headless(run: str, metrics: dict) -> str:
    """The supervised run's tested checkpoint without its head, as RUN/encoder.keras: with the same
    class count, `--weights` would otherwise load the pool's head into the target's classifier."""
    import keras

    from kzoo.transfer import replace_head

    path = os.path.join(run, "encoder.keras")
    if not os.path.exists(path):
        model = keras.saving.load_model(os.path.join(run, f"{metrics['checkpoint']}.keras"), safe_mode=True)
        replace_head(model, 0).save(path)
    return path


def probe(args: argparse.Namespace, encoder: str, name: str) -> dict:
    out = os.path.join(args.out, "probes", name)
    path = os.path.join(out, "probe.json")
    if not os.path.exists(path):
        linear_probe(encoder, args.data, out=out, epochs=args.probe_epochs, seed=args.seed, classes=args.target)
    with open(path) as f:
        return json.load(f)


def test_curve(run: str) -> list[float]:
    """Accuracy on the watched test split after every epoch (history.csv's val_accuracy)."""
    with open(os.path.join(run, "history.csv")) as f:
        return [float(row["val_accuracy"]) for row in csv.DictReader(f) if row.get("val_accuracy")]


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    fractions = sorted({float(f) for f in args.fractions.split(",")})
    simclr = {f: pretrain_simclr(args, f) for f in fractions}
    supervised_run = os.path.join(args.out, "supervised")
    supervised = _train(args, supervised_run, args.pool, args.pretrain_minutes)
    starts = {"simclr": simclr[fractions[-1]]["encoder"], "supervised": headless(supervised_run, supervised)}

    arms = []
    for arm, start, freeze in ARMS:
        run = os.path.join(args.out, "arms", arm.replace(" + ", "-"))
        m = _train(args, run, args.target, args.transfer_minutes, weights=starts.get(start), freeze=freeze)
        curve = test_curve(run)
        arms.append({"arm": arm, "run": run, "top1": m["top1"], "top5": m["top5"], "epochs": m["epochs_completed"],
                     "wall_time_s": m["wall_time_s"], "curve": curve, "tta_top1": (m.get("tta") or {}).get("top1")})

    sizes = []
    for f in fractions:
        p = probe(args, simclr[f]["encoder"], f"simclr-{f:g}")
        sizes.append({"fraction": f, "pool_images": simclr[f]["train_images"], "epochs": simclr[f]["epochs_completed"],
                      "wall_time_s": simclr[f]["wall_time_s"], "knn_top1": simclr[f]["knn_top1"],
                      "probe_top1": p["top1"], "probe_top5": p["top5"]})
    supervised_probe = probe(args, starts["supervised"], "supervised")
    results = {"settings": vars(args), "arms": arms, "set_size": sizes,
               "supervised_pretraining": {"top1_on_pool": supervised["top1"], "epochs": supervised["epochs_completed"],
                                          "probe_top1": supervised_probe["top1"]}}
    _write(args, results)
    return results


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def _write(args: argparse.Namespace, results: dict) -> None:
    sup = results["supervised_pretraining"]
    lines = [f"{args.model}, recipe `{args.recipe}`, seed {args.seed}; pretraining on classes {args.pool} of "
             f"{args.data} ({args.pretrain_minutes:g} min each), arms trained and tested on classes {args.target} "
             f"({args.transfer_minutes:g} min each).", "",
             "| arm | test top-1 | with TTA | epochs | minutes |", "| --- | ---: | ---: | ---: | ---: |"]
    for a in results["arms"]:
        lines.append(f"| {a['arm']} | {_pct(a['top1'])} | {_pct(a['tta_top1'])} | {a['epochs']} | "
                     f"{a['wall_time_s'] / 60:.1f} |")
    lines += ["", f"Supervised pretraining: {_pct(sup['top1_on_pool'])}% on the pool's test images after "
                  f"{sup['epochs']} epochs; its frozen features probe at {_pct(sup['probe_top1'])}% on the target "
                  "classes.", "",
              "| SimCLR pool fraction | pool images | epochs | kNN top-1 (pool classes) | probe top-1 (target) | "
              "probe top-5 |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in results["set_size"]:
        lines.append(f"| {s['fraction']:g} | {s['pool_images']} | {s['epochs']} | {_pct(s['knn_top1'])} | "
                     f"{_pct(s['probe_top1'])} | {_pct(s['probe_top5'])} |")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    _figure(results, os.path.join(args.out, "study.png"))


def _figure(results: dict, path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    curves, sizes = fig.subplots(1, 2)
    for a in results["arms"]:
        curves.plot(range(1, len(a["curve"]) + 1), [100 * v for v in a["curve"]], marker="o", label=a["arm"])
    curves.set_xlabel("epoch on the target classes")
    curves.set_ylabel("test top-1 (%)")
    curves.grid(alpha=0.3)
    curves.legend()
    rows = results["set_size"]
    sizes.plot([100 * r["fraction"] for r in rows], [100 * r["probe_top1"] for r in rows], marker="o",
               label="SimCLR encoder, linear probe")
    sizes.axhline(100 * results["supervised_pretraining"]["probe_top1"], color="grey", linestyle="--",
                  label="supervised encoder, linear probe")
    sizes.set_xscale("log")
    sizes.set_xlabel("pretraining set (% of the pool)")
    sizes.set_ylabel("probe top-1 on the target classes (%)")
    sizes.grid(alpha=0.3)
    sizes.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
