"""ODConv2D: attention branch, batched per-sample convolution, fast paths, temperature, saving."""

import numpy as np
import pytest
import keras
from keras import ops

from kzoo.errors import KzooError
from kzoo.layers.odconv import (
    ODConv2D,
    ODConvTemperatureScheduler,
    odconv_temperature,
    set_odconv_temperature,
)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _randomise_bn(layer, rng):
    """Non-trivial BN statistics so inference-mode attention is not just the init values."""
    bn = layer.bn
    for var, value in (
        (bn.gamma, rng.uniform(0.5, 1.5, bn.gamma.shape)),
        (bn.beta, rng.normal(0, 0.2, bn.beta.shape)),
        (bn.moving_mean, rng.normal(0, 0.2, bn.moving_mean.shape)),
        (bn.moving_variance, rng.uniform(0.5, 1.5, bn.moving_variance.shape)),
    ):
        var.assign(value.astype("float32"))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _reference_attention(layer, x):
    """The attention branch of the reference implementation, in numpy (BN in inference mode)."""
    t = float(_np(layer.temperature))
    h = x.mean(axis=(1, 2)) @ _np(layer.fc.kernel)
    bn = layer.bn
    h = (h - _np(bn.moving_mean)) / np.sqrt(_np(bn.moving_variance) + 1e-5) * _np(bn.gamma) + _np(bn.beta)
    h = np.maximum(h, 0)

    def head(d):
        return h @ _np(d.kernel) + _np(d.bias)

    b = x.shape[0]
    channel = _sigmoid(head(layer.channel_fc) / t)
    filt = np.ones((b, layer.filters)) if layer.filter_fc is None else _sigmoid(head(layer.filter_fc) / t)
    kh, kw = layer.kernel_size
    spatial = np.ones((b, kh * kw)) if layer.spatial_fc is None else _sigmoid(head(layer.spatial_fc) / t)
    if layer.kernel_fc is None:
        kernel = np.ones((b, 1))
    else:
        z = head(layer.kernel_fc) / t
        z = np.exp(z - z.max(axis=1, keepdims=True))
        kernel = z / z.sum(axis=1, keepdims=True)
    return channel, filt, spatial, kernel


def _conv_numpy(x, w, layer):
    """Plain (grouped, strided, dilated) convolution of one image (H, W, C) in numpy."""
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    h, wd, _ = x.shape
    if isinstance(layer.padding, tuple):
        (pt, pb), (pl, pr) = (layer.padding[0],) * 2, (layer.padding[1],) * 2
    elif layer.padding == "valid":
        pt = pb = pl = pr = 0
    else:  # TensorFlow's "same"
        def split(size, k, s, d):
            total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
            return total // 2, total - total // 2
        (pt, pb), (pl, pr) = split(h, kh, sh, dh), split(wd, kw, sw, dw)
    x = np.pad(x, ((pt, pb), (pl, pr), (0, 0)))
    oh = (x.shape[0] - (kh - 1) * dh - 1) // sh + 1
    ow = (x.shape[1] - (kw - 1) * dw - 1) // sw + 1
    g, cg, o = layer.groups, w.shape[2], w.shape[3]
    og = o // g
    out = np.zeros((oh, ow, o))
    for i in range(kh):
        for j in range(kw):
            win = x[i * dh : i * dh + (oh - 1) * sh + 1 : sh, j * dw : j * dw + (ow - 1) * sw + 1 : sw]
            for gi in range(g):
                cols = slice(gi * og, (gi + 1) * og)
                out[..., cols] += win[..., gi * cg : (gi + 1) * cg] @ w[i, j, :, cols]
    return out


def _reference_output(layer, x):
    """Per-sample loop: aggregate the kernel as the reference does (all four attentions on the
    kernel) and run one ordinary (grouped) convolution per sample."""
    channel, filt, spatial, kernel_att = _reference_attention(layer, x)
    w = _np(layer.kernel)  # (K, kh, kw, C/g, O)
    kh, kw = layer.kernel_size
    g = layer.groups
    cg = w.shape[3]
    outs = []
    for b in range(x.shape[0]):
        agg = np.einsum("n,nijco->ijco", kernel_att[b], w) * spatial[b].reshape(kh, kw, 1, 1)
        # channel attention on the kernel's input axis: input channel c of group gi is gi*cg + c
        ca = channel[b].reshape(g, cg)  # (g, C/g)
        og = layer.filters // g
        ca_per_out = np.repeat(ca, og, axis=0).T  # (C/g, O): output o belongs to group o // og
        agg = agg * ca_per_out[None, None] * filt[b][None, None, None, :]
        outs.append(_conv_numpy(x[b], agg, layer))
    return np.stack(outs, axis=0)


