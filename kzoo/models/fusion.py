"""Fused model: a ViT's global representation + a CAM-guided CNN's local features (issue 6).

Layer names: the input `images`; the two branches are sub-models `vit` (global: pooled vector)
and `cnn` (local: a conv feature map), each keeping its own family's conventions, its own
`normalization` and its own weights, so either can come from `create_model(..., pretrained=True)`;
`cam_pool` (`CAMGuidedPooling`, cam_guided=True) or `cnn_pool` (plain average); per branch a
projection `{branch}_proj` (Dense) + `{branch}_proj_norm`; `fusion_gate` (attention only: `(B, 2)`
softmax weights, vit first); `pool`, the fused vector (named as every family's pooled output, so
`kzoo.freeze(model, "head")` and `kzoo.replace_head` work); `head_drop`, `head` (float32).
With `return_cam=True` the outputs are `logits` and `heatmap` (the local branch's CAM).
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from kzoo.errors import KzooError
from kzoo.layers import TokensToGrid
from kzoo.layers.fusion import BranchGate, CAMGuidedPooling, WeightedBranchSum
from kzoo.models.common import HEAD_NAME, STAGE_OUTPUT, check_num_classes, classifier
from kzoo.models.features import feature_model, resolve_out_indices

BRANCHES = ("vit", "cnn")
FUSION_MODES = ("concat", "attention")
_RESERVED = ("num_classes", "input_shape", "name")


def build_fusion(
    num_classes: int = 2,
    input_shape: Sequence[int] | None = None,
    vit: str | keras.Model = "vit_base_patch16_224",
    cnn: str | keras.Model = "vgg16",
    fusion: str = "concat",
    cam_guided: bool = True,
    dim: int = 256,
    dropout: float = 0.2,
    return_cam: bool = False,
    vit_options: dict[str, Any] | None = None,
    cnn_options: dict[str, Any] | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """A ViT (global branch) and a CNN (local branch) fused into one classifier.

    Args:
        num_classes: classifier outputs; 0 returns the fused vector (`pool`).
        input_shape: (H, W, C) of both branches; None: the size of a branch given as a model,
            else 224x224x3.
        vit, cnn: a registered name (built with `create_model(name, **options)`) or a model.
            A vit model contributes its pooled features (the input of its `head`, or its output
            if it has none); a cnn model its output map, or its last `stage{k}` map.
        fusion: "concat" (concatenate the projected branch vectors) or "attention" (a per-sample
            softmax gate over them, `fusion_gate`; read it with `fusion_weights`).
        cam_guided: pool the CNN map with its class activation map (`CAMGuidedPooling`); else
            plain global average pooling.
        dim: width of each branch's projection.
        dropout: before the head.
        return_cam: add a second output, `heatmap` (B, H, W) in [0, 1]: the map the local
            branch pooled with. Train with `compile(loss=[ce, None])`.
        vit_options, cnn_options: more `create_model` keywords for a named branch, e.g.
            `{"pretrained": True}`, `{"weights": "vgg16.safetensors"}`, `{"depth": 6}`;
            `cnn_options={"out_indices": (-2,)}` picks an earlier CNN stage.
        features_only: return `[vit token grid (B, H/p, W/p, D), cnn map]`; `out_indices`
            picks among them (0 = vit, 1 = cnn).

    Example:
        >>> model = build_fusion(10, (32, 32, 3), vit="vit_cifar_tiny", cnn="vgg11_bn_cifar",
        ...                      fusion="attention", dim=64)
        >>> model.output_shape
        (None, 10)
    """
    check_num_classes(num_classes, "build_fusion")
    if fusion not in FUSION_MODES:
        raise KzooError(f"build_fusion: unknown fusion {fusion!r}; expected one of {', '.join(FUSION_MODES)}")
    if return_cam and not cam_guided:
        raise KzooError("build_fusion: return_cam=True needs cam_guided=True (the heatmap is the local branch's CAM)")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise KzooError(f"build_fusion: dim must be a positive int, got {dim!r}")
    if not 0 <= dropout < 1:
        raise KzooError(f"build_fusion: dropout must be in [0, 1), got {dropout!r}")
    name = name or "fusion"
    if features_only:
        resolve_out_indices(out_indices, len(BRANCHES), name)  # fail before building anything
    input_shape = _input_shape(input_shape, {"vit": vit, "cnn": cnn})
    global_net = _branch("vit", vit, input_shape, vit_options, features_only)
    local_net = _branch("cnn", cnn, input_shape, cnn_options, features_only)

    inputs = keras.Input(input_shape, name="images")
    if features_only:
        return feature_model(inputs, [global_net(inputs), local_net(inputs)], out_indices, name)
    global_vector, local_map = global_net(inputs), local_net(inputs)
    if cam_guided:
        local_vector, heatmap = CAMGuidedPooling(
            max(num_classes, 1), output_size=input_shape[:2], name="cam_pool"
        )(local_map)
    else:
        local_vector = keras.layers.GlobalAveragePooling2D(name="cnn_pool")(local_map)
    projected = [_project(global_vector, dim, "vit"), _project(local_vector, dim, "cnn")]
    if fusion == "concat":
        x = keras.layers.Concatenate(name="pool")(projected)
    else:
        weights = BranchGate(name="fusion_gate")(projected)
        x = WeightedBranchSum(name="pool")([weights, *projected])
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_drop")(x)
    if num_classes:  # small initial logits (timm's ViT head init): training starts near log(num_classes)
        x = classifier(x, num_classes, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02))
    if not return_cam:
        return keras.Model(inputs, x, name=name)
    logits = keras.layers.Identity(dtype="float32", name="logits")(x)
    heatmap = keras.layers.Identity(dtype="float32", name="heatmap")(heatmap)
    return keras.Model(inputs, [logits, heatmap], name=name)


def fusion_weights(model: keras.Model, images, batch_size: int = 64) -> np.ndarray:
    """Per-image branch weights `(N, 2)` (columns: vit, cnn; each row sums to 1) of an attention model.

    Example:
        >>> model = kzoo.create_model("fusion_tiny", fusion="attention")  # doctest: +SKIP
        >>> fusion_weights(model, images)[:, 1].mean()  # doctest: +SKIP
    """
    if "fusion_gate" not in [layer.name for layer in model.layers]:
        raise KzooError(f"fusion_weights: {model.name} has no layer `fusion_gate`; build it with fusion='attention'")
    probe = keras.Model(model.inputs, model.get_layer("fusion_gate").output)
    return np.asarray(probe.predict(images, batch_size=batch_size, verbose=0))


def freeze_branch(model: keras.Model, branch: str, trainable: bool = False) -> keras.Model:
    """Freeze (or unfreeze) one branch sub-model, "vit" or "cnn", in place; returns `model`.

    Frozen BatchNormalization layers run in inference mode (Keras 3). The projections, the CAM
    classifier, the gate and the head stay trainable. Compile after freezing.

    Example:
        >>> model = kzoo.create_model("fusion_tiny")
        >>> freeze_branch(model, "vit").get_layer("vit").trainable
        False
    """
    branches = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    if branch not in branches:
        raise KzooError(
            f"freeze_branch: {model.name} has no branch {branch!r}; its branches: {', '.join(branches) or 'none'}"
        )
    model.get_layer(branch).trainable = trainable
    return model


def _input_shape(input_shape, specs: dict) -> tuple[int, int, int]:
    given = {role: tuple(spec.input_shape[1:]) for role, spec in specs.items() if isinstance(spec, keras.Model)}
    if len(set(given.values())) > 1:
        sizes = ", ".join(f"{role} {specs[role].name!r} takes {shape}" for role, shape in given.items())
        raise KzooError(f"build_fusion: the branches take different input sizes ({sizes}); build both for one size")
    shape = tuple(input_shape) if input_shape is not None else next(iter(given.values()), (224, 224, 3))
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in shape):
        raise KzooError(f"build_fusion: input_shape must be (height, width, channels) of positive ints, got {shape}")
    for role, branch_shape in given.items():
        if branch_shape != shape:
            raise KzooError(f"build_fusion: the {role} branch {specs[role].name!r} takes {branch_shape} images, "
                            f"but input_shape is {shape}; build both branches for the same size")
    return shape


def _branch(role: str, spec, input_shape, options, features_only: bool) -> keras.Model:
    """The branch sub-model named `role`: vit -> (B, D) (or its token grid), cnn -> (B, h, w, C)."""
    if isinstance(spec, keras.Model):
        if options:
            raise KzooError(f"build_fusion: {role}_options apply to a registered name, but {role} is a model")
        cut = _vit_output if role == "vit" else _cnn_output
        return keras.Model(spec.inputs, cut(spec, features_only), name=role)
    if not isinstance(spec, str):
        raise KzooError(
            f"build_fusion: {role} must be a registered model name or a keras.Model, got {type(spec).__name__}"
        )
    options = dict(options or {})
    reserved = sorted(set(options) & set(_RESERVED))
    if reserved:
        raise KzooError(f"build_fusion: {role}_options cannot set {', '.join(reserved)}; build_fusion sets them")
    if role == "cnn" or features_only:
        options = {"features_only": True, "out_indices": (-1,), **options}
    from kzoo.registry import create_model

    try:
        model = create_model(spec, num_classes=0, input_shape=input_shape, **options)
    except KzooError as error:
        raise KzooError(f"build_fusion: {role} branch {spec!r}: {error}") from None
    outputs = model.outputs
    want = 4 if role == "cnn" or features_only else 2
    if len(outputs) != 1 or len(outputs[0].shape) != want:
        shapes = [tuple(t.shape) for t in outputs]
        raise KzooError(f"build_fusion: the {role} branch {spec!r} gives {shapes}; expected one {want}-D output")
    return keras.Model(model.inputs, outputs[0], name=role)  # same layers and weights, named by role


def _vit_output(model: keras.Model, features_only: bool):
    names = [layer.name for layer in model.layers]
    outputs = model.outputs
    if features_only:
        if len(outputs) == 1 and len(outputs[0].shape) == 4:
            return outputs[0]
        blocks = [n for n in names if STAGE_OUTPUT.match(n) and n.startswith("block_")]
        if not blocks or "patch_embed" not in names:
            raise KzooError(
                f"build_fusion: features_only needs a kzoo ViT (block_{{i}}, patch_embed) as vit, got {model.name!r}"
            )
        grid = tuple(model.get_layer("patch_embed").output.shape[1:3])
        tokens = model.get_layer(blocks[-1]).output
        prefix = int(tokens.shape[1]) - grid[0] * grid[1]
        return TokensToGrid(grid, prefix, name=f"{blocks[-1]}_grid")(tokens)
    if HEAD_NAME in names:
        return model.get_layer(HEAD_NAME).input
    if len(outputs) == 1 and len(outputs[0].shape) == 2:
        return outputs[0]
    raise KzooError(f"build_fusion: the vit branch {model.name!r} outputs {[tuple(t.shape) for t in outputs]}; "
                    "expected a classifier with a `head` or pooled features (B, D), e.g. num_classes=0")


def _cnn_output(model: keras.Model, features_only: bool):
    outputs = model.outputs
    if len(outputs) == 1 and len(outputs[0].shape) == 4:
        return outputs[0]
    stages = [layer for layer in model.layers if STAGE_OUTPUT.match(layer.name) and len(layer.output.shape) == 4]
    if not stages:
        raise KzooError(f"build_fusion: the cnn branch {model.name!r} has no (B, h, w, C) output or `stage{{k}}` "
                        "layer; pass create_model(..., features_only=True, out_indices=(-1,))")
    return stages[-1].output


def _project(x, dim: int, branch: str):
    x = keras.layers.Dense(dim, name=f"{branch}_proj")(x)
    return keras.layers.LayerNormalization(epsilon=1e-6, name=f"{branch}_proj_norm")(x)
