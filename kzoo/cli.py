"""`kzoo` command line: parses, calls the public API, prints user mistakes as one line."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from typing import Callable, Sequence

# TensorFlow's C++ start-up notes drown the output a person wants; warnings and errors stay.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from kzoo.augment.presets import PRESETS
from kzoo.errors import KzooError
from kzoo.training.config import TrainConfig

TRAIN_HELP = {
    "model": "registered model name (kzoo models); default: a 32x32 ViT that trains in minutes on a CPU",
    "data": "tfds:NAME, an image folder, a .tar.gz/.zip of one, a .npz (x, y); default: bundled CIFAR-10 sample",
    "out": "run directory (config, history, curves, checkpoints, metrics)",
    "batch_size": "images per replica and step",
    "lr": "peak learning rate for one replica (scaled linearly with replicas)",
    "warmup": "epochs of linear warmup",
    "milestones": "comma-separated epochs where multistep multiplies the rate by --gamma",
    "augment": "preset: " + ", ".join(PRESETS),
    "augment_on": "pipeline (tf.data map on the CPU) or device (inside the train step)",
    "image_size": "resize images to H[,W]; default: the model's input size",
    "val_split": "hold out this fraction of the training data for validation (0..1)",
    "mixed_precision": "compute in bfloat16 or float16 (logits stay float32); float32 undoes a recipe's",
    "distribute": ("mirrored (TensorFlow) or data-parallel (JAX) over all local devices; "
                   "KZOO_CPU_DEVICES=N splits a CPU into N"),
    "weights": "start from a .keras, .weights.h5 or .safetensors file, or hf-hub:owner/name",
    "pretrained": "start from the model's default checkpoint (kzoo models --pretrained)",
    "freeze": "train only from this point: head, stage3, stage4, or a number of last blocks",
    "early_stopping": "stop after this many epochs without improvement of --monitor",
    "steps_per_epoch": "cap steps per epoch (smoke runs)",
    "jit_compile": "XLA-compile the train step",
    "download": "let TFDS download and prepare the dataset (needs internet)",
    "optimizer": "adamw, sgd (Nesterov), lamb or lion",
    "schedule": "cosine, onecycle, triangle (linear up then down), multistep or constant (after --warmup "
                "epochs of linear warmup; onecycle and triangle warm up themselves)",
    "clip_norm": "clip the global gradient norm to this value",
    "ema": "keep an exponential moving average of the weights with this decay per step (e.g. 0.999); "
           "validation, checkpoints and the test use it",
    "layer_decay": "layer-wise lr decay for ViT fine-tuning: block i trains at lr * decay ** (depth - i)",
    "tta": "test-time augmentation of the final test, reported beside the plain figures: flip, translate or "
           "flip,translate",
    "norm_bias_lr": "multiply the learning rate of BatchNorm offsets by this factor (airbench: 64)",
    "lookahead": "every N steps move a slow copy of the weights toward the model and reset the model to it; "
                 "the pull grows over training (airbench's lookahead, N=5)",
    "budget_minutes": "stop training after this many minutes of wall clock (data loading included); "
                      "the lr schedule follows the clock so it still anneals",
    "backup_steps": "also back up every N steps (a killed run resumes from the last one, mid-epoch)",
    "recipe": "start from a named recipe (kzoo recipes); flags given beside it override it",
}


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_train_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, so the CLI and the Python API cannot drift apart. Flags not
    given stay out of the namespace, so a --recipe can tell its own settings from the person's."""
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kwargs = {"dest": field.name, "default": argparse.SUPPRESS, "help": TRAIN_HELP.get(field.name)}
        if field.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.name in ("milestones", "image_size"):
            kwargs["type"] = _int_list
        elif field.type in ("int", "int | None"):
            kwargs["type"] = int
        elif field.type in ("float", "float | None"):
            kwargs["type"] = float
        if kwargs["help"] and default not in (None, [], False):
            kwargs["help"] += f" (default: {default})"
        parser.add_argument(flag, **kwargs)