CASES = [
    # (in_ch, filters, kernel, strides, padding, dilation, groups, kernel_num)
    (6, 8, 3, 1, "same", 1, 1, 4),
    (6, 8, 3, 2, "same", 1, 1, 4),
    (6, 8, 3, 2, 1, 1, 1, 1),
    (6, 8, 3, 1, "valid", 2, 1, 4),
    (6, 8, 3, 1, "same", 1, 1, 1),
    (8, 4, 3, 2, "same", 1, 2, 4),
    (8, 8, 3, 1, "same", 1, 2, 1),
    (6, 6, 3, 1, 1, 1, 6, 4),  # depth-wise: no filter attention
    (6, 8, 1, 1, "same", 1, 1, 4),
    (6, 8, 1, 2, "valid", 1, 1, 1),  # 1x1 fast path
    (8, 8, 1, 1, "same", 1, 4, 1),  # grouped 1x1
    (6, 8, (3, 5), (1, 2), "same", (2, 1), 1, 4),
    (6, 8, 3, 2, 2, 2, 2, 1),
]


@pytest.mark.parametrize("case", CASES, ids=[str(i) for i in range(len(CASES))])
def test_matches_per_sample_reference(case):
    cin, filters, k, s, pad, d, g, kn = case
    rng = np.random.default_rng(0)
    layer = ODConv2D(filters, k, strides=s, padding=pad, dilation_rate=d, groups=g, kernel_num=kn, min_hidden=4,
                     temperature=1.7)
    x = rng.normal(size=(3, 9, 10, cin)).astype("float32") + 0.3
    layer.build(x.shape)
    _randomise_bn(layer, rng)
    y = _np(layer(x, training=False))
    ref = _reference_output(layer, x)
    assert y.shape == ref.shape == tuple(layer.compute_output_shape(x.shape))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)



def test_identical_samples_equal_single_sample():
    rng = np.random.default_rng(1)
    layer = ODConv2D(8, 3, strides=2, kernel_num=4, min_hidden=4)
    one = rng.normal(size=(1, 8, 8, 5)).astype("float32")
    batch = np.repeat(one, 4, axis=0)
    y1 = _np(layer(one, training=False))
    yb = _np(layer(batch, training=False))
    for b in range(4):
        np.testing.assert_allclose(yb[b : b + 1], y1, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("s,pad,d,g", [(1, "same", 1, 1), (2, "same", 1, 1), (1, "valid", 2, 1), (2, 1, 1, 2)])
def test_attentions_fixed_to_one_equal_conv2d(s, pad, d, g):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 9, 9, 4)).astype("float32")
    layer = ODConv2D(6, 3, strides=s, padding=pad, dilation_rate=d, groups=g, kernel_num=1)
    layer.build(x.shape)
    for head in (layer.channel_fc, layer.filter_fc, layer.spatial_fc):
        head.kernel.assign(np.zeros(head.kernel.shape, "float32"))
        head.bias.assign(np.full(head.bias.shape, 40.0, "float32"))  # sigmoid(40) == 1 in float32
    conv = keras.layers.Conv2D(6, 3, strides=s, padding="valid" if isinstance(pad, int) else pad,
                               dilation_rate=d, groups=g, use_bias=False)
    xin = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))) if isinstance(pad, int) else x
    conv.build(xin.shape)
    conv.kernel.assign(_np(layer.kernel)[0])
    np.testing.assert_allclose(_np(layer(x, training=False)), _np(conv(xin)), rtol=1e-5, atol=1e-5)


def test_parameter_count_matches_reference_formula():
    # reference: fc (no bias) + BN(2) + channel/filter/spatial/kernel heads (with bias) + kernels
    layer = ODConv2D(64, 3, kernel_num=4)
    layer.build((None, 8, 8, 32))
    hidden = max(int(32 * 0.0625), 16)
    expected = 32 * hidden + 2 * hidden + (hidden * 32 + 32) + (hidden * 64 + 64) + (hidden * 9 + 9) + (hidden * 4 + 4)
    expected += 4 * 64 * 32 * 9
    assert sum(int(np.prod(v.shape)) for v in layer.trainable_weights) == expected
    assert layer.count_params() == expected + 1 + 2 * hidden  # + temperature + BN moving statistics
    assert [v.name for v in layer.non_trainable_weights if v.name == "temperature"] == ["temperature"]
    pw = ODConv2D(64, 1, kernel_num=1)
    pw.build((None, 8, 8, 320))
    assert pw.spatial_fc is None and pw.kernel_fc is None and pw.filter_fc is not None
    assert pw.hidden == 20  # int(320 * 0.0625)
    dw = ODConv2D(16, 3, groups=16)
    dw.build((None, 8, 8, 16))
    assert dw.filter_fc is None


def test_dynamic_spatial_dims_and_compiled_call():
    rng = np.random.default_rng(3)
    inputs = keras.Input((None, None, 4))
    layer = ODConv2D(6, 3, strides=2, padding=1, kernel_num=4, min_hidden=4)
    model = keras.Model(inputs, layer(inputs))
    assert model.output_shape == (None, None, None, 6)
    for h, w in ((9, 10), (12, 12)):
        x = rng.normal(size=(2, h, w, 4)).astype("float32")
        np.testing.assert_allclose(model.predict_on_batch(x), _reference_output(layer, x), rtol=1e-4, atol=1e-4)
    with pytest.raises(KzooError, match="static input height"):
        ODConv2D(6, 3, strides=2)._pads(None, None)  # what call() meets in a TF graph of unknown size


