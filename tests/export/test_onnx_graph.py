"""kzoo/deploy/onnx_graph.py: the rewrites of tf2onnx's graph, on a real export and on hand-built graphs."""

from __future__ import annotations

import collections

import keras
import numpy as np
import pytest
from tiny_models import tiny_model

import kzoo
from kzoo.training.evaluation import first_output

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper

from kzoo.deploy import onnx_graph

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="tf2onnx: the TensorFlow pass")


def ops(model) -> collections.Counter:
    return collections.Counter(n.op_type for n in model.graph.node)


def run(model, x: np.ndarray, options=None) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), options or ort.SessionOptions(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def randomised_vit() -> keras.Model:
    """The tiny ViT with non-trivial LayerNorm gamma/beta and Dense biases: at initialisation they are
    ones and zeros, which TensorFlow folds away, and the pattern would lack its beta Add."""
    model = tiny_model("vit")
    rng = np.random.default_rng(1)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.LayerNormalization):
            layer.gamma.assign(1 + 0.2 * rng.standard_normal(layer.gamma.shape).astype("float32"))
            layer.beta.assign(0.2 * rng.standard_normal(layer.beta.shape).astype("float32"))
        elif isinstance(layer, keras.layers.Dense) and layer.bias is not None:
            layer.bias.assign(0.1 * rng.standard_normal(layer.bias.shape).astype("float32"))
    return model


@pytest.mark.parametrize("batch", [None, 2])
def test_exported_vit_is_fused_standard_onnx_and_exact(batch, tmp_path):
    model = randomised_vit()
    norms = sum(isinstance(l, keras.layers.LayerNormalization) for l in model._flatten_layers(include_self=False))
    gelus = sum(getattr(l, "activation", None) is keras.activations.gelu for l in model._flatten_layers(include_self=False))
    assert norms == 5 and gelus == 2
    path = str(tmp_path / "vit.onnx")
    kzoo.export(model, path, "onnx", batch=batch)
    exported = onnx.load(path)
    count = ops(exported)
    # One LayerNormalization per Keras layer, nothing left of Keras' decomposition of it.
    assert count["LayerNormalization"] == norms
    assert not count & collections.Counter(["GlobalAveragePool", "ReduceMean", "Sqrt", "Reciprocal", "Neg", "Sub"])
    # GELU in the Div -> Erf -> Add form, Dense layers as one MatMul, reshapes with constant shapes.
    assert count["Erf"] == count["Div"] == gelus
    initializers = {t.name: numpy_helper.to_array(t) for t in exported.graph.initializer}
    reshapes = {n.output[0]: initializers.get(n.input[1]) for n in exported.graph.node if n.op_type == "Reshape"}
    assert all(shape is not None for shape in reshapes.values())
    flattened = [n for n in exported.graph.node if n.op_type == "MatMul" and n.input[0] in reshapes
                 and len(reshapes[n.input[0]]) == 2]  # Dense's Reshape(x, [-1, K]) -> MatMul -> Reshape back
    # (with a fixed batch tf2onnx merges the attention's head merge into proj's flattening Reshape: kept)
    assert len(flattened) == (0 if batch is None else 2)
    assert len(exported.graph.node) < 100  # tf2onnx wrote 213
    # Standard ONNX: the default domain only, at the opset LayerNormalization needs.
    assert {n.domain for n in exported.graph.node} <= {""}
    assert onnx_graph._opset(exported) == onnx_graph.LAYER_NORM_OPSET
    onnx.checker.check_model(exported, full_check=True)
    # ONNX Runtime answers like Keras on other images and batch sizes.
    x = np.random.default_rng(5).uniform(0, 255, (batch or 3, 32, 32, 3)).astype("float32")
    want = np.asarray(first_output(model.predict_on_batch(x)), np.float32)
    got = run(exported, x)
    assert np.max(np.abs(got - want)) <= 1e-5 * max(1.0, float(np.max(np.abs(want))))


