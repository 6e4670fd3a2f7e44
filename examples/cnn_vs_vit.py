"""CNN vs Transformer at matched size with CutMix: a VGG11-shaped CNN and a ViT of equal
parameter count, trained with one recipe on the same data.

A CPU-sized replication of a course project's comparison (VGG11 with 129,176,036 parameters
against ViT-B/16 extended to 18 blocks, 128,402,788, on CIFAR-100 resized to 224): here both
networks come from `kzoo.models.matched.matched_pair`'s search, each within 2% of
`--target-params` trainable parameters, and each is trained by `kzoo.train` with the source's
recipe: SGD with momentum 0.9, lr 1e-3, weight decay 1e-3, batch 64, the learning rate divided
by 10 after half the epochs, pad-crop + flip + CutMix (alpha 1.0) on every batch (`--augment
cutmix`). What differs from the source: CIFAR-10 at 32x32 (CIFAR-100 is not available offline),
training from scratch (the source fine-tuned ImageNet weights), BatchNorm in the CNN, per-image
CutMix boxes, and kzoo's SGD, which is Nesterov with decoupled weight decay (torch's default SGD
is plain momentum with L2 in the gradient).

Writes into `--out`: `vgg/` and `vit/` (complete kzoo run directories; a finished one with the
same settings is reused, an interrupted one resumed), `curves.png` (train and test top-1 and
loss of both models per epoch, one figure), `results.md` (one table) and `results.json`.

Cost: at `--target-params 1000000` and 10 epochs of the 50,000 CIFAR-10 training images, a quiet
2-core CPU trained the CNN at 1,291 images/s and the ViT at 296: 36 minutes in all (docs/recipes.md
has the results). The default 2M parameters costs more, mostly in the ViT (unmeasured).

Usage (from the repository root):
    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python examples/cnn_vs_vit.py \\
        --out runs/cnn-vs-vit [--target-params 2000000] [--epochs 10] [--data sample] \\
        [--steps-per-epoch N] [--seed 0] [--no-jit-compile]
"""

from __future__ import annotations

import argparse
import json
import logging
import os

import kzoo
from kzoo.models.matched import matched_configs, register_matched
from kzoo.registry import get_entry
from kzoo.training import rundir
from kzoo.training.config import TrainConfig, config_path

# ../shared/data from the repository root (/work/shared/data here).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10 = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))
RECIPE = dict(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=1e-3, batch_size=64, schedule="multistep",
              gamma=0.1, augment="cutmix")
LABELS = {"vgg": "CNN (VGG11-shaped)", "vit": "ViT"}
COLORS = {"vgg": "tab:blue", "vit": "tab:orange"}

log = logging.getLogger("cnn_vs_vit")


