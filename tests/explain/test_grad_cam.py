"""Grad-CAM / Grad-CAM++ / CAM: reference agreement, layer choice, nested models, bad input."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import kzoo
from kzoo.errors import KzooError
from kzoo.explain import explain, find_target_layer, grad_cam

TF_ONLY = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="GradientTape reference needs TF")
JAX_ONLY = pytest.mark.skipif(keras.backend.backend() != "jax", reason="jax.grad reference needs JAX")


def _images(n=4, size=32, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def _cnn(num_classes=5, gap_dense=True):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="features")(x)
    if gap_dense:
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    else:
        x = keras.layers.MaxPooling2D(name="maxpool")(x)
        x = keras.layers.Flatten(name="flatten")(x)
        x = keras.layers.Dense(32, activation="relu", name="fc")(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="head")(x), name="cnn")


def _vit(pool="cls", depth=2):
    keras.utils.set_random_seed(2)
    return kzoo.create_model("vit_cifar_tiny", num_classes=6, depth=depth, dim=32, heads=2, mlp_dim=64, pool=pool)


def _gradcam_np(a, g, method):
    if method == "gradcam":
        w = g.mean(axis=(1, 2))
    else:  # gradcam++, pytorch-grad-cam's closed form
        g2, g3 = g**2, g**3
        alpha = g2 / (2 * g2 + a.sum(axis=(1, 2), keepdims=True) * g3 + 1e-7)
        alpha = np.where(g != 0, alpha, 0)
        w = (np.maximum(g, 0) * alpha).sum(axis=(1, 2))
    return np.maximum(np.einsum("nhwc,nc->nhw", a, w), 0)


def _to_grid(tokens, grid, prefix):
    t = tokens[:, prefix:]
    return t.reshape(t.shape[0], *grid, t.shape[-1])


def _close(raw, ref):
    np.testing.assert_allclose(raw, ref, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(ref).max())))


# ---------------------------------------------------------------------------------------------
# Agreement with references.


@TF_ONLY
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_matches_gradient_tape_reference(kind, method):
    import tensorflow as tf

    model = _cnn(gap_dense=False) if kind == "cnn" else _vit()
    images = _images()
    target = find_target_layer(model)
    assert target.name == ("features" if kind == "cnn" else "block_1_norm1")
    grad_model = keras.Model(model.inputs, [model.get_layer(target.name).output, model.output])
    classes = np.array([0, 3, 1, 2])
    with tf.GradientTape() as tape:
        acts, logits = grad_model(tf.constant(images), training=False)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    grads = tape.gradient(score, acts)
    a, g = acts.numpy(), grads.numpy()
    if kind == "vit":
        a, g = _to_grid(a, (8, 8), 1), _to_grid(g, (8, 8), 1)
    result = explain(model, images, class_index=classes, method=method)
    _close(result.raw, _gradcam_np(a, g, method))
    assert result.heatmaps.shape == (4, 32, 32)


@JAX_ONLY
@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize("kind", ["cnn", "vit"])
def test_matches_jax_reference(kind, method):
    import jax

    # A model cut at the explained layer: activations from a sub-model, the rest as a chain of layers.
    if kind == "cnn":
        model, layer, tail = _cnn(gap_dense=False), "features", ["maxpool", "flatten", "fc", "head"]
    else:
        model, layer, tail = _vit(pool="gap"), "block_1", ["pool", "fc_norm", "head"]
    images = _images()
    # Compiled, so the reference does not dispatch (and compile) every op one by one.
    acts = jax.jit(keras.Model(model.inputs[0], model.get_layer(layer).output))(images)
    classes = np.array([1, 0, 2, 4])

    def score(a):
        for name in tail:
            a = model.get_layer(name)(a)
        return (a * jax.nn.one_hot(classes, a.shape[-1])).sum()

    a, g = np.asarray(acts), np.asarray(jax.jit(jax.grad(score))(acts))
    if kind == "vit":
        a, g = _to_grid(a, (8, 8), 1), _to_grid(g, (8, 8), 1)
    result = explain(model, images, class_index=classes, layer=layer, method=method)
    _close(result.raw, _gradcam_np(a, g, method))


def test_gradcam_equals_cam_for_gap_dense():
    model, images = _cnn(gap_dense=True), _images()
    gc = explain(model, images, method="gradcam")
    cam = explain(model, images, method="cam")
    np.testing.assert_array_equal(gc.class_index, cam.class_index)
    # d logit / d A = w_c / (h * w) everywhere: Grad-CAM is CAM divided by the number of cells.
    _close(gc.raw * 8 * 8, cam.raw)
    np.testing.assert_allclose(gc.heatmaps, cam.heatmaps, atol=1e-4)


def test_heatmaps_range_shape_and_predicted_class():
    model, images = _cnn(), _images(3)
    result = explain(model, images)
    assert result.heatmaps.shape == (3, 32, 32)
    assert result.heatmaps.min() >= 0 and result.heatmaps.max() <= 1
    np.testing.assert_array_equal(result.class_index, np.asarray(model(images)).argmax(-1))
    np.testing.assert_allclose(grad_cam(model, images[0]), result.heatmaps[:1], atol=1e-5)  # (H, W, C) works


def test_heatmaps_follow_weight_changes():
    # Under JAX the pass is compiled once per model and layer: the weights must be arguments of
    # the compiled function, not constants captured at its first call (HeatmapCallback relies on it).
    model, images = _cnn(), _images(2)
    before = explain(model, images, class_index=[0, 1])
    head = model.get_layer("head")
    head.kernel.assign(-2.0 * np.asarray(head.kernel))
    after = explain(model, images, class_index=[0, 1])
    np.testing.assert_allclose(after.logits, np.asarray(model(images)), rtol=1e-5, atol=1e-5)
    assert not np.allclose(after.logits, before.logits)
    assert not np.allclose(after.raw, before.raw)


def test_mixed_class_indices_match_single_images():
    model, images = _cnn(), _images(3)
    batch = explain(model, images, class_index=[4, 0, 2]).raw
    for i, c in enumerate([4, 0, 2]):
        np.testing.assert_allclose(batch[i], explain(model, images[i:i + 1], class_index=c).raw[0], rtol=1e-4, atol=1e-6)
    same = explain(model, images, class_index=1).class_index
    np.testing.assert_array_equal(same, [1, 1, 1])


# ---------------------------------------------------------------------------------------------
# Layer choice.


def test_auto_layer_vit_and_cnn():
    assert find_target_layer(_vit("cls")).name == "block_1_norm1"
    gap = find_target_layer(_vit("gap"))
    assert gap.name == "block_1" and gap.grid == (8, 8) and gap.num_prefix_tokens == 1
    vgg = kzoo.create_model("vgg11", num_classes=3, input_shape=(32, 32, 3), width_multiplier=0.125)
    assert find_target_layer(vgg).name == "stage5"  # the pre-pool ReLU, not the pools of the classic head


def test_vit_heatmaps_at_input_resolution():
    result = explain(_vit(), _images(2))
    assert result.raw.shape == (2, 8, 8) and result.heatmaps.shape == (2, 32, 32)


# ---------------------------------------------------------------------------------------------
# Nested backbones (the classic "Graph disconnected" case).


def _transfer_model(head="gap"):
    keras.utils.set_random_seed(3)
    backbone = kzoo.create_model("vgg11", num_classes=0, input_shape=(32, 32, 3), width_multiplier=0.125, head=head,
                                 dropout=0.0, fc_units=64)  # the classic head's 4096-wide layers: 30M parameters
    inputs = keras.Input((32, 32, 3))
    x = backbone(inputs)
    if head == "classic":
        x = keras.layers.Dense(16, activation="relu", name="new_fc")(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="new_head")(x), name="transfer")


def test_nested_backbone_auto_layer_and_cam_identity():
    model, images = _transfer_model("gap"), _images()
    target = find_target_layer(model)
    assert target.path == ("vgg11", "stage5")
    gc = explain(model, images, method="gradcam")
    cam = explain(model, images, method="cam")  # the GAP is inside the backbone, the Dense outside
    _close(gc.raw * 2 * 2, cam.raw)
    by_path = explain(model, images, layer="vgg11/stage4")
    by_name = explain(model, images, layer="stage4")
    np.testing.assert_allclose(by_path.raw, by_name.raw)
    assert by_path.raw.shape == (4, 4, 4)


def test_nested_full_classic_vgg_as_layer():
    model, images = _transfer_model("classic"), _images(2)
    heatmaps = grad_cam(model, images, class_index=[0, 3], method="gradcam++")
    assert heatmaps.shape == (2, 32, 32) and np.isfinite(heatmaps).all()


@TF_ONLY
def test_nested_matches_gradient_tape_on_flattened_model():
    import tensorflow as tf

    model, images = _transfer_model("gap"), _images()
    backbone = model.get_layer("vgg11")
    inner = keras.Model(backbone.inputs, [backbone.get_layer("stage5").output, backbone.output])
    classes = np.array([0, 1, 2, 3])
    with tf.GradientTape() as tape:
        acts, pooled = inner(tf.constant(images), training=False)
        logits = model.get_layer("new_head")(pooled)
        score = tf.reduce_sum(tf.gather(logits, classes, axis=1, batch_dims=1))
    ref = _gradcam_np(acts.numpy(), tape.gradient(score, acts).numpy(), "gradcam")
    _close(explain(model, images, class_index=classes).raw, ref)


def test_sequential_model():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="c"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])
    assert grad_cam(model, _images(2, 16)).shape == (2, 16, 16)


# ---------------------------------------------------------------------------------------------
# Bad input: one-line KzooError each.


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)
    return str(excinfo.value)


def test_unknown_layer_lists_valid_ones():
    with pytest.raises(KzooError) as e:
        grad_cam(_cnn(), _images(1), layer="conv9")
    msg = _one_line(e)
    assert "conv9" in msg and "features" in msg and "conv1" in msg


@pytest.mark.parametrize("layer", ["pool", "head"])
def test_layer_without_spatial_structure(layer):
    with pytest.raises(KzooError, match="no spatial structure") as e:
        grad_cam(_cnn(), _images(1), layer=layer)
    _one_line(e)


@pytest.mark.parametrize("bad", [5, -1, [0, 9], [0, 1, 2]])
def test_class_index_out_of_range_or_wrong_count(bad):
    with pytest.raises(KzooError) as e:
        grad_cam(_cnn(), _images(2), class_index=bad)
    _one_line(e)


def test_unknown_method_and_bad_images():
    with pytest.raises(KzooError) as e:
        grad_cam(_cnn(), _images(1), method="scorecam")
    _one_line(e)
    with pytest.raises(KzooError) as e:
        grad_cam(_cnn(), np.zeros((2, 32)))
    _one_line(e)


def test_cam_needs_gap_dense():
    with pytest.raises(KzooError, match="use 'gradcam'") as e:
        grad_cam(_cnn(gap_dense=False), _images(1), method="cam")
    _one_line(e)
