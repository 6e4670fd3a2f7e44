"""Rewrite tf2onnx's graph of a Keras 3 model into standard ONNX that ONNX Runtime runs fast.

tf2onnx converts TensorFlow's graph op by op, and ONNX Runtime's own fusions do not recognise what
it writes for Keras 3: kzoo's ViT-S/16 file had 1,019 nodes against the 455 of timm's
`torch.onnx.export` file and ran at 0.87-0.96x its speed. `optimize` rewrites the file after
tf2onnx; every rewrite computes the same values (up to float32 rounding, and the export's own
check against the Keras model still follows) and is made only where the pattern matches exactly:

- layer normalisation: Keras 3 writes it as mean, squared difference, mean, + epsilon, rsqrt,
  * gamma, x * inv + (beta - mean * inv) (13 nodes; tf2onnx turns a last-axis mean of a rank-3
  tensor into GlobalAveragePool, which ORT's LayerNormFusion does not look for). It becomes one
  ONNX `LayerNormalization` (opset 17; a lower opset is raised with onnx's version converter).
- exact GELU: TensorFlow computes `0.5 x erfc(-x / sqrt2)` (Neg, Mul, Erf, Sub once
  kzoo.deploy.onnx_ops has replaced Erfc); rewritten as `0.5 x (1 + erf(x / sqrt2))` (Div, Erf,
  Add), the form ORT fuses into one Gelu kernel (with the Dense bias before it: BiasGelu).
- shape arithmetic: for the dynamic batch, Keras' Dense on (N, T, C) and its reshapes become
  Shape -> Cast -> Gather/Slice -> Concat -> Cast -> Reshape chains. A Reshape whose output shape
  ONNX's shape inference knows but for one dimension gets a constant shape (-1 for that one), and
  Reshape(x, [-1, K]) -> MatMul(W) -> Reshape(x's leading dimensions + [N]) becomes MatMul(x, W).
- zero padding before a max pool: ZeroPadding2D + MaxPooling2D after a ReLU (kzoo's form of
  torch's -inf padded pool) becomes the pool's own `pads`; ORT then keeps its blocked NCHWc layout
  through the pool instead of reordering the whole activation twice around a Pad.
- the input normalisation of a CNN: kzoo's model takes NHWC pixels, scales and shifts them per
  channel (Mul, Add on the last axis) and tf2onnx transposes to NCHW after that. ORT's broadcast
  over a last axis of 3 is slow (ResNet-50, batch 1: Mul + Add 0.53 of 23.4 ms, 2% of the run);
  the Transpose is moved before them and their constants become (1, C, 1, 1), so each broadcasts
  over whole H x W planes (0.1 ms; bit-identical results).

Nodes left without consumers are then dropped. Only ONNX's default domain is used (no ORT
contrib ops), so the file stays loadable by any ONNX runtime.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

log = logging.getLogger("kzoo.export")

LAYER_NORM_OPSET = 17  # ONNX's LayerNormalization exists from opset 17
MAX_BYTES = 2**31 - 2**24  # protobuf's 2 GiB limit: a larger file is left as tf2onnx wrote it
Dims = list  # a tensor's inferred shape: ints where static, None where not
Node = onnx.NodeProto


def optimize(path: str) -> dict[str, int]:
    """Rewrite the ONNX file at `path` in place; returns how many rewrites of each kind were made."""
    if os.path.getsize(path) > MAX_BYTES:
        log.info("ONNX graph left as tf2onnx wrote it: the file exceeds protobuf's 2 GiB")
        return {}
    try:
        model, counts = optimize_model(onnx.load(path))
        if any(counts.values()):
            onnx.checker.check_model(model)
    except Exception as err:  # a bug here must not cost the export: tf2onnx's own file still runs
        log.warning("ONNX graph left as tf2onnx wrote it: rewriting failed (%s: %s)", type(err).__name__, err)
        return {}
    if any(counts.values()):
        onnx.save(model, path)
    log.debug("ONNX graph rewrites: %s", counts)
    return counts


def optimize_model(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, int]]:
    """The rewritten model (a new object when its opset had to be raised) and the rewrite counts."""
    dims = infer_dims(model)
    counts: Counter = Counter()
    counts["constant_reshape"] = constant_reshape_shapes(model.graph, dims)
    counts["dense_matmul"] = collapse_dense_reshapes(model.graph, dims)
    if _opset(model) < LAYER_NORM_OPSET and layer_norm_matches(model.graph, dims):
        model = raise_opset(model, LAYER_NORM_OPSET) or model
    if _opset(model) >= LAYER_NORM_OPSET:
        counts["layer_norm"] = fuse_layer_norms(model.graph, dims)
    counts["gelu"] = rewrite_gelu(model.graph)
    counts["maxpool_padding"] = fold_maxpool_padding(model.graph)
    counts["channel_transpose"] = transpose_before_channel_ops(model.graph, dims)
    counts["removed_nodes"] = remove_unused(model.graph)
    return model, dict(counts)


def infer_dims(model: onnx.ModelProto) -> dict[str, Dims]:
    """Every tensor's shape as ONNX's shape inference sees it. Data propagation carries values
    through the Shape -> Gather -> Concat chains, so computed reshape targets come out static."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as err:  # a graph the inference rejects: the shape-based rewrites are skipped
        log.debug("ONNX shape inference failed: %s", err)
        return {}
    dims = {}
    for info in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        tensor = info.type.tensor_type
        if tensor.HasField("shape"):
            dims[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
    return dims


def raise_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto | None:
    """`model` converted to the default domain's opset `version` by onnx's version converter, or
    None (logged) where it cannot convert: the rewrites that need the opset are then skipped."""
    try:
        return onnx.version_converter.convert_version(model, version)
    except Exception as err:
        log.info("ONNX opset left at %d (the version converter failed: %s)", _opset(model), err)
        return None


class _Index:
    """Who produces and who reads each tensor of a graph, and its constants: a snapshot taken
    before a pass, whose edits `rebuild` applies at once."""

    def __init__(self, graph: onnx.GraphProto):
        self.graph = graph
        self.nodes = list(graph.node)
        self.producer: dict[str, Node] = {o: n for n in self.nodes for o in n.output if o}
        self.consumers: dict[str, list[Node]] = defaultdict(list)
        for node in self.nodes:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.kept = {o.name for o in graph.output} | _subgraph_reads(graph)
        self.initializers = {t.name: t for t in graph.initializer}
        self.inputs = {i.name for i in graph.input}  # an initializer named here is an overridable default
        self.taken = {n.name for n in self.nodes} | set(self.producer) | set(self.initializers) | self.inputs
        self.replacements: dict[int, list[Node]] = {}

    def const(self, name: str) -> np.ndarray | None:
        """The value of a constant tensor (an initializer or a Constant node's), else None."""
        if name in self.initializers and name not in self.inputs:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and not node.domain:
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
        return None

    def const_shape(self, name: str) -> tuple[int, ...] | None:
        """The shape of an initializer, without reading its data (a weight can be large)."""
        tensor = self.initializers.get(name)
        return tuple(tensor.dims) if tensor is not None else None

    def made_by(self, name: str, op_type: str) -> Node | None:
        """The node of type `op_type` (default domain) that produces `name`, else None."""
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op_type and not node.domain else None

    def split_const(self, node: Node) -> tuple[str | None, np.ndarray | None]:
        """(the other input, the constant) of a binary node with one constant input."""
        if len(node.input) != 2:
            return None, None
        for i in (0, 1):
            value = self.const(node.input[i])
            if value is not None and self.const(node.input[1 - i]) is None:
                return node.input[1 - i], value
        return None, None

    def only_read_by(self, name: str, readers: Iterable[Node]) -> bool:
        """Whether no node besides `readers` reads `name`, and it is no graph output: a fused
        pattern is only worth it where its intermediate results die with it."""
        allowed = {id(n) for n in readers}
        return name not in self.kept and all(id(n) in allowed for n in self.consumers.get(name, ()))

    def fresh(self, base: str) -> str:
        """A tensor or node name not yet in the graph."""
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    def add_initializer(self, base: str, value: np.ndarray) -> str:
        name = self.fresh(base)
        self.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def replace(self, node: Node, new_nodes: list[Node]) -> None:
        """Put `new_nodes` where `node` was; they produce its outputs, so no reader changes."""
        self.replacements[id(node)] = new_nodes

    def rebuild(self) -> int:
        """Apply the replacements (in place, so the order stays topological); returns their count."""
        if self.replacements:
            nodes = []
            for node in self.nodes:
                nodes.extend(self.replacements.get(id(node), [node]))
            self.graph.ClearField("node")
            self.graph.node.extend(nodes)
        return len(self.replacements)


def constant_reshape_shapes(graph: onnx.GraphProto, dims: dict[str, Dims]) -> int:
    """Give each Reshape whose target shape is computed, and whose output shape inference knows
    but for at most one dimension, that shape as a constant (-1 for the unknown dimension: with
    every other dimension fixed, -1 resolves to the only size the computed shape could have had).
    The Shape/Cast/Gather/Concat chains that computed it then die."""
    ix = _Index(graph)
    for node in ix.nodes:
        if node.op_type != "Reshape" or node.domain or len(node.input) != 2 or ix.const(node.input[1]) is not None:
            continue
        out = dims.get(node.output[0])
        if out is None or sum(d is None for d in out) > 1 or 0 in out:
            continue
        shape = ix.add_initializer(f"{node.name}/shape", np.array([-1 if d is None else d for d in out], np.int64))
        new = helper.make_node("Reshape", [node.input[0], shape], list(node.output), name=node.name)
        new.attribute.extend(node.attribute)
        ix.replace(node, [new])
    return ix.rebuild()


def collapse_dense_reshapes(graph: onnx.GraphProto, dims: dict[str, Dims]) -> int:
    """Reshape(x, [-1 or M, K]) -> MatMul(W: K x N) -> Reshape(to x's leading dimensions + [N]),
    Keras' Dense on a rank > 2 input (tf.tensordot), becomes MatMul(x, W): ONNX's MatMul
    broadcasts over the leading dimensions and computes the same products."""
    ix = _Index(graph)
    for back in ix.nodes:
        if back.op_type != "Reshape" or back.domain:
            continue
        matmul = ix.made_by(back.input[0], "MatMul")
        weight = ix.const_shape(matmul.input[1]) if matmul is not None else None
        flat = ix.made_by(matmul.input[0], "Reshape") if weight is not None and len(weight) == 2 else None
        if flat is None or not _is_flatten_to(ix.const(flat.input[1]), weight[0]):
            continue
        x = flat.input[0]
        if not (_same_leading_dims(dims.get(x), dims.get(back.output[0]), weight)
                and ix.only_read_by(flat.output[0], [matmul]) and ix.only_read_by(matmul.output[0], [back])):
            continue
        name = ix.fresh(f"{matmul.name}_nd")
        ix.replace(back, [helper.make_node("MatMul", [x, matmul.input[1]], list(back.output), name=name)])
    return ix.rebuild()


def _is_flatten_to(shape: np.ndarray | None, k: int) -> bool:
    """Whether a Reshape target is [M, K] (M given, or -1)."""
    return shape is not None and shape.shape == (2,) and shape[1] == k and (shape[0] == -1 or shape[0] > 0)


def _same_leading_dims(x: Dims | None, out: Dims | None, weight: tuple[int, ...]) -> bool:
    """Whether the reshape back restores x's leading dimensions: x is (..., K) and out (..., N),
    equal where both are static, and at most one dimension unknown among x's and out's leading
    ones and x's last: the two reshapes succeeding then forces that one equal too."""
    if x is None or out is None or len(x) != len(out) or len(x) < 2:
        return False
    if x[-1] not in (None, weight[0]) or out[-1] != weight[1]:
        return False
    lead = list(zip(x[:-1], out[:-1]))
    if any(a is not None and b is not None and a != b for a, b in lead):
        return False
    return sum(a is None or b is None for a, b in lead) + (x[-1] is None) <= 1


@dataclass
class _LayerNorm:
    """One matched Keras 3 layer normalisation: y = x * inv + (beta - mean * inv), with
    inv = gamma / sqrt(var + eps), mean and var over x's last axis; `last` computes y."""

    x: str
    last: Node
    eps: float
    gamma: np.ndarray | None
    beta: np.ndarray | None
    dtype: np.dtype


def layer_norm_matches(graph: onnx.GraphProto, dims: dict[str, Dims]) -> list[_LayerNorm]:
    """Every Keras 3 layer normalisation over the last axis in the graph whose intermediate
    results nothing else reads (anchored on rsqrt's Sqrt -> Reciprocal)."""
    ix = _Index(graph)
    found = (_match_layer_norm(ix, node, dims) for node in ix.nodes if node.op_type == "Reciprocal" and not node.domain)
    return [m for m in found if m is not None]


def fuse_layer_norms(graph: onnx.GraphProto, dims: dict[str, Dims]) -> int:
    """Replace each matched layer normalisation by ONNX's LayerNormalization (axis -1). ORT's
    kernel computes the mean and variance in one pass: the same values up to float32 rounding."""
    ix = _Index(graph)
    for node in ix.nodes:
        if node.op_type != "Reciprocal" or node.domain:
            continue
        match = _match_layer_norm(ix, node, dims)
        if match is not None:
            ix.replace(match.last, [_layer_norm_node(ix, match, dims[match.x][-1])])
    return ix.rebuild()


def _layer_norm_node(ix: _Index, m: _LayerNorm, channels: int) -> Node:
    prefix = os.path.dirname(m.last.name) or m.last.name
    gamma = np.ones(channels, m.dtype) if m.gamma is None else np.broadcast_to(m.gamma.reshape(-1), (channels,))
    inputs = [m.x, ix.add_initializer(f"{prefix}/gamma", gamma.astype(m.dtype))]
    if m.beta is not None:
        inputs.append(ix.add_initializer(f"{prefix}/beta", np.broadcast_to(m.beta.reshape(-1), (channels,))))
    return helper.make_node("LayerNormalization", inputs, list(m.last.output), name=ix.fresh(f"{prefix}/LayerNorm"),
                            axis=-1, epsilon=m.eps)


def _match_layer_norm(ix: _Index, reciprocal: Node, dims: dict[str, Dims]) -> _LayerNorm | None:
    """Walk up from 1/sqrt(var + eps) to x and its mean, then down to the output; None where any
    step differs (another op, another axis, a shared intermediate, a per-element epsilon...)."""
    sqrt = ix.made_by(reciprocal.input[0], "Sqrt")
    add_eps = ix.made_by(sqrt.input[0], "Add") if sqrt is not None else None
    var_name, eps = ix.split_const(add_eps) if add_eps is not None else (None, None)
    if eps is None or eps.size != 1 or var_name not in ix.producer:
        return None
    var = ix.producer[var_name]
    square = ix.made_by(var.input[0], "Mul") if var.input else None
    diff = ix.made_by(square.input[0], "Sub") if square is not None and square.input[0] == square.input[1] else None
    if diff is None:
        return None
    x, mean_name = diff.input
    mean, x_dims = ix.producer.get(mean_name), dims.get(x)
    if mean is None or mean.input[:1] != [x] or x_dims is None or not isinstance(x_dims[-1], int):
        return None
    if not (_last_axis_mean(ix, mean, len(x_dims)) and _last_axis_mean(ix, var, len(x_dims))):
        return None
    neg = next((n for n in ix.consumers[mean_name] if n.op_type == "Neg" and not n.domain), None)
    if neg is None or not all(ix.only_read_by(n, readers) for n, readers in [
            (mean_name, [diff, neg]), (diff.output[0], [square]), (square.output[0], [var]),
            (var_name, [add_eps]), (add_eps.output[0], [sqrt]), (sqrt.output[0], [reciprocal])]):
        return None
    tail = _match_affine_tail(ix, x, neg, reciprocal)
    if tail is None:
        return None
    last, gamma, beta = tail
    channels = x_dims[-1]
    if not all(v is None or _per_channel(v, channels, len(x_dims)) for v in (gamma, beta)):
        return None
    return _LayerNorm(x, last, float(eps.reshape(())), gamma, beta, eps.dtype)


def _last_axis_mean(ix: _Index, node: Node, rank: int) -> bool:
    """Whether `node` averages its input over the last axis, keeping it (as size 1)."""
    if node.domain or len(node.output) != 1:
        return False
    if node.op_type == "GlobalAveragePool":  # averages axes 2.. : the last one alone at rank 3
        return rank == 3
    if node.op_type != "ReduceMean":
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    axes = attrs.get("axes")
    if axes is None and len(node.input) > 1:  # opset 18: axes are an input
        axes = ix.const(node.input[1])
        axes = None if axes is None else axes.reshape(-1).tolist()
    return attrs.get("keepdims", 1) == 1 and axes is not None and [a % rank for a in axes] == [rank - 1]


def _match_affine_tail(ix: _Index, x: str, neg: Node, reciprocal: Node):
    """From inv = 1/sqrt(var + eps) [* gamma] down to y = x * inv + (-mean * inv [+ beta]):
    (y's node, gamma or None, beta or None), or None."""
    inv, gamma = reciprocal.output[0], None
    readers = ix.consumers[inv]
    if len(readers) == 1 and readers[0].op_type == "Mul" and not readers[0].domain and inv not in ix.kept:
        other, gamma = ix.split_const(readers[0])
        if other != inv:
            return None
        inv = readers[0].output[0]
    muls = ix.consumers[inv]
    if len(muls) != 2 or inv in ix.kept or any(n.op_type != "Mul" or n.domain for n in muls):
        return None
    by_other = {(n.input[1] if n.input[0] == inv else n.input[0]): n for n in muls}
    x_mul, mean_mul = by_other.get(x), by_other.get(neg.output[0])
    if x_mul is None or mean_mul is None or not ix.only_read_by(neg.output[0], [mean_mul]):
        return None
    res, beta = mean_mul.output[0], None
    add = _sole_reader(ix, res, "Add")
    if add is not None and x_mul.output[0] not in add.input:  # -mean * inv + beta first
        other, beta = ix.split_const(add)
        if other != res or beta is None:
            return None
        res, add = add.output[0], _sole_reader(ix, add.output[0], "Add")
    if add is None or sorted(add.input) != sorted([x_mul.output[0], res]) \
            or not ix.only_read_by(x_mul.output[0], [add]):
        return None
    return add, gamma, beta


def _sole_reader(ix: _Index, name: str, op_type: str) -> Node | None:
    """The one node reading `name`, if it has type `op_type` and nothing else reads it."""
    readers = ix.consumers.get(name, [])
    if len(readers) != 1 or readers[0].op_type != op_type or readers[0].domain or name in ix.kept:
        return None
    return readers[0]


def _per_channel(value: np.ndarray, channels: int, rank: int) -> bool:
    """Whether gamma or beta broadcasts along the last axis only (shape (..., 1, C) or a scalar)."""
    shape = value.shape
    return len(shape) <= rank and all(d == 1 for d in shape[:-1]) and (not shape or shape[-1] in (1, channels))


def rewrite_gelu(graph: onnx.GraphProto) -> int:
    """1 - erf(-x * (1/sqrt2)) (TensorFlow's erfc form, after onnx_ops) becomes 1 + erf(x / sqrt2):
    equal, since erf is odd, and the Div -> Erf -> Add(1) -> Mul -> Mul(0.5) chain ORT fuses."""
    ix = _Index(graph)
    constants: dict[str, str] = {}
    for erf in ix.nodes:
        if erf.op_type != "Erf" or erf.domain:
            continue
        scaled = ix.made_by(erf.input[0], "Mul")
        neg_name, scale = ix.split_const(scaled) if scaled is not None else (None, None)
        neg = ix.made_by(neg_name, "Neg") if neg_name else None
        sub = _sole_reader(ix, erf.output[0], "Sub")
        one = ix.const(sub.input[0]) if sub is not None and sub.input[1] == erf.output[0] else None
        if neg is None or one is None or one.size != 1 or float(one.reshape(())) != 1.0 or scale.size != 1 \
                or not np.isclose(float(scale.reshape(())), np.sqrt(0.5), rtol=1e-6, atol=0) \
                or not ix.only_read_by(neg.output[0], [scaled]) or not ix.only_read_by(scaled.output[0], [erf]):
            continue
        dtype = scale.dtype
        if dtype.name not in constants:
            constants[dtype.name] = ix.add_initializer("kzoo_gelu_sqrt2", np.array(np.sqrt(2.0), dtype))
            constants[dtype.name + "_one"] = ix.add_initializer("kzoo_gelu_one", np.array(1.0, dtype))
        div_out, erf_out = ix.fresh(f"{erf.name}_div:0"), ix.fresh(f"{erf.name}_erf:0")
        ix.replace(sub, [
            helper.make_node("Div", [neg.input[0], constants[dtype.name]], [div_out], name=ix.fresh(f"{erf.name}_div")),
            helper.make_node("Erf", [div_out], [erf_out], name=ix.fresh(f"{erf.name}_erf")),
            helper.make_node("Add", [erf_out, constants[dtype.name + "_one"]], list(sub.output),
                             name=ix.fresh(f"{erf.name}_plus_one")),
        ])
    return ix.rebuild()


def fold_maxpool_padding(graph: onnx.GraphProto) -> int:
    """Relu -> Pad(zeros, spatial axes) -> MaxPool becomes Relu -> MaxPool(pads): a pool's own
    padding is never the maximum, and neither is a zero among ReLU outputs (all >= 0), as long as
    every window still holds one real element (each pad smaller than the kernel)."""
    ix = _Index(graph)
    for pool in ix.nodes:
        if pool.op_type != "MaxPool" or pool.domain or len([o for o in pool.output if o]) != 1:
            continue
        pad = ix.made_by(pool.input[0], "Pad")
        if pad is None or ix.made_by(pad.input[0], "Relu") is None or not ix.only_read_by(pad.output[0], [pool]):
            continue
        pads = _spatial_zero_pads(ix, pad, pool)
        if pads is None:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
        attrs["pads"] = pads
        ix.replace(pool, [helper.make_node("MaxPool", [pad.input[0]], list(pool.output), name=pool.name, **attrs)])
    return ix.rebuild()


def _spatial_zero_pads(ix: _Index, pad: Node, pool: Node) -> list[int] | None:
    """The pool's `pads` with the Pad's folded in, or None where the Pad is not a constant zero
    padding of the spatial axes alone or the pool's attributes do not allow it."""
    attrs = {a.name: helper.get_attribute_value(a) for a in pad.attribute}
    pool_attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
    kernel = list(pool_attrs.get("kernel_shape", []))
    if attrs.get("mode", b"constant") not in (b"constant", "constant") or len(pad.input) > 3 or not kernel:
        return None
    value = ix.const(pad.input[2]) if len(pad.input) == 3 and pad.input[2] else np.zeros(1)
    pads = ix.const(pad.input[1]) if len(pad.input) > 1 else None
    if value is None or value.size != 1 or float(value.reshape(())) != 0.0 or pads is None:
        return None
    rank, pads = len(kernel) + 2, pads.reshape(-1).tolist()
    if len(pads) != 2 * rank or any(pads[i] for i in (0, 1, rank, rank + 1)) or min(pads) < 0:
        return None
    if pool_attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pool_attrs.get("ceil_mode", 0) \
            or any(d != 1 for d in pool_attrs.get("dilations", [1] * len(kernel))):
        return None
    old = list(pool_attrs.get("pads", [0] * 2 * len(kernel)))
    new = [old[i] + p for i, p in enumerate(pads[2:rank] + pads[rank + 2:])]
    k = len(kernel)
    if any(new[i] >= kernel[i % k] for i in range(2 * k)):
        return None
    return new


ELEMENTWISE = ("Add", "Sub", "Mul", "Div")


def transpose_before_channel_ops(graph: onnx.GraphProto, dims: dict[str, Dims]) -> int:
    """Op(x, c) -> Transpose(perm) becomes Transpose(x, perm) -> Op(., c transposed by perm), where
    Op is an elementwise Add/Sub/Mul/Div, c a constant that is a scalar or varies along x's last
    axis only, and the Transpose moves that axis inwards (NHWC -> NCHW). The same values, element
    for element; repeated until the Transpose has passed the whole chain of such ops. Returns the
    number of ops it passed."""
    moves = 0
    while True:
        ix, moved = _Index(graph), 0
        for transpose in ix.nodes:
            perm = next((list(helper.get_attribute_value(a)) for a in transpose.attribute if a.name == "perm"), None)
            op = ix.producer.get(transpose.input[0]) if transpose.op_type == "Transpose" else None
            if perm is None or transpose.domain or op is None or op.op_type not in ELEMENTWISE or op.domain \
                    or perm[-1] == len(perm) - 1 or not ix.only_read_by(op.output[0], [transpose]):
                continue
            x, c = ix.split_const(op)
            if c is None or len(dims.get(x) or ()) != len(perm) or c.ndim > len(perm) \
                    or any(d != 1 for d in c.shape[:-1]):
                continue
            early = ix.fresh(f"{transpose.name}_early:0")
            c = np.transpose(c.reshape((1,) * (len(perm) - c.ndim) + c.shape), perm)
            inputs = [early, ix.add_initializer(f"{op.name}/channels_first", c)]
            ix.replace(op, [])  # only the Transpose read it
            ix.replace(transpose, [
                helper.make_node("Transpose", [x], [early], name=ix.fresh(transpose.name), perm=perm),
                helper.make_node(op.op_type, inputs if op.input[0] == x else inputs[::-1], list(transpose.output),
                                 name=ix.fresh(op.name)),
            ])
            moved += 1
        if not moved:
            return moves
        ix.rebuild()
        moves += moved


def remove_unused(graph: onnx.GraphProto) -> int:
    """Drop the nodes and initializers nothing needs for the graph's outputs; returns the number of
    nodes dropped."""
    needed = {o.name for o in graph.output} | _subgraph_reads(graph)
    kept = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output if o):
            kept.append(node)
            needed.update(i for i in node.input if i)
    dropped = len(graph.node) - len(kept)
    if dropped:
        graph.ClearField("node")
        graph.node.extend(reversed(kept))
    inputs = {i.name for i in graph.input}
    initializers = [t for t in graph.initializer if t.name in needed or t.name in inputs]
    if len(initializers) != len(graph.initializer):
        graph.ClearField("initializer")
        graph.initializer.extend(initializers)
    values = [v for v in graph.value_info if v.name in needed]
    if len(values) != len(graph.value_info):
        graph.ClearField("value_info")
        graph.value_info.extend(values)
    return dropped


def _subgraph_reads(graph: onnx.GraphProto) -> set[str]:
    """Names read inside the graph's subgraphs (If, Loop, Scan bodies): outer tensors they may use."""
    names: set[str] = set()
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                names.update(i for n in sub.node for i in n.input)
                names |= _subgraph_reads(sub)
    return names


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