def test_ort_fuses_the_rewritten_gelu(tmp_path):
    """The point of the GELU rewrite: ONNX Runtime's own fusion recognises it (and the bias before it)."""
    model = randomised_vit()
    path = str(tmp_path / "vit.onnx")
    kzoo.export(model, path, "onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "ort.onnx")
    ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    fused = ops(onnx.load(str(tmp_path / "ort.onnx")))
    assert fused["Gelu"] + fused["BiasGelu"] == 2 and fused["Erf"] == 0
    assert fused["LayerNormalization"] + fused["SkipLayerNormalization"] == 5


# Hand-built graphs in the form tf2onnx writes for Keras 3 (mean over the last axis of (N, T, C)).
C = 4


def keras_layer_norm(mean="GlobalAveragePool", axes=(-1,), gamma=(C,), beta=True, extra_output=None):
    """y = x * inv + (-mean * inv + beta), inv = gamma / sqrt(var + eps): Keras 3's layer_normalization
    after tf2onnx. `gamma`: the constant's shape (None: no gamma); `extra_output`: a tensor also
    made a graph output."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(1e-3, np.float32), "eps")]

    def reduce(name: str, src: str):
        if mean == "GlobalAveragePool":
            return helper.make_node("GlobalAveragePool", [src], [name])
        return helper.make_node("ReduceMean", [src], [name], axes=list(axes), keepdims=1)

    nodes = [reduce("mean", "x"), helper.make_node("Neg", ["mean"], ["neg"]),
             helper.make_node("Sub", ["x", "mean"], ["diff"]), helper.make_node("Mul", ["diff", "diff"], ["sq"]),
             reduce("var", "sq"), helper.make_node("Add", ["var", "eps"], ["var_eps"]),
             helper.make_node("Sqrt", ["var_eps"], ["std"]), helper.make_node("Reciprocal", ["std"], ["rstd"])]
    inv = "rstd"
    if gamma is not None:
        inits.append(numpy_helper.from_array((1 + rng.standard_normal(gamma)).astype(np.float32), "gamma"))
        nodes.append(helper.make_node("Mul", ["rstd", "gamma"], ["inv"]))
        inv = "inv"
    nodes += [helper.make_node("Mul", ["x", inv], ["x_inv"]), helper.make_node("Mul", ["neg", inv], ["mean_inv"])]
    res = "mean_inv"
    if beta:
        inits.append(numpy_helper.from_array(rng.standard_normal((1, 1, C)).astype(np.float32), "beta"))
        nodes.append(helper.make_node("Add", ["mean_inv", "beta"], ["res"]))
        res = "res"
    nodes.append(helper.make_node("Add", ["x_inv", res], ["y"]))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, C])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, C])],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def reference_layer_norm(model, x: np.ndarray) -> np.ndarray:
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + values["eps"]) * values.get("gamma", 1.0)
    return y + values.get("beta", 0.0)


X = np.random.default_rng(2).normal(3.0, 2.0, (2, 3, C)).astype(np.float32)


@pytest.mark.parametrize("kwargs", [{}, {"mean": "ReduceMean", "axes": (2,)}, {"gamma": (1, 1, C)},
                                    {"beta": False}, {"gamma": None}],
                         ids=["gap", "reducemean", "gamma_113", "no_beta", "no_gamma"])
def test_layer_norm_pattern_becomes_one_node(kwargs):
    model = keras_layer_norm(**kwargs)
    want = reference_layer_norm(model, X)
    np.testing.assert_allclose(run(model, X), want, rtol=1e-5, atol=1e-5)  # the hand-built graph is right
    fused, counts = onnx_graph.optimize_model(model)
    assert [n.op_type for n in fused.graph.node] == ["LayerNormalization"] and counts["layer_norm"] == 1
    assert onnx_graph._opset(fused) == 17  # raised from 15 for LayerNormalization
    onnx.checker.check_model(fused, full_check=True)
    np.testing.assert_allclose(run(fused, X), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"mean": "ReduceMean", "axes": (1,)}, {"gamma": (1, 3, 1)},
                                    {"extra_output": "mean"}, {"extra_output": "x_inv"}],
                         ids=["other_axis", "gamma_per_token", "mean_read_elsewhere", "product_read_elsewhere"])
def test_look_alike_graphs_are_left_alone(kwargs):
    model = keras_layer_norm(**kwargs)
    before = [n.op_type for n in model.graph.node]
    want = run(model, X)
    rewritten, counts = onnx_graph.optimize_model(model)
    assert [n.op_type for n in rewritten.graph.node] == before and not counts.get("layer_norm")
    assert onnx_graph._opset(rewritten) == 15
    np.testing.assert_array_equal(run(rewritten, X), want)


def keras_gelu(scale: float):
    """0.5 x erfc(-x * scale), as onnx_ops writes TensorFlow's exact GELU (scale 1/sqrt2)."""
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
             [("half", 0.5), ("scale", scale), ("one", 1.0)]]
    nodes = [helper.make_node("Mul", ["half", "x"], ["h"]), helper.make_node("Neg", ["x"], ["n"]),
             helper.make_node("Mul", ["n", "scale"], ["s"]), helper.make_node("Erf", ["s"], ["e"]),
             helper.make_node("Sub", ["one", "e"], ["c"]), helper.make_node("Mul", ["h", "c"], ["y"])]
    graph = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", C])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", C])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def test_gelu_becomes_the_form_ort_fuses_and_a_look_alike_does_not():
    x = np.linspace(-5, 5, 8 * C, dtype=np.float32).reshape(8, C)
    model = keras_gelu(float(np.sqrt(0.5)))
    want = run(model, x)
    rewritten, counts = onnx_graph.optimize_model(model)
    assert counts["gelu"] == 1 and [n.op_type for n in rewritten.graph.node] == ["Mul", "Div", "Erf", "Add", "Mul"]
    np.testing.assert_allclose(run(rewritten, x), want, rtol=1e-6, atol=1e-6)
    other = keras_gelu(0.5)  # erfc(-x/2): not GELU's scale
    before = [n.op_type for n in other.graph.node]
    rewritten, counts = onnx_graph.optimize_model(other)
    assert counts["gelu"] == 0 and [n.op_type for n in rewritten.graph.node] == before


