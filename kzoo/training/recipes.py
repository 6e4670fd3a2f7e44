"""Named training recipes: `kzoo train --recipe NAME` expands to a full, documented configuration
(model, data pipeline, optimizer, schedule, epochs, EMA, TTA); any flag given beside it wins.

docs/recipes.md holds what each recipe reached, with the command and the machine.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Callable

from kzoo.errors import KzooError


@dataclass(frozen=True)
class Recipe:
    """A configuration (TrainConfig fields) plus fields derived from the final configuration
    (e.g. multistep milestones at half of whatever --epochs ends up being)."""

    description: str
    config: dict[str, Any]
    derived: dict[str, Callable[[dict[str, Any]], Any]] = field(default_factory=dict)


# The race's transformer recipes share airbench's data side with AdamW; each varies model and clock.
_RACE_ADAMW = dict(model="cct_airbench", optimizer="adamw", lr=2e-3, weight_decay=0.05, schedule="triangle",
                   warmup=0, label_smoothing=0.2, batch_size=512, epochs=12, budget_minutes=54.0,
                   augment="flip_translate", lookahead=5, tta="flip,translate", jit_compile=False)

# airbench94's optimizer, schedule and network, shared by its recipes (the data side differs).
_AIRBENCH = dict(model="airbench94", optimizer="sgd", lr=1.5, momentum=0.85, weight_decay=8.9e-3, norm_bias_lr=64.0,
                 schedule="triangle", warmup=0, label_smoothing=0.2, batch_size=1024, lookahead=5,
                 tta="flip,translate", jit_compile=False)

RECIPES: dict[str, Recipe] = {
    "vit_keras_example": Recipe(
        "The keras.io 'Image classification with Vision Transformer' example as published: its ViT "
        "(72x72 input, 6x6 patches, flatten head), AdamW lr 1e-3 weight decay 1e-4 at a constant rate, "
        "batch 256, 100 epochs, 10% validation split, flip/rotate/zoom augmentation. Source: 55.14% top-1 "
        "on CIFAR-100.",
        dict(model="vit_keras_example", optimizer="adamw", lr=1e-3, weight_decay=1e-4, schedule="constant",
             batch_size=256, epochs=100, val_split=0.1, augment="vit_example", image_size=[72, 72]),
    ),
    "cnn_vs_vit_sgd": Recipe(
        "The CNN-vs-Transformer source's training: SGD (Nesterov) momentum 0.9, lr 1e-3, weight decay "
        "1e-3, batch 64, the rate divided by 10 at half the epochs, CutMix. Pair it with the matched-size "
        "models of examples/cnn_vs_vit.py.",
        dict(optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=1e-3, batch_size=64, schedule="multistep",
             gamma=0.1, augment="cutmix"),
        derived={"milestones": lambda c: [max(1, c["epochs"] // 2)]},
    ),
    "resnet_study": Recipe(
        "Baseline of the ResNet hyperparameter/augmentation/transfer study (kzoo sweep varies epochs, "
        "batch size, lr, augmentation and --freeze around it): SGD momentum 0.9, lr 1e-3, weight decay "
        "1e-4, batch 64, cosine, pad-crop + flip.",
        dict(model="resnet18_cifar", optimizer="sgd", lr=1e-3, momentum=0.9, weight_decay=1e-4, batch_size=64,
             schedule="cosine", augment="basic", epochs=10),
    ),
    "vit_cifar_budget": Recipe(
        "The plain-ViT row of the 60-minute CPU race: vit_cifar_tiny_whiten_gap (4x4 patches, 4 blocks of "
        "width 128, average-pool head without a class token; its linear patch embedding starts from "
        "whitened patches) with the data side that worked for the transformer row (flip + 2-pixel "
        "translation, label smoothing 0.2, lookahead every 5 steps, flip + 1-pixel translation TTA), AdamW "
        "lr 2e-3 weight decay 0.05, batch 256, gradient clipping at 1, a triangle schedule that follows the "
        "55-minute clock, XLA on (1.22x for vit_cifar_tiny at batch 256 on the 2-core CPU). The pooled head "
        "and batch 256 (instead of a class token and 512) gave 63.0% vs 55.2% TTA in 6-minute pilots.",
        dict(_RACE_ADAMW, model="vit_cifar_tiny_whiten_gap", batch_size=256, clip_norm=1.0, epochs=60,
             budget_minutes=55.0, jit_compile=True),
    ),
    "airbench94": Recipe(
        "Keller Jordan's airbench94 CIFAR-10 speed run (94.01% mean over 1,000 runs in 9.9 epochs on a GPU) "
        "in kzoo terms: the airbench94 network with its whitening stem fitted to 5,000 training images, "
        "Nesterov SGD momentum 0.85 at lr 1.5 per 1024 images (the source's summed loss, as a mean), "
        "decoupled weight decay 8.9e-3 (its coupled 0.0153 per 1024 images through the momentum), "
        "BatchNorm offsets at 64x the rate, a linear triangle schedule (0.2 -> 1 at 23% -> 0.07), label "
        "smoothing 0.2, flip + 2-pixel translation, lookahead every 5 steps, flip + 1-pixel translation TTA. "
        "It trains in float32 without XLA: XLA:CPU was slower, and bfloat16 was never faster (equal on one "
        "host, 0.45x on another; docs/benchmarks.md). Not "
        "reproduced: the alternating flip, freezing the stem bias after 3 epochs, weight decay on the "
        "BatchNorm offsets.",
        dict(_AIRBENCH, epochs=10, augment="flip_translate"),
    ),
    "airbench94_augmix": Recipe(
        "airbench94's recipe with AugMix (Hendrycks et al. 2020: pad-crop + flip, then three chains of "
        "one to three of the paper's nine ops mixed with Dirichlet weights and a Beta skip) in place of "
        "flip + translation, for robustness to common corruptions (kzoo robustness, docs/robustness.md). "
        "Without the Jensen-Shannon loss, which triples each step; add --augmix-jsd 12 --augment basic "
        "for the paper's full method.",
        dict(_AIRBENCH, epochs=18, augment="augmix"),
    ),
    "fid_kzoo_c10": Recipe(
        "The feature network of kzoo's FID and KID (kzoo gan train --fid-extractor): airbench94's recipe "
        "cut to 4 epochs, seed 0, no TTA, on CIFAR-10's 50,000 training images (pass --data "
        "cifar10-jpg.tar.gz). Scores over it are named fid_kzoo_c10 and are never comparable with "
        "published Inception FIDs; a run with any other setting is not named so (docs/generative.md).",
        dict(_AIRBENCH, epochs=4, augment="flip_translate", seed=0, tta=None),
    ),
    "cct_airbench": Recipe(
        "The transformer row of the 60-minute CPU race: cct_airbench (airbench94's whitened conv groups "
        "as a tokenizer of 7x7 tokens, 2 transformer blocks, sequence pooling) with airbench94's data "
        "side (flip + 2-pixel translation, label smoothing 0.2, lookahead every 5 steps, flip + 1-pixel "
        "translation TTA) but AdamW (lr 2e-3, weight decay 0.05, no decay on norms and biases) at batch "
        "512: Nesterov SGD at airbench's lr 1.5 diverged within the first epoch. float32 without XLA: "
        "bfloat16 matmuls were slower than float32 on this CPU (docs/benchmarks.md). The "
        "triangle schedule follows the 54-minute clock.",
        _RACE_ADAMW,
    ),
    "cct_airbench_d1": Recipe(
        "cct_airbench's recipe on cct_airbench_d1 (one transformer block instead of two): its step is "
        "1.3-1.5x faster on the 2-core CPU, so the 55-minute clock bought 15.2 epochs instead of 11.5. "
        "The epoch count is a ceiling; the clock-following triangle schedule anneals by the budget.",
        dict(_RACE_ADAMW, model="cct_airbench_d1", epochs=24, budget_minutes=55.0),
    ),
}


def list_recipes() -> list[str]:
    """Names of the registered recipes."""
    return sorted(RECIPES)


def get_recipe(name: str) -> Recipe:
    """The recipe called `name`, or a one-line error with the closest names."""
    if name not in RECIPES:
        close = difflib.get_close_matches(name, RECIPES, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise KzooError(f"unknown recipe {name!r}: {hint}known: {', '.join(list_recipes())}")
    return RECIPES[name]


def expand_recipe(name: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig fields of recipe `name` with `overrides` (the flags a person gave) on top.

    Example:
        >>> cfg = expand_recipe("cnn_vs_vit_sgd", {"model": "vgg11", "epochs": 30})
        >>> cfg["optimizer"], cfg["milestones"], cfg["recipe"]
        ('sgd', [15], 'cnn_vs_vit_sgd')
    """
    from kzoo.training.config import TrainConfig

    recipe = get_recipe(name)
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else f.default_factory())
                for f in dataclasses.fields(TrainConfig)}
    merged = {**defaults, **recipe.config, **overrides, "recipe": name}
    for key, rule in recipe.derived.items():
        if key not in overrides:
            merged[key] = rule(merged)
    return merged
