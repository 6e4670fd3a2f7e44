"""Real or generated? Detectors of GAN images, tested on a generator they never saw.

The offline stand-in for the source's AI-generated-image (AIGC) experiment: a balanced folder
dataset of real CIFAR-10 images against samples of kzoo GANs (`kzoo gan train`), then the CAM
VGG, the ViT and the fused ViT + CAM-guided CNN trained by `kzoo.train` to tell them apart.

Data (written once into OUT/data, reused when its manifest matches):
    train/real       --n-train CIFAR-10 training images (a seeded subset)
    train/generated  --n-train samples of the --train-generator checkpoints (split evenly, seed 0)
    test/real        --n-test CIFAR-10 test images (never in train/)
    test/generated   --n-test samples of --test-generator: another GAN than the training ones, so the
                     test measures generalisation to an unseen generator
Both classes are written as JPEG at --jpeg-quality, so the file format (CIFAR-10's copy is JPEG,
generator output is not) is not what a detector learns. Validation is a seeded 10% split of train/
(the training generators): "train-validation gap" is the last epoch's training accuracy minus the
best validation accuracy, and "held-out generator" is the test split's accuracy.

For each detector and each of --seeds: kzoo.train (same epochs, budget, augmentation; the seed sets
initialisation, augmentation and order, the data stay the same), then Grad-CAM overlays of four real
and four generated test images (kzoo.explain, first seed). A held-out accuracy moves by a few points
between seeds, so "is the fused model at least as good" is read from the mean over seeds. Writes
OUT/results.md (mean +- std per detector, then every run), OUT/results.json, OUT/val_accuracy.png,
OUT/gradcam/<model>/grid.png and OUT/gradcam.png (every detector's overlays side by side).

Usage (from the repository root; the GANs first, e.g. runs/sngan and runs/dcgan from kzoo gan train):
    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python examples/aigc_detection.py \\
        --train-generator runs/sngan/last.keras --test-generator runs/dcgan/last.keras \\
        --out runs/aigc [--real-data SRC] [--n-train 5000] [--n-test 1000] [--epochs 10] [--budget-minutes 8] \\
        [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np

import kzoo
from kzoo import data as kdata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10 = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))
# The source's three detectors at CIFAR size: VGG with class activation maps, the ViT, and the
# fused ViT + CAM-guided CNN whose two branches are exactly those two networks (`fusion_cifar`).
DETECTORS = {"vgg11_bn_cam_cifar": "VGG (CAM)", "vit_cifar_tiny": "ViT", "fusion_cifar": "fused ViT + CAM VGG"}
FIGURES = ("train_accuracy", "best_val_accuracy", "gap", "held_out_accuracy", "real", "generated")


def _write_jpegs(images: np.ndarray, folder: str, prefix: str, quality: int) -> list[str]:
    from PIL import Image

    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, image in enumerate(np.clip(np.round(images), 0, 255).astype("uint8")):
        paths.append(os.path.join(folder, f"{prefix}_{i:05d}.jpg"))
        Image.fromarray(image).save(paths[-1], quality=quality)
    return paths


def _real_images(source: str, split: str, n: int, seed: int) -> np.ndarray:
    bundle = kdata.load(source, split, batch_size=500, limit=n, shuffle=False, seed=seed)
    return np.concatenate([images for images, _ in bundle.dataset.as_numpy_iterator()])[:n]


def _generated(checkpoints: list[str], n: int, seed: int) -> np.ndarray:
    from kzoo.generative import to_pixels
    from kzoo.generative.sampling import load_gan

    shares = np.diff(np.linspace(0, n, len(checkpoints) + 1).astype(int))
    parts = [np.asarray(to_pixels(load_gan(path).generate(int(k), seed=seed))) for path, k in zip(checkpoints, shares)]
    return np.concatenate(parts)


def build_dataset(args: argparse.Namespace) -> str:
    """OUT/data with train/ and test/ folders of real and generated JPEGs (reused if unchanged)."""
    folder = os.path.join(args.out, "data")
    manifest = {"real_data": args.real_data,
                "train_generators": [os.path.abspath(p) for p in args.train_generator],
                "test_generator": os.path.abspath(args.test_generator), "n_train": args.n_train,
                "n_test": args.n_test, "jpeg_quality": args.jpeg_quality, "seed": args.seed}
    path = os.path.join(folder, "manifest.json")
    if os.path.exists(path) and json.load(open(path)) == manifest:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    _write_jpegs(_real_images(args.real_data, "train", args.n_train, args.seed), f"{folder}/train/real", "real",
                 args.jpeg_quality)
    _write_jpegs(_generated(args.train_generator, args.n_train, 0), f"{folder}/train/generated", "gan",
                 args.jpeg_quality)
    _write_jpegs(_real_images(args.real_data, "test", args.n_test, args.seed), f"{folder}/test/real", "real",
                 args.jpeg_quality)
    _write_jpegs(_generated([args.test_generator], args.n_test, 1), f"{folder}/test/generated", "gan",
                 args.jpeg_quality)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
    return folder


def run_detector(name: str, seed: int, data: str, args: argparse.Namespace, explain: bool) -> dict:
    """Train one detector with one seed (reused if its run exists); explain eight test images if asked."""
    from kzoo.explain.commands import explain_images
    from kzoo.training import rundir

    out = os.path.join(args.out, "runs", name, f"seed{seed}")
    if os.path.exists(rundir.run_file(out, "metrics")):
        metrics = json.load(open(rundir.run_file(out, "metrics")))
    else:
        metrics = kzoo.train(model=name, data=data, val_split=0.1, epochs=args.epochs,
                             budget_minutes=args.budget_minutes, augment="basic", batch_size=128,
                             seed=seed, out=out).metrics
    history = rundir.read_history(out)
    report = None
    if explain:
        picks = [os.path.join(data, "test", kind, f"{prefix}_{i:05d}.jpg")
                 for kind, prefix in (("real", "real"), ("generated", "gan")) for i in range(4)]
        report = explain_images(rundir.run_file(out, "best"), picks, os.path.join(args.out, "gradcam", name))
    val = [row["val_accuracy"] for row in history if "val_accuracy" in row]
    per_class = metrics["per_class_accuracy"]
    return {"model": name, "seed": seed, "label": DETECTORS.get(name, name), "params": metrics.get("params"),
            "train_accuracy": history[-1].get("accuracy") if history else None,
            "best_val_accuracy": max(val) if val else None,
            "gap": history[-1]["accuracy"] - max(val) if val and "accuracy" in history[-1] else None,
            "held_out_accuracy": metrics["top1"], "real": per_class.get("real"),
            "generated": per_class.get("generated"), "per_class": per_class,
            "epochs": len(history), "minutes": metrics.get("wall_time_s", 0) / 60,
            "gradcam": report, "val_curve": val}


def gradcam_figure(runs: list[dict], path: str, tile_px: int = 128) -> str:
    """The eight explained test images, each followed by every detector's overlay (the fused
    model's local-branch CAM as one more column): where the detectors look, side by side."""
    from PIL import Image

    from kzoo.training.plots import _pyplot

    columns = []  # (title, report entries, key of the overlay file)
    for r in runs:
        if r["gradcam"]:
            columns.append((f"{r['label']}\nGrad-CAM", r["gradcam"]["images"], "overlay"))
            if "local_grid" in r["gradcam"]:
                columns.append((f"{r['label']}\nlocal-branch CAM", r["gradcam"]["images"], "local_cam"))

    def half(file: str, right: bool) -> Image.Image:  # explain_images writes original | overlay
        image = Image.open(file).convert("RGB")
        w, h = image.size
        return image.crop((w // 2, 0, w, h) if right else (0, 0, w // 2, h)).resize((tile_px, tile_px))

    plt = _pyplot()
    rows = len(columns[0][1])
    fig, axes = plt.subplots(rows, len(columns) + 1, figsize=(1.5 * (len(columns) + 1), 1.6 * rows + 0.5),
                             squeeze=False)
    for i in range(rows):
        axes[i, 0].imshow(half(columns[0][1][i]["overlay"], right=False))
        axes[i, 0].set_title(os.path.basename(columns[0][1][i]["image"]), fontsize=6)
        for j, (title, entries, key) in enumerate(columns, start=1):
            axes[i, j].imshow(half(entries[i][key], right=True))
            axes[i, j].set_title((f"{title}\n" if i == 0 else "")
                                 + f"{entries[i]['name']} {entries[i]['probability']:.0%}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def summarize(runs: list[dict]) -> list[dict]:
    """Per detector (in run order): mean and sample std over its seeds of every figure in FIGURES."""
    summary = []
    for name in dict.fromkeys(r["model"] for r in runs):
        mine = [r for r in runs if r["model"] == name]
        row = {"model": name, "label": mine[0]["label"], "params": mine[0]["params"], "seeds": len(mine)}
        for key in FIGURES:
            values = np.array([r[key] for r in mine if r[key] is not None], dtype=float)
            row[key] = float(values.mean()) if values.size else None
            row[f"{key}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        summary.append(row)
    return summary


def _pm(row: dict, key: str, gap: bool = False) -> str:
    """A summary figure as "mean +- std" (percent, or points for the gap); the std only over several seeds."""
    value, std = 100 * row[key], 100 * row[f"{key}_std"]
    text = f"{value:+.1f} pt" if gap else f"{value:.2f}%"
    return f"{text} +- {std:.2f}" if row["seeds"] > 1 else text


def write_results(runs: list[dict], args: argparse.Namespace) -> list[dict]:
    """OUT/results.md, results.json and val_accuracy.png; returns the per-detector summary."""
    from kzoo.training.plots import _pyplot

    summary = summarize(runs)
    lines = ["# Real vs generated: detectors on a held-out generator", "",
             f"Train/validation: real CIFAR-10 vs {', '.join(args.train_generator)}; test: real CIFAR-10 test "
             f"images vs {args.test_generator} (a generator the detectors never saw). {args.n_train} + "
             f"{args.n_train} training and {args.n_test} + {args.n_test} test images, JPEG q{args.jpeg_quality}; "
             f"detector seeds {args.seeds} (mean +- sample std over them).", "",
             "| detector | params | train acc (last epoch) | best val acc | gap | held-out generator acc "
             "| real / generated |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in summary:
        lines.append(f"| {r['label']} (`{r['model']}`) | {r['params'] or 0:,} | {_pm(r, 'train_accuracy')} | "
                     f"{_pm(r, 'best_val_accuracy')} | {_pm(r, 'gap', gap=True)} | "
                     f"**{_pm(r, 'held_out_accuracy')}** | {100 * r['real']:.1f}% / {100 * r['generated']:.1f}% |")
    lines += ["", "Every run:", "", "| detector | seed | train acc | best val acc | gap | held-out acc "
              "| real / generated | epochs | minutes |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['label']} | {r['seed']} | {r['train_accuracy']:.2%} | {r['best_val_accuracy']:.2%} | "
                     f"{100 * r['gap']:+.1f} pt | {r['held_out_accuracy']:.2%} | "
                     f"{r['real']:.1%} / {r['generated']:.1%} | {r['epochs']} | {r['minutes']:.1f} |")
    grids = [r for r in runs if r["gradcam"]]
    if grids:
        gradcam_figure(grids, os.path.join(args.out, "gradcam.png"))
    lines += ["", "Grad-CAM of four real and four generated test images per detector (first seed): "
              "[all detectors side by side](gradcam.png), "
              + ", ".join(f"[{r['model']}](gradcam/{r['model']}/grid.png)" for r in grids), ""]
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(lines))
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"args": vars(args), "summary": summary, "results": runs}, f, indent=2)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors: dict[str, str] = {}
    for r in runs:
        first = r["model"] not in colors
        color = colors.setdefault(r["model"], f"C{len(colors)}")
        label = r["label"] if first else None  # one legend entry per detector, one line per seed
        ax.plot(range(1, len(r["val_curve"]) + 1), r["val_curve"], marker="o", markersize=3, color=color,
                alpha=0.8, label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy (training generators)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, "val_accuracy.png"), dpi=110)
    plt.close(fig)
    return summary


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train-generator", action="append", required=True, help="GAN checkpoint(s) of train/")
    p.add_argument("--test-generator", required=True, help="GAN checkpoint of test/ (held out)")
    p.add_argument("--out", required=True)
    p.add_argument("--real-data", default=CIFAR10, help="data source of the real images (train and test splits); "
                   "default: ../shared/data/cifar10-jpg.tar.gz")
    p.add_argument("--n-train", type=int, default=5000, help="real and generated training images each")
    p.add_argument("--n-test", type=int, default=1000, help="real and generated test images each")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--budget-minutes", type=float, default=8.0, help="per detector")
    p.add_argument("--models", default=",".join(DETECTORS))
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--seed", type=int, default=0, help="seed of the data (which real images, the validation split)")
    p.add_argument("--seeds", default="0", help="comma-separated detector seeds; each detector trains once per seed")
    args = p.parse_args(argv)
    try:
        seeds = list(dict.fromkeys(int(s) for s in args.seeds.split(",")))  # a repeated seed is one run
    except ValueError:
        p.error(f"--seeds: expected comma-separated integers such as 0,1,2, got {args.seeds!r}")
    data = build_dataset(args)
    # Seed by seed, so a cut-short run still has every detector's first seed.
    runs = [run_detector(name, seed, data, args, explain=i == 0)
            for i, seed in enumerate(seeds) for name in args.models.split(",")]
    write_results(runs, args)
    print(open(os.path.join(args.out, "results.md")).read())
    return runs


if __name__ == "__main__":
    main()