def _cmd_train(args: argparse.Namespace) -> int:
    from kzoo.training.api import train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields}
    if given.get("data") is None:
        logging.getLogger("kzoo").info("no --data given: training on the CIFAR-10 sample bundled with kzoo")
    result = train(**given) if given.get("recipe") else train(TrainConfig(**given))
    m = result.metrics
    print(f"{m['model']}: top-1 {m['top1']:.2%}  top-5 {m['top5']:.2%}  ({m['evaluated_on']}, "
          f"{m['num_images']} images)  {m['images_per_sec'] or 0:.0f} img/s  run: {result.run_dir}")
    if "tta" in m:
        print(f"  with TTA ({','.join(m['tta']['modes'])}): top-1 {m['tta']['top1']:.2%}  top-5 {m['tta']['top5']:.2%}")
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
    from kzoo.training.api import evaluate

    r = evaluate(args.checkpoint, args.data, split=args.split, out=args.out, batch_size=args.batch_size,
                 tta=args.tta)
    print(f"top-1 {r['top1']:.2%}  top-5 {r['top5']:.2%}  loss {r['loss']:.4f}  on {r['num_images']} images")
    if "tta" in r:
        t = r["tta"]
        print(f"with TTA ({','.join(t['modes'])}): top-1 {t['top1']:.2%}  top-5 {t['top5']:.2%}  loss {t['loss']:.4f}")
    for name, acc in r["per_class_accuracy"].items():
        print(f"  {name:>20s}  {'-' if acc is None else f'{acc:.2%}'}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from kzoo.registry import get_entry, list_models

    names = list_models(args.pattern, pretrained=args.pretrained)
    if args.table:
        from kzoo.models.table import model_table

        print(model_table(names))
        return 0
    for name in names:
        entry = get_entry(name)
        print(f"{name:32s} {entry.family:8s} {'x'.join(map(str, entry.input_shape))}"
              + (f"  pretrained: {entry.pretrained}" if entry.pretrained else ""))
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kzoo", description="Keras image-classification model zoo")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model with model.fit and write a run directory")
    _add_train_flags(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="top-1/top-5, per-class accuracy and confusion matrix of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or RUN/last.keras")
    p.add_argument("--data", default=None, help="data source (default: bundled sample)")
    p.add_argument("--split", default="test")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", default=None, help="directory for eval JSON and confusion PNG")
    p.add_argument("--tta", default=None, help="also report test-time augmentation: flip, translate or flip,translate")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("recipes", help="list the named training recipes (kzoo train --recipe NAME)")
    p.set_defaults(func=_cmd_recipes)

    from kzoo.training import sweep  # its flags are kzoo train's: imported here, after _add_train_flags

    sweep.add_parser(sub)

    p = sub.add_parser("augment-grid", help="picture of a batch before and after augmentation")
    p.add_argument("--data", default=None, help="data source (default: bundled sample)")
    p.add_argument("--augment", default="strong", help="preset: " + ", ".join(PRESETS))
    p.add_argument("--out", default="augment-grid.png", help="PNG to write")
    p.add_argument("--image-size", type=_int_list, default=[32], help="H[,W] (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_augment_grid)

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'vit_*'")
    p.add_argument("--pretrained", action="store_true", help="only names with a default checkpoint")
    p.add_argument("--table", action="store_true", help="markdown table with parameters and GFLOPs")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("predict", help="top-k classes of image files with a saved model")
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or any kzoo .keras model")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, BMP, ...; any size)")
    p.add_argument("--top-k", type=int, default=5, help="classes to show per image (default: 5)")
    p.add_argument("--class-names", default=None, metavar="FILE",
                   help="class names, one per line (default: class_names.json beside the checkpoint)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("explain", help="Grad-CAM heatmaps of image files: one overlay PNG each plus a grid")
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or any kzoo .keras model")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, BMP, ...; any size)")
    p.add_argument("--out", required=True, help="directory for the overlays and grid.png")
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++", "cam"])
    p.add_argument("--layer", default=None, help="layer to explain (default: last conv map / last ViT block)")
    p.add_argument("--class-names", default=None, metavar="FILE",
                   help="class names, one per line (default: class_names.json beside the checkpoint)")
    p.set_defaults(func=_cmd_explain)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kzoo` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KzooError as err:
        print(f"kzoo {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kzoo {args.command}: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
