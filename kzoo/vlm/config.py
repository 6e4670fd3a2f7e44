"""`CoOpConfig`: `kzoo train --method coop`'s settings (Keras-free, for the CLI's checks and help)."""

from __future__ import annotations

from dataclasses import dataclass

from kzoo.errors import KzooError
from kzoo.training.config import TrainConfig

METHODS = ("supervised", "coop", "clip")
POSITIONS = ("end", "middle", "front")

COOP_HELP = {
    "method": "supervised: train --model on the labels; coop: learn CLIP prompt context (needs --clip); clip: "
              "train a CLIP contrastively on captions made from the class names (--clip-size, --tokenizer)",
    "clip": "coop, clip: the CLIP checkpoint folder (transformers or OpenCLIP layout, or a kzoo CLIP) or "
            "hf-hub:owner/name (clip: fine-tune it instead of training from scratch)",
    "context": "coop: learned context tokens M (16 in CoOp)",
    "position": "coop: where the class name sits in the prompt: end, middle or front",
    "csc": "coop: class-specific context (one set of context vectors per class)",
    "context_init": "coop: start the context from this phrase's token embeddings, e.g. 'a photo of a' "
                    "(M becomes its token count); default: random N(0, 0.02)",
    "clip_size": "clip: architecture of a CLIP trained from scratch: tiny_32 (32x32 images) or vit_b_32",
    "tokenizer": "clip: folder with the CLIP tokenizer files (vocab.json + merges.txt) for a CLIP trained from "
                 "scratch (with --clip, the checkpoint's own)",
    "templates": "clip: caption templates for training (a set: simple, imagenet, cifar, or a file)",
    "eval_templates": "clip: templates of the final zero-shot test, kept out of training (a set or a file)",
    "classes": "coop, clip: a text file with one class name per line, in the data's class order, used in the "
               "prompts (default: the data's class names, '_' read as a space)",
}

#: The supervised flags a CoOp run keeps at their defaults: the model is --clip's, and only the
#: context is trained (no EMA, no layer decay, no freezing, no AugMix consistency).
COOP_ONLY = ("clip", "context", "position", "csc", "context_init", "classes")
CLIP_ONLY = ("clip_size", "tokenizer", "templates", "eval_templates")


@dataclass
class CoOpConfig(TrainConfig):
    """A CoOp run: a kzoo run directory (resume, budget, logs) whose trainable weights are the prompt
    context of a frozen CLIP. Defaults follow CoOp: SGD 0.002 with cosine decay, batch 32, 16 shots,
    M = 16, class token at the end, flips and crops of the few training images.

    Example:
        >>> CoOpConfig(clip="clip-dir", shots=4).validate().position
        'end'
    """

    method: str = "coop"
    model: str = "coop"
    out: str = "runs/coop"
    clip: str | None = None
    context: int = 16
    position: str = "end"
    csc: bool = False
    context_init: str | None = None
    classes: str | None = None
    epochs: int = 50
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.002
    weight_decay: float = 5e-4
    augment: str = "flip_translate"
    jit_compile: bool = False  # the frozen towers are small next to XLA's compile time of a few-shot run
    shots: int | None = 16
    monitor: str = "val_accuracy"

    def validate(self) -> "CoOpConfig":
        super().validate()
        if self.method != "coop":
            raise KzooError(f"--method {self.method!r}: CoOpConfig is for --method coop")
        if not self.clip:
            raise KzooError("--method coop needs --clip DIR: a CLIP checkpoint folder (transformers or OpenCLIP) "
                            "or hf-hub:owner/name")
        if self.position not in POSITIONS:
            raise KzooError(f"--position {self.position!r}: expected one of {', '.join(POSITIONS)}")
        if self.context < 1:
            raise KzooError(f"--context must be at least 1, got {self.context}")
        for name in ("ema", "layer_decay", "freeze", "augmix_jsd", "weights", "distribute"):
            if getattr(self, name):
                raise KzooError(f"--{name.replace('_', '-')} does not apply to --method coop (only the prompt "
                                "context is trained)")
        if self.pretrained:
            raise KzooError("--pretrained does not apply to --method coop: the CLIP comes from --clip")
        return self


def check_method_flags(method: str, given: dict) -> None:
    """Refuse another method's flags instead of ignoring them (`kzoo train --clip X` without --method)."""
    own = {"coop": COOP_ONLY, "clip": ("clip", "classes") + CLIP_ONLY}.get(method, ())
    for other, flags in (("coop", COOP_ONLY), ("clip", CLIP_ONLY)):
        stray = [k for k in flags if k not in own and given.get(k) not in (None, False)]
        if stray:
            raise KzooError(f"--{stray[0].replace('_', '-')} belongs to --method {other}; add --method {other}")


@dataclass
class CLIPTrainConfig(TrainConfig):
    """Contrastive CLIP training on a labelled source: each image's caption is a random training
    template filled with its class name; the run ends with a zero-shot test on --eval-templates,
    which training never saw, and leaves RUN/clip/ (a kzoo CLIP folder for --clip).

    Example:
        >>> CLIPTrainConfig(tokenizer="tok-dir").validate().clip_size
        'tiny_32'
    """

    method: str = "clip"
    model: str = "clip"
    out: str = "runs/clip"
    clip: str | None = None  # fine-tune this CLIP instead of training one from scratch
    clip_size: str = "tiny_32"
    tokenizer: str | None = None
    templates: str = "cifar"
    eval_templates: str = "imagenet_unseen"
    classes: str | None = None
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 1
    augment: str = "flip_translate"
    monitor: str = "val_loss"

    def validate(self) -> "CLIPTrainConfig":
        super().validate()
        from kzoo.vlm.zeroshot import resolve_templates

        if self.method != "clip":
            raise KzooError(f"--method {self.method!r}: CLIPTrainConfig is for --method clip")
        if not self.clip and not self.tokenizer:
            raise KzooError("--method clip from scratch needs --tokenizer DIR (vocab.json + merges.txt of a CLIP "
                            "tokenizer), or --clip DIR to fine-tune a CLIP")
        if self.clip_size not in CLIP_SIZES:
            raise KzooError(f"--clip-size {self.clip_size!r}: expected one of {', '.join(CLIP_SIZES)}")
        train, held_out = resolve_templates(self.templates), resolve_templates(self.eval_templates, "--eval-templates")
        shared = sorted(set(train) & set(held_out))
        if shared:
            raise KzooError(f"--eval-templates shares {len(shared)} template(s) with --templates, first {shared[0]!r}: "
                            "the zero-shot test must use templates training never saw")
        for name in ("ema", "layer_decay", "freeze", "augmix_jsd", "weights", "distribute", "shots"):
            if getattr(self, name):
                raise KzooError(f"--{name.replace('_', '-')} does not apply to --method clip")
        return self


#: Mirrors kzoo.vlm.clip.CLIP_SIZES (which imports Keras); a test keeps the two equal.
CLIP_SIZES = ("tiny_32", "vit_b_32")
