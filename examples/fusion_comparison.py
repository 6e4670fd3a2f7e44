"""The fused ViT + CAM-guided CNN against its parts, on equal data, split, augmentation and budget.

Five small 32x32 models, each trained with the same `model.fit` recipe on the same
`kzoo.data.load` pipelines (a seeded, stratified `--val-split` of the training data, the "basic"
augmentation: pad-crop + flip), AdamW (lr 1e-3, weight decay 0.05), batch 128, dropout 0.2
before every head, and the same budget: at most `--epochs` epochs and `--budget-minutes` of
wall-clock `fit` time (compilation and validation included). The learning rate follows one
cosine cycle over whichever budget binds first, so every model anneals fully. Models:

    cnn               the CNN of fusion_tiny's local branch (stage-4 map), global average pool, head
    vit               fusion_tiny's ViT (vit_cifar_tiny), its own class-token head
    cnn_cam           the CNN, CAM-guided pooling (kzoo.layers.CAMGuidedPooling), head
    fusion_concat     fusion_tiny, fusion="concat"
    fusion_attention  fusion_tiny, fusion="attention"

Writes `results.md` (one table), `val_accuracy.png` (validation accuracy per epoch and per
minute, overlaid) and `results.json` (every epoch's figures) into `--out`.

Usage (from the repository root):
    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python examples/fusion_comparison.py \\
        --out runs/fusion-comparison [--data ../shared/data/cifar10-jpg.tar.gz | sample] \\
        [--epochs 30] [--budget-minutes 9] [--val-split 0.2] [--models cnn,vit,...] [--steps-per-epoch N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import keras
import numpy as np

import kzoo
from kzoo import data as kdata
from kzoo.layers import CAMGuidedPooling
from kzoo.registry import get_entry

# ../shared/data from the repository root (/work/shared/data here).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10 = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))
MODELS = ("cnn", "vit", "cnn_cam", "fusion_concat", "fusion_attention")
LABELS = {"cnn": "CNN alone", "vit": "ViT alone", "cnn_cam": "CNN + CAM pooling",
          "fusion_concat": "fusion (concat)", "fusion_attention": "fusion (attention)"}
DROPOUT, LR, WEIGHT_DECAY, BATCH = 0.2, 1e-3, 0.05, 128
HEAD_INIT = keras.initializers.TruncatedNormal(stddev=0.02)  # as the ViT's and the fused model's heads


def build(kind: str, num_classes: int) -> keras.Model:
    """One of MODELS; the CNN and the ViT are exactly fusion_tiny's branches."""
    fusion = get_entry("fusion_tiny").config
    if kind.startswith("fusion_"):
        return kzoo.create_model("fusion_tiny", num_classes=num_classes, fusion=kind[len("fusion_"):], dropout=DROPOUT)
    if kind == "vit":
        return kzoo.create_model(fusion["vit"], num_classes=num_classes, head_dropout=DROPOUT)
    options = {"features_only": True, "out_indices": (-1,), **fusion["cnn_options"]}
    backbone = kzoo.create_model(fusion["cnn"], num_classes=0, **options)
    features = backbone.outputs[0]
    if kind == "cnn_cam":
        x, _ = CAMGuidedPooling(num_classes, name="cam_pool")(features)
    else:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(DROPOUT, name="head_drop")(x)
    logits = keras.layers.Dense(num_classes, kernel_initializer=HEAD_INIT, dtype="float32", name="head")(x)
    return keras.Model(backbone.inputs, logits, name=kind)


class Budget(keras.callbacks.Callback):
    """Stops `fit` after `minutes`; cosine learning rate over min(time, steps) budget; records
    every epoch's logs, elapsed minutes, the training speed and the best epoch's weights."""

    def __init__(self, minutes: float, total_steps: int, batch_size: int):
        super().__init__()
        self.seconds, self.total_steps, self.batch_size = minutes * 60, total_steps, batch_size
        self.history, self.best, self.best_weights = [], -1.0, None
        self.step, self.step_seconds = 0, []

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        if self.step % 10 == 0:  # every 10 steps: under JAX each update syncs the training state
            if keras.backend.backend() == "jax":
                self.model.jax_state_sync()  # else fit's step state would overwrite the new rate
            progress = max((time.perf_counter() - self.start) / self.seconds, self.step / self.total_steps)
            self.model.optimizer.learning_rate.assign(LR * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))
        self.batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self.step_seconds.append(time.perf_counter() - self.batch_start)
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True  # Keras still validates the epoch it stops in

    def on_epoch_end(self, epoch, logs=None):
        row = {k: float(v) for k, v in (logs or {}).items()}
        row.update(epoch=epoch + 1, minutes=(time.perf_counter() - self.start) / 60, steps=self.step)
        self.history.append(row)
        if row.get("val_accuracy", -1) > self.best:
            self.best, self.best_weights = row["val_accuracy"], [w.copy() for w in self.model.get_weights()]

    @property
    def images_per_sec(self) -> float:
        # The median step: steady speed, not the steps that trace and compile (first, last partial batch).
        return self.batch_size / float(np.median(self.step_seconds[1:] or self.step_seconds))


