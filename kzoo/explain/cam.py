"""Class activation maps: Grad-CAM, Grad-CAM++ and CAM for any kzoo (or Keras functional) model.

Structure follows pytorch-grad-cam: `BaseCAM` runs one forward/backward pass over the whole
batch and hands the target layer's activations and gradients to `weights()`, which each method
overrides in a few lines. Everything is `keras.ops`/numpy except the gradient itself
(`_value_and_grad`: a `tf.GradientTape` under TensorFlow) and `_jax_pass` (one compiled
`jax.value_and_grad` per model and layer under JAX): a gradient needs the backend's autodiff.

Forward path: the model's graph is re-run layer by layer (`Functional._run_through_graph`),
descending into nested sub-models, so the target layer's output and the final logits come
from one call even when the backbone is a model used as a layer ("Graph disconnected" never
arises). The gradient is taken with respect to a zero tensor added to the target's output,
which is exactly d(score)/d(activation) for any graph, skip connections included.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError

METHODS = ("gradcam", "gradcam++", "cam")
_ATTENTION_TYPES = ("MultiHeadSelfAttention", "MultiHeadAttention")
_EPS = 1e-7


# ----------------------------------------------------------------------------------------------
# Layers: flattening nested models, choosing the target, turning tokens into a grid.


@dataclass(frozen=True)
class TargetLayer:
    """The layer whose activations are explained, reached through `path` (outer -> inner names)."""

    path: tuple[str, ...]
    layer: keras.layers.Layer
    grid: tuple[int, int] | None = None  # ViT tokens: the patch grid
    num_prefix_tokens: int = 0  # ViT tokens: class/register tokens dropped before the reshape

    @property
    def name(self) -> str:
        return "/".join(self.path)


def _is_model(layer) -> bool:
    return isinstance(layer, keras.Model)


def _walk(model: keras.Model, prefix: tuple[str, ...] = ()):
    """(path, layer) for every layer in topological order; a nested model follows its own layers."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = (*prefix, layer.name)
        if _is_model(layer):
            yield from _walk(layer, path)
        yield path, layer


def _output_shape(layer) -> tuple | None:
    try:
        out = layer.output
    except (AttributeError, ValueError):
        return None
    if isinstance(out, (list, tuple, dict)):
        return None  # multi-output layers (e.g. CAMHead) are not explainable targets
    return tuple(out.shape)


def _patch_grid(model: keras.Model) -> tuple[int, int] | None:
    """The (h, w) of the last 4-D map before the first token (3-D) layer: a ViT's patch grid."""
    grid = None
    for _, layer in _walk(model):
        shape = _output_shape(layer)
        if shape is None:
            continue
        if len(shape) == 4 and not _is_model(layer):
            grid = shape[1:3]
        elif len(shape) == 3 and grid is not None:
            return grid
    return None


def _token_layout(shape: tuple, grid: tuple | None) -> tuple[tuple[int, int], int] | None:
    """(grid, prefix tokens) if `(B, T, D)` tokens can be reshaped to a patch grid, else None."""
    tokens = shape[1]
    if tokens is None:
        return None
    if grid is not None and None not in grid and 0 <= tokens - grid[0] * grid[1] <= 8:
        return (int(grid[0]), int(grid[1])), tokens - grid[0] * grid[1]
    for prefix in (0, 1):  # no patch embedding found: accept a square grid
        side = math.isqrt(max(tokens - prefix, 0))
        if side > 0 and side * side == tokens - prefix:
            return (side, side), prefix
    return None


def _spatial(model, path, layer, grid) -> TargetLayer | None:
    shape = _output_shape(layer)
    if shape is None:
        return None
    if len(shape) == 4:
        return TargetLayer(tuple(path), layer)
    if len(shape) == 3:
        layout = _token_layout(shape, grid)
        if layout is not None:
            return TargetLayer(tuple(path), layer, layout[0], layout[1])
    return None


def _is_pooling(layer) -> bool:
    return "Pooling" in type(layer).__name__


def spatial_layers(model: keras.Model) -> list[TargetLayer]:
    """Every layer Grad-CAM can explain: 4-D feature maps and ViT tokens that map to the patch grid."""
    grid = _patch_grid(model)
    found = []
    for path, layer in _walk(model):
        target = _spatial(model, path, layer, grid)
        if target is not None:
            found.append(target)
    return found


