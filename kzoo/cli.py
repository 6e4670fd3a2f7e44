"""`kzoo` command line: parses, calls the public API, prints user mistakes as one line.

Nothing here imports Keras or TensorFlow at module level: `kzoo --help`, `kzoo CMD --help`,
`kzoo models` and `kzoo recipes` answer in a fraction of a second, and a command that needs
TensorFlow starts it behind `kzoo.native_log`'s filter (no C++ start-up notes unless --verbose).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Callable, Sequence

from kzoo.augment.presets import PRESETS
from kzoo.distributed.commands import add_cluster_flags
from kzoo.errors import EchoedError, KzooError
from kzoo.native_log import filtered_stderr
from kzoo.training.config import TrainConfig
from kzoo.training.flags import add_train_flags, int_list

def _accuracy(r: dict) -> str:
    # Top-5 of five classes or fewer is 100% by construction: the reports leave it as None.
    return f"top-1 {r['top1']:.2%}" + (f"  top-5 {r['top5']:.2%}" if r.get("top5") is not None else "")


def _cmd_train(args: argparse.Namespace) -> int:
    from kzoo.distributed.commands import join
    from kzoo.training.api import train

    join(args)
    from kzoo.vlm.config import check_method_flags

    method = getattr(args, "method", "supervised")
    check_method_flags(method, vars(args))
    if method != "supervised":  # CLIP methods (kzoo.vlm): the same run directory, another model
        from kzoo.vlm.training import train_method

        result = train_method(method, vars(args))
    else:
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        given = {k: v for k, v in vars(args).items() if k in fields}
        result = train(**given) if given.get("recipe") else train(TrainConfig(**given))
    m = result.metrics
    if not m:  # a process other than 0 of a job: process 0 reports
        return 0
    speed = (f"{m['images_per_sec']:.0f} training img/s (train steps only)" if m.get("images_per_sec")
             else "too few steps to measure speed")
    print(f"{m['model']}: {_accuracy(m)}  ({m['evaluated_on']}, {m['num_images']} images)  {speed}  "
          f"run: {result.run_dir}")
    if "tta" in m:
        print(f"  with TTA ({','.join(m['tta']['modes'])}): {_accuracy(m['tta'])}")
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from kzoo.training.recipes import RECIPES, expand_recipe

    for name in sorted(RECIPES):
        flags = {k: v for k, v in expand_recipe(name, {}).items() if k in RECIPES[name].config or
                 k in RECIPES[name].derived}
        print(f"{name}\n  {RECIPES[name].description}\n  " +
              " ".join(f"--{k.replace('_', '-')} {_flag_value(v)}" for k, v in flags.items()))
    return 0


def _flag_value(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _cmd_eval(args: argparse.Namespace) -> int:
    common = dict(split=args.split, out=args.out, batch_size=args.batch_size, tta=args.tta,
                  map_classes_by_position=args.map_classes_by_position, classes=args.class_subset)
    if args.model_file:
        from kzoo.deploy.evaluation import evaluate_exported

        r = evaluate_exported(args.model_file, args.data, **common)
    else:
        from kzoo.training.api import evaluate

        r = evaluate(args.checkpoint, args.data, **common)
    print(f"{_accuracy(r)}  loss {r['loss']:.4f}  on {r['num_images']} images")
    if "tta" in r:
        print(f"with TTA ({','.join(r['tta']['modes'])}): {_accuracy(r['tta'])}  loss {r['tta']['loss']:.4f}")
    width = min(max(len(name) for name in r["per_class_accuracy"]), 40)
    for name, acc in r["per_class_accuracy"].items():
        print(f"  {_clip(name, width):>{width}s}  {'-' if acc is None else f'{acc:.2%}'}")
    return 0


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "~"


def _cmd_robustness(args: argparse.Namespace) -> int:
    from kzoo.robustness import evaluate_robustness

    r = evaluate_robustness(args.checkpoint, args.data, corruptions=args.corruptions, severities=args.severities,
                            baseline=args.baseline, out=args.out, split=args.split, batch_size=args.batch_size,
                            limit=args.limit, seed=args.seed, clean_data=args.clean_data, storage=args.storage,
                            tta=args.tta)
    s = r["summary"]
    print(f"clean {s['clean_accuracy']:.2%}  mean corruption accuracy {s['mean_corruption_accuracy']:.2%} "
          f"({s['corruptions_in_mean']} corruptions x {len(r['severities'])} severities, {r['num_images']} images)"
          if s["mean_corruption_accuracy"] is not None else f"clean {s['clean_accuracy']:.2%}")
    if s.get("held_out_accuracy") is not None:
        print(f"held-out corruptions {s['held_out_accuracy']:.2%}")
    if "mce" in s:
        print(f"mCE {100 * s['mce']:.1f}  relative mCE {100 * s['relative_mce']:.1f}  (baseline = 100)")
    for family, acc in s["family_accuracy"].items():
        print(f"  {family:8s} {acc:.2%}")
    if "tta" in r and s["mean_corruption_accuracy"] is not None:
        t = r["tta"]["summary"]
        print(f"with TTA ({','.join(r['tta']['modes'])}): clean {t['clean_accuracy']:.2%}  "
              f"mean corruption accuracy {t['mean_corruption_accuracy']:.2%}")
    print(f"table, figure and JSON: {r['out']}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from kzoo.registry import get_entry, list_models

    names = list_models(args.pattern, pretrained=args.pretrained)
    if not names:
        raise KzooError(f"no registered model matches {args.pattern!r}; `kzoo models` lists them all")
    if args.table:
        from kzoo.models.table import model_table

        print(model_table(names))
        return 0
    entries = [get_entry(name) for name in names]
    rows = [(e.name, e.family, "x".join(map(str, e.input_shape)), e.pretrained or "") for e in entries]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:  # columns as wide as their longest entry, so long names never shift a column
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths))
        print(f"{line}  pretrained: {row[3]}" if row[3] else line.rstrip())
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from kzoo.explain.commands import predict_images

    for r in predict_images(args.checkpoint, args.images, top_k=args.top_k, class_names_file=args.class_names):
        print(r["image"])
        for p in r["predictions"]:
            print(f"  {p['probability']:7.2%}  {p['name']}")
    return 0


def _cmd_explain(args: argparse.Namespace) -> int:
    from kzoo.explain.commands import explain_images

    r = explain_images(args.checkpoint, args.images, args.out, method=args.method, layer=args.layer,
                       class_names_file=args.class_names)
    for e in r["images"]:
        print(f"{e['image']}: {e['name']} ({e['probability']:.2%})  -> {e['overlay']}")
    print(f"layer {r['layer']}; grid: {r['grid']}")
    if "local_grid" in r:
        print(f"local-branch CAM (fused model): {r['local_grid']}")
    return 0


def _cmd_augment_grid(args: argparse.Namespace) -> int:
    from kzoo.augment import augment_grid

    size = args.image_size * 2 if len(args.image_size) == 1 else args.image_size
    path = augment_grid(args.data, args.augment, args.out, image_size=tuple(size), seed=args.seed)
    print(f"wrote {path}")
    return 0


def _command(sub, name: str, summary: str, description: str, example: str,
             func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """A subcommand with a one-line summary (kzoo --help), a description and an example (kzoo NAME --help)."""
    p = sub.add_parser(name, help=summary, description=description, epilog="example:\n  " + example,
                       formatter_class=argparse.RawDescriptionHelpFormatter, parents=[_common_flags()])
    p.set_defaults(func=func)
    return p


def _common_flags() -> argparse.ArgumentParser:
    # Accepted before or after the command name; SUPPRESS keeps a later position from resetting an earlier one.
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="only warnings, errors and results (no progress bars or notes)")
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                   help="also show TensorFlow's and XLA's start-up notes and debug logs")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kzoo", parents=[_common_flags()], formatter_class=argparse.RawDescriptionHelpFormatter,
        description="kzoo: a Keras 3 image-classification model zoo. Train, evaluate, explain and compare\n"
                    "registered models on image folders, archives, .npz files or TFDS datasets.",
        epilog="start here:\n  kzoo train                      # a small ViT on the bundled CIFAR-10 sample\n"
               "  kzoo models 'resnet*'           # what can be trained\n"
               "  kzoo CMD --help                 # every flag of a command, with its default")
    parser.set_defaults(quiet=False, verbose=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from kzoo.vlm import commands as vlm_commands

    p = _command(sub, "train", "train a model with model.fit and write a run directory",
                 "Train a registered model with model.fit. The run directory gets config.json, history.csv,\n"
                 "curves.png, best.keras/last.keras, confusion.png and metrics.json; rerunning the same\n"
                 "command resumes an interrupted run.",
                 "kzoo train --model resnet18_cifar --data my_images/ --val-split 0.1 --epochs 30 --out runs/r18",
                 _cmd_train)
    add_train_flags(p)
    vlm_commands.add_coop_flags(p)
    add_cluster_flags(p)

    p = _command(sub, "eval", "top-1/top-5, per-class accuracy and confusion matrix of a checkpoint",
                 "Evaluate a saved checkpoint, or a file written by kzoo export (run by its own runtime), on\n"
                 "a data source: accuracy, per-class accuracy, eval-*.json and confusion-*.png. The data's\n"
                 "class names must be the ones the model was trained on.",
                 "kzoo eval --checkpoint runs/r18/best.keras --data my_images/ --split test --tta flip\n"
                 "  kzoo eval --model-file runs/r18/best.onnx --data my_images/", _cmd_eval)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint", help="RUN/best.keras or RUN/last.keras")
    which.add_argument("--model-file", metavar="FILE",
                       help="an exported .onnx or .tflite file or SavedModel folder (kzoo export)")
    p.add_argument("--data", default=None, help="data source (default: the bundled CIFAR-10 sample)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split of --data: train, val (a val/ folder) or test (default: test)")
    p.add_argument("--batch-size", type=int, default=256, help="images per batch (default: 256)")
    p.add_argument("--out", default=None, help="directory for eval JSON and confusion PNG (default: beside "
                                               "the checkpoint)")
    p.add_argument("--tta", default=None, help="also report test-time augmentation: flip, translate or flip,translate "
                                               "(default: none)")
    p.add_argument("--class-subset", default=None, help="these classes of --data only, as the model was trained "
                                                        "with kzoo train --class-subset (default: all)")
    p.add_argument("--map-classes-by-position", action="store_true",
                   help="evaluate although the data's class names differ from the checkpoint's, pairing them by "
                        "position (default: refuse)")

    p = _command(sub, "robustness", "accuracy under 15 common corruptions x 5 severities (CIFAR-10-C style)",
                 "Corrupt a data split on the fly with the corruptions of Hendrycks & Dietterich (2019) and\n"
                 "report accuracy per corruption and severity, mean corruption accuracy and, against a\n"
                 "--baseline checkpoint, CE, mCE and relative mCE; writes robustness.json/.md/.png.",
                 "kzoo robustness --checkpoint runs/r18/best.keras --data cifar10-jpg.tar.gz "
                 "--baseline runs/plain/best.keras", _cmd_robustness)
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or any kzoo .keras model")
    p.add_argument("--data", default=None,
                   help="data source, corrupted on the fly; tfds:cifar10_corrupted reads TFDS's published "
                        "CIFAR-10-C instead (default: the bundled CIFAR-10 sample)")
    p.add_argument("--clean-data", default=None,
                   help="with --data tfds:cifar10_corrupted: the clean test set (default: tfds:cifar10)")
    p.add_argument("--corruptions", default="all",
                   help="all (the 15 benchmark ones), held_out (the 4 others), all+held_out, or names separated "
                        "by commas, e.g. fog,snow (default: all)")
    p.add_argument("--severities", default="1-5", help="a range or list from 1 to 5, e.g. 1-5 or 3 (default: 1-5)")
    p.add_argument("--baseline", default=None, metavar="CKPT",
                   help="checkpoint on the same classes to compute CE and mCE against (default: none)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="which split of --data (default: test)")
    p.add_argument("--batch-size", type=int, default=250, help="images per batch (default: 250)")
    p.add_argument("--limit", type=int, default=None, help="a seeded subset of this many images (default: all)")
    p.add_argument("--seed", type=int, default=0, help="seeds the random corruptions (default: 0)")
    p.add_argument("--storage", default="uint8", choices=("uint8", "float"),
                   help="uint8 truncates each corrupted image to 8 bits as CIFAR-10-C's files store it; float "
                        "keeps the corruption's float output (default: uint8)")
    p.add_argument("--tta", default=None,
                   help="also report the table with test-time augmentation: flip, translate or flip,translate "
                        "(logits averaged over the views; costs a model pass per view; default: none)")
    p.add_argument("--out", default=None, help="directory for robustness.json/.md/.png (default: RUN/robustness)")

    _command(sub, "recipes", "list the named training recipes (kzoo train --recipe NAME)",
             "List the named, documented full training configurations and the flags each sets.",
             "kzoo recipes && kzoo train --recipe airbench94 --data cifar10.tar.gz --out runs/ab94", _cmd_recipes)

    from kzoo.deploy import commands as deploy_commands
    from kzoo.distributed import commands as distributed_commands
    from kzoo.generative import commands as generative_commands
    from kzoo.selfsup import commands as selfsup_commands
    from kzoo.serve import commands as serve_commands
    from kzoo.training import sweep

    sweep.add_parser(sub, parents=[_common_flags()])
    selfsup_commands.add_commands(sub, _command)
    deploy_commands.add_commands(sub, _command)
    serve_commands.add_commands(sub, _command)
    distributed_commands.add_commands(sub, _command)
    generative_commands.add_commands(sub, _command)
    vlm_commands.add_commands(sub, _command)

    p = _command(sub, "augment-grid", "picture of a batch before and after augmentation",
                 "Draw a grid of images from --data before and after an augmentation preset.",
                 "kzoo augment-grid --augment strong --out grid.png", _cmd_augment_grid)
    p.add_argument("--data", default=None, help="data source (default: the bundled CIFAR-10 sample)")
    p.add_argument("--augment", default="strong", help="preset: " + ", ".join(PRESETS) + " (default: strong)")
    p.add_argument("--out", default="augment-grid.png", help="PNG to write (default: augment-grid.png)")
    p.add_argument("--image-size", type=int_list, default=[32], help="H[,W] (default: 32)")
    p.add_argument("--seed", type=int, default=0, help="seeds the batch and the augmentation (default: 0)")

    p = _command(sub, "models", "list registered models",
                 "List registered model names with family, input size and default checkpoint.",
                 "kzoo models 'vit_*' --table", _cmd_models)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vit_*' (default: all)")
    p.add_argument("--pretrained", action="store_true", help="only names with a default checkpoint")
    p.add_argument("--table", action="store_true", help="markdown table with parameters and GFLOPs")

    p = _command(sub, "predict", "top-k classes of image files with a saved model",
                 "Print the top-k classes of each image file (any size; resized to the model's input).",
                 "kzoo predict --checkpoint runs/r18/best.keras photo.jpg other.png", _cmd_predict)
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or any kzoo .keras model")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, BMP, ...; any size)")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--class-names", default=None, metavar="FILE",
                   help="class names, one per line (default: class_names.json beside the checkpoint)")

    p = _command(sub, "explain", "Grad-CAM heatmaps of image files: one overlay PNG each plus a grid",
                 "Write a Grad-CAM (or CAM) heatmap overlay for each image file, and a grid of all of them.",
                 "kzoo explain --checkpoint runs/r18/best.keras photo.jpg --out heatmaps/", _cmd_explain)
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or any kzoo .keras model")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, BMP, ...; any size)")
    p.add_argument("--out", required=True, help="directory for the overlays and grid.png")
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++", "cam"],
                   help="gradcam, gradcam++ or cam (default: gradcam)")
    p.add_argument("--layer", default=None, help="layer to explain (default: last conv map / last ViT block)")
    p.add_argument("--class-names", default=None, metavar="FILE",
                   help="class names, one per line (default: class_names.json beside the checkpoint)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kzoo` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
    if not args.verbose:  # JAX's INFO notes (no TPU library, joining a job) are not the person's business
        logging.getLogger("jax").setLevel(max(level, logging.WARNING))
    # TensorFlow's C++ INFO notes drown the output a person wants; warnings and errors stay.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if args.verbose else "2")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with filtered_stderr(enabled=not args.verbose):
            return func(args)
    except EchoedError:  # another process of the job printed the line
        return 2
    except KzooError as err:
        print(f"kzoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kzoo {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `kzoo models | head`: the reader left; not an error of kzoo's
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