def run(kind: str, splits: dict, args) -> dict:
    keras.utils.set_random_seed(args.seed)
    model = build(kind, splits["train"].num_classes)
    steps = args.steps_per_epoch or splits["train"].steps_per_epoch
    budget = Budget(args.budget_minutes, args.epochs * steps, BATCH)
    optimizer = keras.optimizers.AdamW(LR, weight_decay=WEIGHT_DECAY)
    optimizer.exclude_from_weight_decay(var_list=[v for v in model.trainable_variables if len(v.shape) <= 1])
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")], jit_compile=args.jit_compile)
    train = splits["train"].dataset.repeat() if args.steps_per_epoch else splits["train"].dataset
    model.fit(train, validation_data=splits["val"].dataset, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
              shuffle=False, callbacks=[budget], verbose=2)  # the pipeline shuffles (seeded)
    best = max(budget.history, key=lambda row: row["val_accuracy"])
    last = budget.history[-1]
    result = {"model": kind, "params": int(model.count_params()), "epochs": len(budget.history),
              "minutes": last["minutes"], "images_per_sec": budget.images_per_sec,
              "best_epoch": best["epoch"], "val_top1": best["val_accuracy"], "val_loss_at_best": best["val_loss"],
              "gap_at_best": best["accuracy"] - best["val_accuracy"],
              "gap_last": last["accuracy"] - last["val_accuracy"],
              "history": budget.history}
    if splits.get("test") is not None:
        model.set_weights(budget.best_weights)
        result["test_top1"] = float(model.evaluate(splits["test"].dataset, verbose=0, return_dict=True)["accuracy"])
    keras.backend.clear_session()
    return result


def table(results: list[dict], args, splits: dict) -> str:
    test = all("test_top1" in r for r in results)
    head = ["model", "params", "epochs", "images/s", "best val top-1", "val loss @ best", "train-val gap @ best",
            "train-val gap @ last"] + (["test top-1 (best epoch)"] if test else [])
    rows = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    for r in results:
        cells = [LABELS[r["model"]], f"{r['params']:,}", f"{r['epochs']}", f"{r['images_per_sec']:.0f}",
                 f"{r['val_top1']:.1%} (epoch {r['best_epoch']})", f"{r['val_loss_at_best']:.3f}",
                 f"{r['gap_at_best']:+.1%}", f"{r['gap_last']:+.1%}"] + ([f"{r['test_top1']:.1%}"] if test else [])
        rows.append(f"| {' | '.join(cells)} |")
    train, val = splits["train"], splits["val"]
    note = (f"Data: {train.source}, {train.num_examples} train / {val.num_examples} val images (val split "
            f"{args.val_split}, seed {args.seed}), augmentation basic; budget per model: {args.epochs} epochs or "
            f"{args.budget_minutes:g} min of fit, backend {keras.backend.backend()}. Gap = train accuracy "
            "(augmented, dropout on) minus val accuracy.")
    return "\n".join(rows) + "\n\n" + note + "\n"


def figure(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for r in results:
        acc = [row["val_accuracy"] for row in r["history"]]
        axes[0].plot([row["epoch"] for row in r["history"]], acc, marker="o", markersize=3, label=LABELS[r["model"]])
        axes[1].plot([row["minutes"] for row in r["history"]], acc, marker="o", markersize=3, label=LABELS[r["model"]])
    for ax, xlabel in zip(axes, ("epoch", "minutes of training")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation top-1")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Validation accuracy under an equal budget")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=CIFAR10, help="a kzoo data source; 'sample': the bundled CIFAR-10 sample")
    parser.add_argument("--epochs", type=int, default=30, help="epoch cap per model")
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="wall-clock minutes of fit per model")
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-jit-compile", dest="jit_compile", action="store_false")
    parser.add_argument("--out", default="runs/fusion-comparison")
    args = parser.parse_args(argv)
    kinds = [k for k in args.models.split(",") if k]
    unknown = sorted(set(kinds) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    os.makedirs(args.out, exist_ok=True)
    common = dict(image_size=(32, 32), batch_size=BATCH, seed=args.seed)
    splits = {"train": kdata.load(args.data, "train", val_split=args.val_split, augment="basic", **common),
              "val": kdata.load(args.data, "val", val_split=args.val_split, **common)}
    if "test" in kdata.available_splits(args.data):
        splits["test"] = kdata.load(args.data, "test", **common)
    results = []
    for kind in kinds:
        results.append(run(kind, splits, args))
        with open(os.path.join(args.out, "results.json"), "w") as f:  # kept up to date: a cut run keeps its models
            json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table(results, args, splits))
    figure(results, os.path.join(args.out, "val_accuracy.png"))
    print(table(results, args, splits))


if __name__ == "__main__":
    main()