def _producer(layer) -> keras.layers.Layer | None:
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes or not nodes[0].input_tensors:
        return None
    history = getattr(nodes[0].input_tensors[0], "_keras_history", None)
    return history.operation if history is not None else None


def find_target_layer(model: keras.Model, layer: str | None = None) -> TargetLayer:
    """Resolve `layer` (a name, or "outer/inner" path) or choose it automatically.

    Automatic choice:
    - a ViT whose head averages (or flattens) the patch tokens: the last block's output tokens;
    - a ViT with class-token pooling (or unknown pooling): the tokens entering the last attention
      layer (the last block's `norm1`, pytorch-grad-cam's choice), because after the last
      attention only the class token reaches the logits and the patch tokens get no gradient;
    - otherwise the last 4-D feature map that is not a pooling layer (a CNN's last conv stage,
      e.g. `stage5` of a VGG, `stage4` of a ResNet).
    ViT tokens are explained on the patch grid: prefix (class) tokens dropped, the rest reshaped.
    """
    if not isinstance(model, keras.Model):
        raise KzooError(f"grad_cam: expected a keras.Model, got {type(model).__name__}")
    grid = _patch_grid(model)
    walked = list(_walk(model))
    if layer is not None:
        wanted = tuple(str(layer).split("/"))
        matches = [(p, l) for p, l in walked if p == wanted or p[-len(wanted):] == wanted]
        if not matches:
            valid = [t.name.split("/")[-1] for t in spatial_layers(model)]
            shown = ", ".join(valid[-30:]) + (f" (and {len(valid) - 30} earlier)" if len(valid) > 30 else "")
            raise KzooError(f"grad_cam: no layer {layer!r} in model {model.name!r}; layers with a spatial map: {shown}")
        path, found = matches[-1]
        target = _spatial(model, path, found, grid)
        if target is None:
            shape = _output_shape(found)
            raise KzooError(
                f"grad_cam: layer {layer!r} outputs {shape}, which has no spatial structure; pick a layer "
                f"with a (batch, height, width, channels) map or ViT tokens, e.g. {_auto(model, walked, grid).name}"
            )
        return target
    return _auto(model, walked, grid)


def _auto(model, walked, grid) -> TargetLayer:
    tokens = [t for t in (_spatial(model, p, l, grid) for p, l in walked) if t is not None and t.grid is not None]
    pooling = [getattr(l, "mode", None) for _, l in walked if type(l).__name__ == "TokenPooling"]
    if tokens and pooling and "cls" not in pooling:
        # Average/flatten pooling: every patch token of the last block reaches the logits.
        return tokens[-1]
    attention = [(p, l) for p, l in walked if type(l).__name__ in _ATTENTION_TYPES]
    if attention:
        path, att = attention[-1]
        source = _producer(att)
        for p, l in walked:
            if l is source:
                target = _spatial(model, p, l, grid)
                if target is not None:
                    return target
    candidates = []
    for path, layer in walked:
        target = _spatial(model, path, layer, grid)
        if target is not None and target.grid is None and not _is_pooling(layer):
            candidates.append(target)
    if not candidates:
        raise KzooError(f"grad_cam: model {model.name!r} has no layer with a spatial feature map to explain")
    return candidates[-1]


# ----------------------------------------------------------------------------------------------
# The forward pass that exposes the target's activations, and the gradient helper.


def _op_fn(op):
    from keras.src.models.functional import operation_fn

    return operation_fn(op, training=False)


def _run_graph(model, inputs, op_fn: Callable):
    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            x = inputs
            for layer in model.layers:
                x = op_fn(layer)(x)
            return x
        model = functional
    if not hasattr(model, "_run_through_graph"):
        raise KzooError(
            f"grad_cam: {model.name!r} is a subclassed model; Grad-CAM needs a functional or Sequential model"
        )
    return model._run_through_graph(inputs, operation_fn=op_fn)


