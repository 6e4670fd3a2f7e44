"""`kzoo zeroshot` and `kzoo train --method coop`'s flags: parsers and handlers (Keras-free until run)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

from kzoo.training.config import TrainConfig
from kzoo.training.flags import add_train_flags
from kzoo.vlm.config import COOP_HELP, METHODS, CLIPTrainConfig, CoOpConfig


def add_coop_flags(parser: argparse.ArgumentParser) -> None:
    """The flags `kzoo train` gets for --method coop/clip (their configs' fields that TrainConfig lacks)."""
    add_train_flags(parser, CoOpConfig, COOP_HELP, exclude=[f.name for f in dataclasses.fields(TrainConfig)])
    add_train_flags(parser, CLIPTrainConfig, COOP_HELP, exclude=[f.name for f in dataclasses.fields(CoOpConfig)])
    method = parser._option_string_actions["--method"]  # noqa: SLF001  argparse has no setter
    method.choices, method.help = METHODS, COOP_HELP["method"] + " (default: supervised)"


def _cmd_zeroshot(args: argparse.Namespace) -> int:
    from kzoo.vlm.zeroshot import evaluate_zero_shot

    r = evaluate_zero_shot(args.clip, args.data, args.split, classes=args.classes, templates=args.templates,
                           out=args.out, batch_size=args.batch_size, limit=args.limit, data_dir=args.data_dir)
    top5 = f"  top-5 {r['top5']:.2%}" if r.get("top5") is not None else ""
    print(f"zero-shot {r['layout']} CLIP: top-1 {r['top1']:.2%}{top5}  ({r['num_images']} {args.split} images, "
          f"{len(r['templates'])} templates)  -> {args.out}")
    return 0


def add_commands(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `zeroshot` with the `kzoo` parser; `command` is cli's subcommand factory."""
    p = command(sub, "zeroshot", "zero-shot classification with a CLIP: top-1/top-5, predictions.csv",
                "Classify a data split with a CLIP and the class names alone (prompt ensembling over the\n"
                "templates). Writes eval-zeroshot.json, confusion-zeroshot.png, predictions.csv (top-5 per\n"
                "image) and zeroshot.keras (an ordinary classifier: kzoo eval/predict/export take it).",
                "kzoo zeroshot --clip ~/clip-vit-base-patch32 --data cifar10-jpg.tar.gz --templates cifar",
                _cmd_zeroshot)
    p.add_argument("--clip", required=True, help=COOP_HELP["clip"].removeprefix("coop, clip: ").split(" (clip:")[0])
    p.add_argument("--data", default=None, help="data source (default: the bundled CIFAR-10 sample)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split (default: test)")
    p.add_argument("--classes", default=None, help=COOP_HELP["classes"].removeprefix("coop, clip: "))
    p.add_argument("--templates", default="imagenet",
                   help="simple, imagenet (OpenAI's 7), cifar (OpenAI's 18), or a text file with one template per "
                        "line, each with one {} for the class name (default: imagenet)")
    p.add_argument("--batch-size", type=int, default=128, help="images per batch (default: 128)")
    p.add_argument("--limit", type=int, default=None, help="a seeded subset of this many images (default: all)")
    p.add_argument("--data-dir", default=None, help="TFDS data folder (default: TFDS's own)")
    p.add_argument("--out", default="runs/zeroshot", help="output directory (default: runs/zeroshot)")