def relu_pad_maxpool(pads, relu: bool = True):
    """Relu -> Pad(zeros) -> MaxPool(3, stride 2) on NCHW."""
    nodes = [helper.make_node("Relu" if relu else "Identity", ["x"], ["r"]),
             helper.make_node("Pad", ["r", "pads"], ["p"], mode="constant"),
             helper.make_node("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2])]
    graph = helper.make_graph(nodes, "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.array(pads, np.int64), "pads")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def test_zero_padding_after_relu_folds_into_the_max_pool():
    x = np.random.default_rng(3).normal(size=(2, 2, 9, 9)).astype(np.float32)
    model = relu_pad_maxpool([0, 0, 1, 1, 0, 0, 1, 1])
    want = run(model, x)
    rewritten, counts = onnx_graph.optimize_model(model)
    assert counts["maxpool_padding"] == 1 and [n.op_type for n in rewritten.graph.node] == ["Relu", "MaxPool"]
    assert {a.name: helper.get_attribute_value(a) for a in rewritten.graph.node[1].attribute}["pads"] == [1, 1, 1, 1]
    np.testing.assert_array_equal(run(rewritten, x), want)
    # Zeros are no -inf where inputs can be negative, and a channel padding is no pool padding.
    for model in (relu_pad_maxpool([0, 0, 1, 1, 0, 0, 1, 1], relu=False), relu_pad_maxpool([0, 1, 1, 1, 0, 0, 1, 1])):
        rewritten, counts = onnx_graph.optimize_model(model)
        assert counts["maxpool_padding"] == 0 and "Pad" in ops(rewritten)


def nhwc_normalise_transpose(scale_shape=(3,), shift_shape=(1, 1, 1, 3), perm=(0, 3, 1, 2), extra_output=None):
    """x * scale + shift on NHWC pixels, then Transpose (tf2onnx's form of kzoo's input normalisation)."""
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array((0.01 + 0.02 * rng.random(scale_shape)).astype(np.float32), "scale"),
             numpy_helper.from_array(rng.normal(size=shift_shape).astype(np.float32), "shift")]
    nodes = [helper.make_node("Mul", ["x", "scale"], ["scaled"]), helper.make_node("Add", ["scaled", "shift"], ["norm"]),
             helper.make_node("Transpose", ["norm"], ["y"], perm=list(perm))]
    nhwc = ["N", 5, 6, 3]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [nhwc[p] for p in perm])]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.FLOAT, nhwc))
    graph = helper.make_graph(nodes, "normalise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, nhwc)],
                              outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def test_nhwc_to_nchw_transpose_moves_before_the_per_channel_normalisation():
    x = np.random.default_rng(5).uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)
    model = nhwc_normalise_transpose()
    want = run(model, x)
    rewritten, counts = onnx_graph.optimize_model(model)
    assert counts["channel_transpose"] == 2
    assert [n.op_type for n in rewritten.graph.node] == ["Transpose", "Mul", "Add"]
    assert rewritten.graph.node[0].input[0] == "x"  # the Transpose reads the graph input
    values = {t.name: numpy_helper.to_array(t) for t in rewritten.graph.initializer}
    assert [values[n.input[1]].shape for n in rewritten.graph.node[1:]] == [(1, 3, 1, 1)] * 2  # per NCHW channel
    onnx.checker.check_model(rewritten, full_check=True)
    np.testing.assert_array_equal(run(rewritten, x), want)  # the same products and sums, element for element