def _forward(model: keras.Model, images, target: TargetLayer, delta=None):
    """(target activations, logits) from one pass; `delta` (or nothing) is added to the activations."""
    record = {}

    def run(current, inputs, depth):
        name = target.path[depth]

        def op_fn(op):
            call = _op_fn(op)
            if op.name != name:
                return call
            if depth + 1 < len(target.path):
                return lambda *args, **kwargs: run(op, args[0] if len(args) == 1 else list(args), depth + 1)

            def hooked(*args, **kwargs):
                out = call(*args, **kwargs)
                if "activations" in record:  # a shared layer: explain its first call
                    return out
                if delta is not None:
                    out = out + ops.cast(delta, out.dtype)
                record["activations"] = out
                return out

            return hooked

        return _run_graph(current, inputs, op_fn)

    outputs = run(model, images, 0)
    logits = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    if isinstance(outputs, dict):
        logits = list(outputs.values())[0]
    if "activations" not in record:
        raise KzooError(f"grad_cam: layer {target.name!r} is not on the path from the input to the logits")
    return record["activations"], ops.cast(logits, "float32")


def _value_and_grad(fn: Callable, x) -> tuple[Any, Any, Any]:
    """`fn(x) -> (scalar, aux)`; returns (scalar, aux, d scalar / d x) with the backend's autodiff.

    The only backend-specific code in kzoo.explain.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        # Only `x` is watched: by default the tape also records every op that reads a trainable
        # variable, and its backward then runs through the whole network (weight gradients
        # included) although only d value / d x is asked for: 1.3x a full forward+backward for
        # VGG16 instead of about one forward (benchmarks/explain.py, docs/benchmarks.md).
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            value, aux = fn(x)
        return value, aux, tape.gradient(value, x)
    if backend == "jax":
        import jax

        (value, aux), grad = jax.value_and_grad(fn, has_aux=True)(x)
        return value, aux, grad
    if backend == "torch":
        import torch

        x = ops.convert_to_tensor(x).detach().requires_grad_(True)
        value, aux = fn(x)
        (grad,) = torch.autograd.grad(value, x)
        return value, aux, grad
    raise KzooError(f"grad_cam: backend {backend!r} is not supported; use tensorflow, jax or torch")


def _score(model, target: TargetLayer, x, given, delta):
    """(summed logit of the explained classes, (activations, logits)); `given` < 0: predicted class."""
    activations, logits = _forward(model, x, target, delta)
    predicted = ops.cast(ops.argmax(ops.stop_gradient(logits), axis=-1), "int32")
    chosen = ops.where(given >= 0, given, predicted)
    mask = ops.one_hot(chosen, ops.shape(logits)[-1], dtype="float32")
    return ops.sum(logits * mask), (activations, logits)


def _zeros(model, target: TargetLayer, x):
    """A zero tensor shaped like the target's activations for this batch (the gradient handle)."""
    shape = _output_shape(target.layer)
    if shape is None or any(s is None for s in shape[1:]):
        activations, _ = _forward(model, x, target)  # dynamic shape: one extra pass
        shape = tuple(activations.shape)
    dtype = target.layer.output.dtype if hasattr(target.layer, "output") else "float32"
    return ops.zeros((x.shape[0], *shape[1:]), dtype=dtype)


def _pass(model, target: TargetLayer, images: np.ndarray, given, with_grads: bool):
    """(activations, logits, d score / d activations or None) for a batch: one forward(+backward)."""
    given = np.full(images.shape[0], -1, "int32") if given is None else np.asarray(given, "int32")
    if keras.backend.backend() == "jax":
        return _jax_pass(model, target, images, given, with_grads)
    x = ops.convert_to_tensor(images)
    g = ops.convert_to_tensor(given)
    if not with_grads:
        activations, logits = _forward(model, x, target)
        return activations, ops.cast(logits, "float32"), None
    _, (activations, logits), grads = _value_and_grad(
        lambda delta: _score(model, target, x, g, delta), _zeros(model, target, x)
    )
    return activations, logits, grads


# One compiled function per (model, target layer, with/without gradients): under JAX an eager
# pass dispatches (and compiles) every op separately, which dominates for small models. The
# model's variables are arguments (read through a StatelessScope), never baked-in constants, so
# the cache stays right when the weights change (HeatmapCallback during training).
_COMPILED: dict[int, dict] = {}


