"""The `kzoo train` flags, one per `TrainConfig` field with its help text: shared by `kzoo train`
and `kzoo sweep` (which parses a baseline's train flags), so neither imports the other."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Collection

from kzoo.augment.presets import PRESETS
from kzoo.training.config import AUGMENT_ON, LOSSES, OPTIMIZERS, SCHEDULES, TrainConfig

TRAIN_HELP = {
    "model": "registered model name (kzoo models); the default is a 32x32 ViT that trains in minutes on a CPU",
    "data": "tfds:NAME, an image folder, a .tar.gz/.zip of one, a .npz (x, y); default: the bundled "
            "CIFAR-10 sample",
    "out": "run directory (config, history, curves, checkpoints, metrics)",
    "epochs": "passes over the training data",
    "batch_size": "images per replica and step",
    "lr": "peak learning rate for one replica (scaled linearly with replicas)",
    "optimizer": "one of " + ", ".join(OPTIMIZERS) + " (sgd is Nesterov SGD)",
    "momentum": "momentum of --optimizer sgd (the other optimizers keep their own betas)",
    "weight_decay": "decoupled weight decay; biases, norms, position embeddings and class tokens get none",
    "schedule": "one of " + ", ".join(SCHEDULES) + " (after --warmup epochs of linear warmup; onecycle and "
                "triangle warm up themselves)",
    "warmup": "epochs of linear warmup",
    "milestones": "comma-separated epochs where multistep multiplies the rate by --gamma (default: 1/2 and 3/4 "
                  "of --epochs)",
    "gamma": "factor multistep applies at each milestone",
    "label_smoothing": "label smoothing of the cross-entropy, in [0, 1)",
    "loss": "one of " + ", ".join(LOSSES) + " (adaptive reweights classes by their frequency)",
    "augment": "preset: " + ", ".join(PRESETS),
    "augment_on": " or ".join(AUGMENT_ON) + ": a tf.data map on the CPU, or inside the train step",
    "image_size": "resize images to H[,W]; default: the model's input size (kzoo models); the run logs the "
                  "data's own size and warns when images are shrunk more than 2x",
    "seed": "seeds the split, the shuffle, the augmentation and the initial weights",
    "val_split": "hold out this fraction of the training data for validation (0..1)",
    "mixed_precision": "compute in bfloat16 or float16 (logits stay float32); float32 undoes a recipe's",
    "distribute": ("mirrored (TensorFlow) or data-parallel (JAX) over all local devices; "
                   "KZOO_CPU_DEVICES=N splits a CPU into N"),
    "weights": "start from a .keras, .weights.h5 or .safetensors file, or hf-hub:owner/name",
    "pretrained": "start from the model's default checkpoint (kzoo models --pretrained)",
    "freeze": "train only from this point: head, stage3, stage4, or a number of last blocks",
    "early_stopping": "stop after this many epochs without improvement of --monitor",
    "steps_per_epoch": "cap steps per epoch (smoke runs)",
    "shots": "few-shot training: this many seeded random training images of every class (--seed picks "
             "them; val/test stay whole)",
    "class_subset": "use these classes of --data only, in every split, relabelled in the order given: indices, "
                    "ranges or names, e.g. 0-4 or cat,dog (transfer studies: pretrain on some classes, "
                    "fine-tune on the others)",
    "train_fraction": "train on a seeded, class-stratified fraction in (0, 1] of the training split (set-size "
                      "studies; val/test stay whole)",
    "jit_compile": "XLA-compile the train step",
    "download": "let TFDS download and prepare the dataset (needs internet)",
    "monitor": "the logged metric that picks the best checkpoint and drives --early-stopping",
    "data_dir": "TFDS data folder (default: TFDS's own, ~/tensorflow_datasets)",
    "clip_norm": "clip the global gradient norm to this value",
    "ema": "keep an exponential moving average of the weights with this decay per step (e.g. 0.999); "
           "validation, checkpoints and the test use it",
    "layer_decay": "layer-wise lr decay for ViT fine-tuning: block i trains at lr * decay ** (depth - i)",
    "augmix_jsd": "train with AugMix's Jensen-Shannon consistency loss at this weight (the paper: 12): each step "
                  "also runs two AugMix views of every image (3x the compute); pair with --augment basic",
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


def int_list(text: str) -> list[int]:
    """argparse type for "32" or "224,160"."""
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_train_flags(parser: argparse.ArgumentParser, config: type = TrainConfig,
                    extra_help: dict[str, str] | None = None, exclude: Collection[str] = ()) -> None:
    """One flag per field of `config` (TrainConfig or a subclass such as PretrainConfig), so the CLI
    and the Python API cannot drift apart. Flags not given stay out of the namespace, so a
    --recipe can tell its own settings from the person's. Fields in `exclude` get no flag (a
    GAN run has no use for --label-smoothing).

    Example:
        >>> p = argparse.ArgumentParser()
        >>> add_train_flags(p)
        >>> p.parse_args(["--epochs", "3"]).epochs
        3
    """
    helps = {**TRAIN_HELP, **(extra_help or {})}
    for field in dataclasses.fields(config):
        if field.name in exclude:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        kwargs = {"dest": field.name, "default": argparse.SUPPRESS, "help": helps.get(field.name)}
        if field.type == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif field.name in ("milestones", "image_size"):
            kwargs["type"] = int_list
        elif field.type in ("int", "int | None"):
            kwargs["type"] = int
        elif field.type in ("float", "float | None"):
            kwargs["type"] = float
        if kwargs["help"] and default not in (None, [], False):
            kwargs["help"] += f" (default: {default})"
        parser.add_argument(flag, **kwargs)