@pytest.mark.parametrize("kwargs, order", [
    ({"scale_shape": (1, 5, 1, 1)}, ["Mul", "Transpose", "Add"]),  # the shift moves, a per-row scale does not
    ({"perm": (0, 2, 1, 3)}, ["Mul", "Add", "Transpose"]),  # the channels stay the last axis: nothing to gain
    ({"extra_output": "norm"}, ["Mul", "Add", "Transpose"]),  # the NHWC result is a graph output too
], ids=["constant_not_per_channel", "last_axis_stays", "normalised_read_elsewhere"])
def test_transposes_that_would_not_gain_or_change_the_graph_stay(kwargs, order):
    x = np.random.default_rng(5).uniform(0, 255, (2, 5, 6, 3)).astype(np.float32)
    model = nhwc_normalise_transpose(**kwargs)
    want = run(model, x)
    rewritten, counts = onnx_graph.optimize_model(model)
    assert counts["channel_transpose"] == 2 - order.index("Transpose")  # one per op it moved across
    assert [n.op_type for n in rewritten.graph.node] == order
    np.testing.assert_array_equal(run(rewritten, x), want)


def test_exported_cnn_transposes_its_pixels_before_normalising(tmp_path):
    model = tiny_model("resnet")
    path = str(tmp_path / "resnet.onnx")
    kzoo.export(model, path, "onnx")
    exported = onnx.load(path)
    first = exported.graph.node[:4]
    assert [n.op_type for n in first] == ["Transpose", "Mul", "Add", "Conv"]
    assert first[0].input[0] == exported.graph.input[0].name
    x = np.random.default_rng(6).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    want = np.asarray(first_output(model.predict_on_batch(x)), np.float32)
    assert np.max(np.abs(run(exported, x) - want)) <= 1e-5 * max(1.0, float(np.max(np.abs(want))))