def _jax_pass(model, target: TargetLayer, images, given, with_grads: bool):
    import jax

    cache = _COMPILED.get(id(model))
    if cache is None:
        cache = _COMPILED[id(model)] = {}
        weakref.finalize(model, _COMPILED.pop, id(model), None)
    key = (target.path, with_grads)
    if key not in cache:
        model_ref = weakref.ref(model)  # the cache must not keep the model alive

        def run(values, x, given, delta):
            model = model_ref()
            with keras.StatelessScope(state_mapping=list(zip(model.variables, values))):
                if delta is None:
                    activations, logits = _forward(model, x, target)
                    return activations, ops.cast(logits, "float32")
                return _score(model, target, x, given, delta)

        if with_grads:
            cache[key] = jax.jit(jax.value_and_grad(run, argnums=3, has_aux=True))
        else:
            cache[key] = jax.jit(lambda values, x: run(values, x, None, None))
    values = [v.value for v in model.variables]
    x = jax.numpy.asarray(images)
    if not with_grads:
        activations, logits = cache[key](values, x)
        return activations, logits, None
    (_, (activations, logits)), grads = cache[key](values, x, jax.numpy.asarray(given), _zeros(model, target, x))
    return activations, logits, grads


def _to_grid(x, target: TargetLayer):
    if target.grid is None:
        return x
    x = x[:, target.num_prefix_tokens:]
    return ops.reshape(x, (ops.shape(x)[0], *target.grid, x.shape[-1]))


def _class_indices(class_index, num_images: int, num_classes: int | None):
    if class_index is None:
        return None
    values = np.asarray(class_index).reshape(-1)
    if values.size == 1:
        values = np.repeat(values, num_images)
    if values.size != num_images:
        raise KzooError(f"grad_cam: class_index has {values.size} entries for {num_images} images; pass one int or one per image")
    if not np.issubdtype(values.dtype, np.integer):
        raise KzooError(f"grad_cam: class_index must be integers, got {class_index!r}")
    if num_classes is not None:
        bad = values[(values < 0) | (values >= num_classes)]
        if bad.size:
            raise KzooError(f"grad_cam: class index {int(bad[0])} is out of range for a model with {num_classes} classes (0..{num_classes - 1})")
    return values.astype("int32")


def _num_classes(model) -> int | None:
    shape = model.output_shape
    if isinstance(shape, list):
        shape = shape[0]
    if isinstance(shape, dict):
        shape = list(shape.values())[0]
    return shape[-1]


def _as_images(images) -> np.ndarray:
    arr = np.asarray(ops.convert_to_numpy(images) if not isinstance(images, np.ndarray) else images, dtype="float32")
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise KzooError(f"grad_cam: images must be (N, H, W, C) or (H, W, C), got shape {arr.shape}")
    return arr