def test_mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    layer = ODConv2D(8, 3, kernel_num=4, min_hidden=4)
    x = np.random.default_rng(4).normal(size=(2, 6, 6, 4)).astype("float32")
    y = layer(x, training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16"
    assert layer.kernel.dtype == "float32" and layer.temperature.dtype == "float32"
    assert np.all(np.isfinite(_np(ops.cast(y, "float32"))))


def test_temperature_changes_attention():
    rng = np.random.default_rng(5)
    layer = ODConv2D(8, 3, kernel_num=4, min_hidden=4)
    x = rng.normal(size=(2, 6, 6, 4)).astype("float32")
    layer.build(x.shape)
    for head in (layer.channel_fc, layer.filter_fc, layer.spatial_fc, layer.kernel_fc):
        head.bias.assign(rng.normal(0, 2, head.bias.shape).astype("float32"))
    layer.set_temperature(1e6)  # every sigmoid -> 0.5, the softmax -> uniform
    channel, filt, spatial, kernel = (_np(a) for a in layer.attention(x, training=False))
    np.testing.assert_allclose(channel, 0.5, atol=1e-4)
    np.testing.assert_allclose(spatial, 0.5, atol=1e-4)
    np.testing.assert_allclose(kernel, 0.25, atol=1e-4)
    layer.set_temperature(1.0)
    assert np.abs(_np(layer.attention(x, training=False)[0]) - 0.5).max() > 0.01


def test_temperature_schedule_matches_reference():
    assert odconv_temperature(1, 0, 100, anneal_epochs=10, initial=30.0) == pytest.approx(1 + 29 * 999 / 1000)
    assert odconv_temperature(0, 5, 100, anneal_epochs=10, initial=30.0) == pytest.approx(15.5)
    assert odconv_temperature(50, 12, 100, anneal_epochs=10, initial=30.0) == 1.0


def test_temperature_scheduler_callback_in_fit():
    inputs = keras.Input((6, 6, 3))
    x = ODConv2D(4, 3, kernel_num=2, min_hidden=4, name="od1")(inputs)
    x = ODConv2D(4, 1, kernel_num=1, min_hidden=4, name="od2")(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="sgd", loss="mse")
    scheduler = ODConvTemperatureScheduler(initial=5.0, anneal_epochs=1)
    seen = []

    class Probe(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(scheduler.temperature)

    data = np.random.default_rng(6).normal(size=(6, 6, 6, 3)).astype("float32")
    model.fit(data, np.zeros((6, 2), "float32"), batch_size=2, epochs=2, verbose=0, callbacks=[scheduler, Probe()])
    np.testing.assert_allclose(seen, [1 + 4 * 2 / 3, 1 + 4 / 3, 1.0, 1.0, 1.0, 1.0], rtol=1e-6)
    # the trainer's state did not overwrite the annealed value (JAX keeps variables in its own state)
    for name in ("od1", "od2"):
        assert float(_np(model.get_layer(name).temperature)) == pytest.approx(1.0)
    assert set_odconv_temperature(model, 2.0) == 2


def test_save_load_round_trip(tmp_path):
    inputs = keras.Input((7, 7, 4))
    y = ODConv2D(6, 3, strides=2, padding=1, kernel_num=4, min_hidden=4, temperature=3.0)(inputs)
    y = ODConv2D(6, 1, groups=2, kernel_num=1, min_hidden=4)(y)
    model = keras.Model(inputs, y)
    x = np.random.default_rng(7).normal(size=(2, 7, 7, 4)).astype("float32")
    path = tmp_path / "od.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict_on_batch(x), model.predict_on_batch(x), rtol=1e-6, atol=1e-6)
    config = model.layers[1].get_config()
    clone = ODConv2D.from_config(config)
    assert clone.get_config() == config and config["padding"] == [1, 1] and config["temperature"] == 3.0


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(filters=0, kernel_size=3), "filters"),
        (dict(filters=8, kernel_size=3, groups=3), "divisible"),
        (dict(filters=8, kernel_size=3, padding="full"), "padding"),
        (dict(filters=8, kernel_size=(3, 3, 3)), "kernel_size"),
        (dict(filters=8, kernel_size=3, kernel_num=0), "kernel_num"),
    ],
)
def test_user_errors(kwargs, match):
    with pytest.raises(KzooError, match=match):
        ODConv2D(**kwargs)


def test_input_channels_not_divisible_by_groups():
    with pytest.raises(KzooError, match="groups"):
        ODConv2D(8, 3, groups=4).build((None, 8, 8, 6))