def run_config(name: str, out: str, args: argparse.Namespace) -> TrainConfig:
    """The `kzoo.train` settings of one model: the source recipe, milestone at half the epochs."""
    return TrainConfig(model=name, data=args.data, out=out, epochs=args.epochs, seed=args.seed,
                       milestones=[max(1, args.epochs // 2)], steps_per_epoch=args.steps_per_epoch,
                       jit_compile=args.jit_compile,
                       **RECIPE).validate()


def train_one(kind: str, name: str, args: argparse.Namespace) -> dict:
    out = os.path.join(args.out, kind)
    cfg = run_config(name, out, args)
    if os.path.exists(rundir.run_file(out, "metrics")) and not TrainConfig.from_json(config_path(out)).differs_from(
            cfg, ignore=()):
        log.info("%s: reusing the finished run in %s", kind, out)
        with open(rundir.run_file(out, "metrics")) as f:
            metrics = json.load(f)
    else:  # a new run, the resume of an interrupted one, or kzoo's one-line refusal
        metrics = kzoo.train(cfg).metrics
    with open(rundir.run_file(out, "class_names")) as f:
        num_classes = len(json.load(f))
    return {"kind": kind, "model": name, "run_dir": out, "metrics": metrics, "num_classes": num_classes,
            "history": rundir.read_history(out)}


def figure(results: list[dict], path: str, title: str, milestone: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    panels = ((axes[0], "accuracy", "top-1 accuracy"), (axes[1], "loss", "cross-entropy loss"))
    for r in results:
        epochs = [row["epoch"] + 1 for row in r["history"]]
        for ax, key, _ in panels:
            for prefix, style, split in (("", "--", "train (CutMix)"), ("val_", "-", "test")):
                values = [row.get(prefix + key, float("nan")) for row in r["history"]]
                ax.plot(epochs, values, style, color=COLORS[r["kind"]], marker="o", markersize=3,
                        label=f"{LABELS[r['kind']]} {split}")
    last = max(len(r["history"]) for r in results)
    for ax, _, ylabel in panels:
        if milestone < last:  # the rate drops at the start of epoch milestone + 1
            ax.axvline(milestone + 0.5, color="gray", linestyle=":", label="lr / 10")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results: list[dict], args: argparse.Namespace) -> str:
    head = ["model", "params (trainable)", "epochs", "images/s", "train top-1 (last epoch)", "test top-1",
            "test top-5", "minutes"]
    rows = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    for r in results:
        m, speed = r["metrics"], r["metrics"].get("images_per_sec")
        cells = [LABELS[r["kind"]], f"{r['params']:,}", str(m["epochs_completed"]),
                 f"{speed:.0f}" if speed else "-", f"{r['history'][-1]['accuracy']:.1%}", f"{m['top1']:.1%}",
                 f"{m['top5']:.1%}", f"{m['wall_time_s'] / 60:.1f}"]
        rows.append(f"| {' | '.join(cells)} |")
    vgg, vit = results[0]["config"], results[1]["config"]
    widths = [round(v * vgg["width_multiplier"]) for v in (64, 128, 256, 512)]
    note = (
        f"Data: {results[0]['metrics']['data']}, {results[0]['metrics']['num_images']} test images; target "
        f"{args.target_params:,} trainable parameters (BatchNorm statistics not counted). CNN: VGG11 layout, conv "
        f"widths {widths[0]}/{widths[1]}/{widths[2]}/{widths[3]}, BatchNorm, GAP + 2 x {vgg['fc_units']} FC. ViT: "
        f"{vit['patch_size']}x{vit['patch_size']} patches, dim {vit['dim']}, depth {vit['depth']}, {vit['heads']} "
        f"heads, MLP {vit['mlp_dim']}, class token. Recipe: SGD (Nesterov) momentum 0.9, lr 1e-3 / 10 after epoch "
        f"{max(1, args.epochs // 2)}, weight decay 1e-3, batch 64, pad-crop + flip + CutMix (alpha 1), seed "
        f"{args.seed}, backend {results[0]['metrics']['backend']}. Train top-1 is measured on the CutMix batches "
        "(argmax of the mixed label), test top-1/top-5 after the last epoch; images/s is the median epoch's "
        "training speed; minutes include validation and the final evaluation."
    )
    return "\n".join(rows) + "\n\n" + note + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=CIFAR10 if os.path.exists(CIFAR10) else "sample",
                        help="a kzoo data source (default: the shared CIFAR-10 archive, else the bundled sample)")
    parser.add_argument("--target-params", type=int, default=2_000_000, help="trainable parameters of each model")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-jit-compile", dest="jit_compile", action="store_false", help="train without XLA")
    parser.add_argument("--out", default="runs/cnn-vs-vit")
    args = parser.parse_args(argv)

    names = dict(zip(("vgg", "vit"), register_matched(args.target_params)))
    results = [train_one(kind, name, args) for kind, name in names.items()]
    # Both runs read the same data, so one class count and input size describe both models.
    image_size = get_entry(names["vgg"]).input_shape[:2]
    configs = matched_configs(args.target_params, results[0]["num_classes"], image_size)
    for r, config in zip(results, configs):
        r["config"] = config
        r["params"] = config["params"]

    os.makedirs(args.out, exist_ok=True)
    milestone = max(1, args.epochs // 2)
    figure(results, os.path.join(args.out, "curves.png"),
           f"VGG11-shaped CNN vs ViT at {args.target_params:,} parameters: SGD, CutMix", milestone)
    markdown = table(results, args)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(markdown)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"target_params": args.target_params, "recipe": RECIPE, "milestones": [milestone],
                   "results": results}, f, indent=2)
    print(markdown)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
