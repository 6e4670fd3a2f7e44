"""`kzoo pretrain` and `kzoo probe`: parsers and handlers (Keras-free until a command runs)."""

from __future__ import annotations

import argparse
import os
import dataclasses
from typing import Callable

from kzoo.distributed.commands import add_cluster_flags
from kzoo.selfsup.config import PRETRAIN_HELP, PretrainConfig
from kzoo.training.flags import add_train_flags


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from kzoo.distributed.commands import join
    from kzoo.selfsup.pretraining import pretrain

    join(args)
    fields = {f.name for f in dataclasses.fields(PretrainConfig)}
    result = pretrain(PretrainConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    m = result.metrics
    if not m:  # a process other than 0 of a job: process 0 reports
        return 0
    knn = (f"kNN top-1 {m['knn_top1']:.2%} (epoch {m['knn_epoch']})" if m.get("knn_top1") is not None
           else "no kNN monitor")
    speed = f"{m['pairs_per_sec']:.0f} pairs/s" if m.get("pairs_per_sec") else "too few steps to measure speed"
    print(f"{m['model']} {m['method']}: {m['epochs_completed']} epochs, loss {m['loss']:.4f}, {knn}, {speed}  "
          f"encoder: {m['encoder']}")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from kzoo.selfsup.probe import linear_probe

    r = linear_probe(args.encoder, args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size,
                     lr=args.lr, weight_decay=args.weight_decay, seed=args.seed, data_dir=args.data_dir,
                     limit=args.limit, val_split=args.val_split, classes=args.class_subset)
    top5 = f"  top-5 {r['top5']:.2%}" if r.get("top5") is not None else ""
    print(f"linear probe: top-1 {r['top1']:.2%}{top5}  ({r['num_images']} test images, {r['feature_dim']} features, "
          f"encoder frozen)  -> {os.path.dirname(r['probe'])}")
    return 0


def add_commands(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `pretrain` and `probe` with the `kzoo` parser; `command` is cli's subcommand factory."""
    p = command(sub, "pretrain", "self-supervised pretraining (SimCLR) of a model's backbone",
                "Pretrain a registered model's backbone without labels (SimCLR: two augmented views per\n"
                "image, NT-Xent loss) with model.fit. Every kzoo train flag applies (budget, schedule, EMA,\n"
                "resume); a kNN monitor on the labelled splits logs knn_top1. The run directory gets\n"
                "encoder.keras (the backbone alone) for kzoo probe and kzoo train --weights.",
                "kzoo pretrain --method simclr --model resnet18_cifar --data cifar10-jpg.tar.gz --epochs 100 "
                "--out runs/simclr", _cmd_pretrain)
    add_train_flags(p, PretrainConfig, PRETRAIN_HELP, exclude=("shots",))  # SimCLR uses no labels
    add_cluster_flags(p)

    p = command(sub, "probe", "linear probe of a frozen encoder: top-1/top-5 of a linear classifier",
                "The linear protocol: the encoder stays frozen, features of the train and test splits are\n"
                "computed once, a linear classifier is fitted on them and tested. Writes probe.json and\n"
                "probe.keras (encoder + linear head, usable by kzoo eval and kzoo predict).",
                "kzoo probe --encoder runs/simclr/encoder.keras --data cifar10-jpg.tar.gz", _cmd_probe)
    p.add_argument("--encoder", required=True,
                   help="encoder.keras from kzoo pretrain, or a classifier checkpoint (its pre-logit features)")
    p.add_argument("--data", default=None, help="labelled data source with train and test splits "
                                                "(default: the bundled CIFAR-10 sample)")
    p.add_argument("--epochs", type=int, default=100, help="passes of the linear classifier over the cached "
                                                           "features (default: 100)")
    p.add_argument("--batch-size", type=int, default=256, help="features per step (default: 256)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of the linear classifier, cosine to "
                                                          "0 (default: 0.001)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="of the classifier's weights (default: 0.0001)")
    p.add_argument("--val-split", type=float, default=None,
                   help="data without a test split: hold out this fraction of train to test on (default: none)")
    p.add_argument("--data-dir", default=None, help="TFDS data folder (default: TFDS's own)")
    p.add_argument("--limit", type=int, default=None, help="a seeded subset of this many images per split "
                                                           "(default: all)")
    p.add_argument("--class-subset", default=None, help="probe these classes of --data only, relabelled in the "
                                                        "order given: e.g. 5-9 or cat,dog (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds the classifier and the subset (default: 0)")
    p.add_argument("--out", default=None, help="directory for probe.json and probe.keras (default: beside the "
                                               "encoder)")
