"""Detecting a state dict's layout from its key names, and the shared machinery that ports it.

A converter (one small module per layout) turns the model's layers into a plan: for each Keras
variable, the checkpoint key(s) it comes from and a `Transform` (torch -> Keras axis order).
`Port` checks the whole plan against the checkpoint's shapes (read from the header, no data)
before it assigns anything, so a mismatch leaves the model untouched and names the first layer
and both shapes; then it reads and assigns one tensor at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np

from kzoo.errors import KzooError

log = logging.getLogger("kzoo.weights")

HEAD = "head"


# ---------------------------------------------------------------- transforms (torch -> Keras)
@dataclass(frozen=True)
class Transform:
    """How source arrays of `shapes` become one Keras array: `shape(shapes)` and `apply(arrays)`."""

    name: str
    shape: Callable[[Sequence[tuple]], tuple]
    apply: Callable[[Sequence[np.ndarray]], np.ndarray]


IDENTITY = Transform("identity", lambda s: tuple(s[0]), lambda a: a[0])
# torch Linear (out, in) -> Dense (in, out)
LINEAR = Transform("linear", lambda s: tuple(reversed(s[0])) if len(s[0]) == 2 else ("not 2-D", *s[0]), lambda a: a[0].T)
# torch Conv2d (out, in, kh, kw) -> Conv2D (kh, kw, in, out)
CONV = Transform(
    "conv",
    lambda s: (s[0][2], s[0][3], s[0][1], s[0][0]) if len(s[0]) == 4 else ("not 4-D", *s[0]),
    lambda a: a[0].transpose(2, 3, 1, 0),
)
# a 1x1 torch conv used as a Dense: (out, in, 1, 1) -> (in, out)
CONV1X1_AS_LINEAR = Transform(
    "conv1x1",
    lambda s: (s[0][1], s[0][0]) if len(s[0]) == 4 and s[0][2:] == (1, 1) else ("not 1x1 conv", *s[0]),
    lambda a: a[0][:, :, 0, 0].T,
)
# separate q, k, v Linear weights (out, in) x3 -> one fused Dense kernel (in, 3*out)
CONCAT_LINEAR = Transform(
    "qkv",
    lambda s: (s[0][1], sum(x[0] for x in s)),
    lambda a: np.concatenate(a, axis=0).T,
)
CONCAT_BIAS = Transform("qkv_bias", lambda s: (sum(x[0] for x in s),), lambda a: np.concatenate(a, axis=0))


def nchw_flatten_linear(height: int, width: int) -> Transform:
    """A Linear (out, C*h*w) over an NCHW flatten (or a (out, C, h, w) conv) -> Dense over NHWC flatten.

    torch's row index is c*h*w + y*w + x; Keras' Flatten of NHWC gives y*w*C + x*C + c.
    """

    def shape(s):
        out, rest = s[0][0], int(np.prod(s[0][1:]))
        return (rest, out)

    def apply(a):
        w = a[0]
        out = w.shape[0]
        channels = int(np.prod(w.shape[1:])) // (height * width)
        return w.reshape(out, channels, height, width).transpose(2, 3, 1, 0).reshape(-1, out)

    return Transform("nchw_flatten", shape, apply)


# ---------------------------------------------------------------- plans
@dataclass
class Assign:
    layer: str
    variable: keras.Variable
    keys: tuple[str, ...]
    transform: Transform = IDENTITY
    resample: Callable[[np.ndarray, tuple], np.ndarray] | None = None  # for position embeddings


class Port:
    """Validate then execute a plan of `Assign`s from `state` (a StateDict) into a model."""

    def __init__(self, model: keras.Model, state, source: str, layout: str):
        self.model = model
        self.state = state
        self.source = source
        self.layout = layout
        self.plan: list[Assign] = []
        self.ignored_prefixes: list[str] = []  # checkpoint parts with no kzoo counterpart (HF pooler)
        self.head_keys: list[str] = []  # the checkpoint's classifier keys

    def add(self, layer: str, variable, keys: str | Sequence[str], transform: Transform = IDENTITY, resample=None):
        keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.plan.append(Assign(layer, variable, keys, transform, resample))

    def run(self) -> dict:
        state, where = self.state, f"{self.source} ({self.layout})"
        skipped_head = None
        todo = []
        for item in self.plan:  # in model order: the first problem is reported
            for key in item.keys:
                if key not in state:
                    raise KzooError(
                        f"{where} has no {key!r}, needed by layer {item.layer!r} of {self.model.name}: "
                        "it is a checkpoint of another architecture"
                    )
            got = tuple(item.transform.shape([state.shape(k) for k in item.keys]))
            want = tuple(item.variable.shape)
            if got != want:
                if item.resample is not None and len(got) == len(want) and got[-1] == want[-1]:
                    todo.append(item)
                    continue
                if item.layer == HEAD:
                    skipped_head = skipped_head or (got, want)
                    continue
                src = ", ".join(f"{k} {state.shape(k)}" for k in item.keys)
                raise KzooError(
                    f"{where} does not fit {self.model.name}: layer {item.layer!r} ({_var_name(item.variable)}) "
                    f"expects {want}, checkpoint {src} gives {got}"
                )
            todo.append(item)
        used = {k for item in self.plan for k in item.keys}
        unused = [
            k for k in state
            if k not in used and not k.endswith("num_batches_tracked")
            and not any(k.startswith(p) for p in self.ignored_prefixes)
            and not (k in self.head_keys and not any(i.layer == HEAD for i in self.plan))
        ]
        if unused:
            raise KzooError(
                f"{where} has {len(unused)} tensor(s) {self.model.name} has no place for, first "
                f"{unused[0]!r} {state.shape(unused[0])}: it is a checkpoint of a larger or other architecture"
            )
        for item in todo:
            array = item.transform.apply([state[k] for k in item.keys])
            if item.resample is not None and tuple(array.shape) != tuple(item.variable.shape):
                array = item.resample(array, tuple(item.variable.shape))
            # ascontiguousarray makes a 0-d array 1-d: reshape back (the shapes were checked above).
            array = np.ascontiguousarray(array, dtype=np.float32).reshape(tuple(item.variable.shape))
            item.variable.assign(array.astype(item.variable.dtype))
        head_in_plan = any(i.layer == HEAD for i in self.plan)
        model_has_head = layer(self.model, HEAD) is not None
        if skipped_head is not None:
            log.warning(
                "%s: classifier not loaded (the checkpoint's head gives %s, %s's head is %s: another "
                "class count); every other layer loaded",
                self.source, skipped_head[0], self.model.name, skipped_head[1],
            )
        elif model_has_head and not self.head_keys:
            log.warning("%s: the checkpoint has no classifier; %s's head stays randomly initialised", self.source, self.model.name)
        elif self.head_keys and not model_has_head:
            log.info("%s: the checkpoint's classifier is not used: %s has no head", self.source, self.model.name)
        return {"layout": self.layout, "loaded": len(todo), "head_loaded": head_in_plan and skipped_head is None}


def _var_name(variable) -> str:
    return getattr(variable, "path", None) or variable.name


# ---------------------------------------------------------------- detection
def detect_layout(keys: Sequence[str], source: str = "checkpoint") -> str:
    """The layout of a state dict from its key names.

    Returns one of "timm_vit", "transformers_vit", "resnet" (torchvision and timm share it),
    "torchvision_vgg", "timm_vgg".

    Example:
        >>> detect_layout(["patch_embed.proj.weight", "blocks.0.attn.qkv.weight"])
        'timm_vit'
    """
    keyset = set(keys)
    if any(k.endswith("embeddings.patch_embeddings.projection.weight") for k in keyset):
        return "transformers_vit"
    if "patch_embed.proj.weight" in keyset:
        return "timm_vit"
    if "conv1.weight" in keyset and any(k.startswith("layer1.0.") for k in keyset):
        return "resnet"
    if "features.0.weight" in keyset:
        if any(k.startswith("pre_logits.") for k in keyset):
            return "timm_vgg"
        return "torchvision_vgg"
    first = ", ".join(sorted(keyset)[:3])
    raise KzooError(
        f"{source}: unrecognised state dict layout (keys {first}, ...); kzoo reads timm ViT/ResNet/VGG, "
        "torchvision ResNet/VGG and transformers ViT checkpoints"
    )


LAYOUT_FAMILY = {
    "timm_vit": "vit",
    "transformers_vit": "vit",
    "resnet": "resnet",
    "torchvision_vgg": "vgg",
    "timm_vgg": "vgg",
}


def model_family(model: keras.Model) -> str:
    """Which family a kzoo model is, from its layer names (see kzoo.models.common)."""
    names = {layer.name for layer in model.layers}
    if "patch_embed" in names:
        return "vit"
    if "conv1" in names and "layer1_0_conv1" in names:
        return "resnet"
    if "block1_conv1" in names:
        return "vgg"
    return "unknown"


def layer(model: keras.Model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        return None