def resize_maps(maps, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of (N, h, w) maps to (N, H, W)."""
    maps = ops.convert_to_tensor(np.asarray(maps, "float32")[..., None])
    out = ops.image.resize(maps, tuple(size), interpolation="bilinear")
    return np.asarray(ops.convert_to_numpy(out))[..., 0]


def normalize_maps(maps: np.ndarray) -> np.ndarray:
    """Per-image min-max scaling to [0, 1] (pytorch-grad-cam's `scale_cam_image`)."""
    maps = np.asarray(maps, "float32")
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return np.clip((maps - low) / np.maximum(high - low, _EPS), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Methods.


@dataclass
class CAMResult:
    """What `BaseCAM.compute` returns (all numpy)."""

    heatmaps: np.ndarray  # (N, H, W) in [0, 1] at the input resolution
    raw: np.ndarray  # (N, h, w) relu(sum_c w_c A_c) at the feature resolution, unscaled
    logits: np.ndarray  # (N, classes)
    class_index: np.ndarray  # (N,) the explained class of each image
    layer: str


class BaseCAM:
    """One forward/backward pass over a batch; subclasses say how to weight the activation channels.

    Example:
        >>> cam = GradCAM(model)  # doctest: +SKIP
        >>> heatmaps = cam(images)  # (N, H, W) in [0, 1]
    """

    uses_gradients = True

    def __init__(self, model: keras.Model, layer: str | None = None):
        self.model = model
        self.target = find_target_layer(model, layer)

    def weights(self, activations, gradients, class_index):
        """(N, h, w, C) activations and gradients -> (N, C) channel weights."""
        raise NotImplementedError

    def compute(self, images, class_index=None) -> CAMResult:
        images = _as_images(images)
        n = images.shape[0]
        given = _class_indices(class_index, n, _num_classes(self.model))
        activations, logits, grads = _pass(self.model, self.target, images, given, self.uses_gradients)
        activations = _to_grid(ops.cast(activations, "float32"), self.target)
        if grads is not None:
            grads = _to_grid(ops.cast(grads, "float32"), self.target)
        logits_np = np.asarray(ops.convert_to_numpy(logits))
        chosen = given if given is not None else logits_np.argmax(axis=-1).astype("int32")
        w = self.weights(activations, grads, chosen)
        raw = ops.relu(ops.einsum("nhwc,nc->nhw", activations, ops.cast(w, "float32")))
        raw = np.asarray(ops.convert_to_numpy(raw))
        heatmaps = normalize_maps(resize_maps(raw, images.shape[1:3]))
        return CAMResult(heatmaps, raw, logits_np, chosen, self.target.name)

    def __call__(self, images, class_index=None) -> np.ndarray:
        return self.compute(images, class_index).heatmaps


class GradCAM(BaseCAM):
    """Grad-CAM (Selvaraju et al. 2017): channel weight = spatial mean of the gradient."""

    def weights(self, activations, gradients, class_index):
        return ops.mean(gradients, axis=(1, 2))


class GradCAMPlusPlus(BaseCAM):
    """Grad-CAM++ (Chattopadhay et al. 2018), pytorch-grad-cam's closed form with exp(score)."""

    def weights(self, activations, gradients, class_index):
        g2 = gradients**2
        g3 = g2 * gradients
        sum_a = ops.sum(activations, axis=(1, 2), keepdims=True)
        alpha = g2 / (2 * g2 + sum_a * g3 + _EPS)
        alpha = ops.where(gradients != 0, alpha, ops.zeros_like(alpha))
        return ops.sum(ops.relu(gradients) * alpha, axis=(1, 2))


class CAM(BaseCAM):
    """CAM (Zhou et al. 2016): channel weight = the classifier's weight for the class; needs
    global average pooling + one Dense (or a `kzoo.layers.CAMHead`) after the explained layer."""

    uses_gradients = False

    def weights(self, activations, gradients, class_index):
        kernel = classifier_kernel(self.model, activations.shape[-1])
        return ops.convert_to_tensor(kernel.T[np.asarray(class_index)])


def classifier_kernel(model: keras.Model, channels: int) -> np.ndarray:
    """The (channels, classes) kernel of the model's classifier (a CAMHead's, else the last Dense)."""
    dense = None
    for _, layer in _walk(model):
        if type(layer).__name__ == "CAMHead":
            dense = layer.classifier
        elif isinstance(layer, keras.layers.Dense):
            dense = layer
    if dense is None:
        raise KzooError(f"grad_cam: method 'cam' needs a Dense classifier; {model.name!r} has none, use 'gradcam'")
    kernel = np.asarray(ops.convert_to_numpy(dense.kernel), "float32")
    if kernel.shape[0] != channels:
        raise KzooError(
            f"grad_cam: method 'cam' needs global pooling + one Dense after the explained layer, but the "
            f"classifier {dense.name!r} takes {kernel.shape[0]} features and the layer has {channels} channels; use 'gradcam'"
        )
    return kernel


CAM_METHODS: dict[str, type[BaseCAM]] = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "cam": CAM}


def grad_cam(
    model: keras.Model,
    images,
    class_index: int | Sequence[int] | None = None,
    layer: str | None = None,
    method: str = "gradcam",
) -> np.ndarray:
    """Heatmaps `(N, H, W)` in [0, 1] at the input resolution, one forward/backward pass per batch.

    Args:
        model: a functional or Sequential Keras model returning logits (the first output if
            several); the backbone may be a nested sub-model.
        images: `(N, H, W, C)` or `(H, W, C)` pixels as the model takes them ([0, 255] for kzoo).
        class_index: None (each image's predicted class), an int, or one int per image.
        layer: the layer to explain (a name, or "outer/inner" for a layer inside a nested model);
            None picks the last conv feature map (CNN) or the last block's tokens (ViT).
        method: "gradcam", "gradcam++" or "cam".

    Example:
        >>> model = kzoo.create_model("vgg11_cam_cifar", num_classes=10)  # doctest: +SKIP
        >>> grad_cam(model, images).shape
        (8, 32, 32)
    """
    if method not in CAM_METHODS:
        raise KzooError(f"grad_cam: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return CAM_METHODS[method](model, layer)(images, class_index)


def explain(model, images, class_index=None, layer=None, method: str = "gradcam") -> CAMResult:
    """Like `grad_cam`, but also returns logits, the explained classes and the raw maps."""
    if method not in CAM_METHODS:
        raise KzooError(f"grad_cam: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return CAM_METHODS[method](model, layer).compute(images, class_index)
