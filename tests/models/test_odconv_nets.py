"""ODConv networks: exact parameter counts, features, save/load, one fit step (f32 and bf16)."""

import numpy as np
import pytest
import keras

import kzoo
from kzoo.errors import KzooError
from kzoo.layers.odconv import ODConv2D
from kzoo.registry import get_entry

MODELS = ["odresnet18", "odresnet18_1x", "odresnet18_4x", "odresnet50", "odresnet50_1x", "odresnet50_4x",
          "odconv_gtsrb", "conv_gtsrb"]
# The _1x names are the bare names' configuration (checked below), so the heavy checks skip them. The
# fit-step tests cost ~10 s per ResNet on each backend: each block type (basic, bottleneck) meets
# each kernel count (1, 4) once across the two of them, rather than all four in both.
ROUND_TRIP = ["odresnet18", "odresnet50_4x", "odconv_gtsrb", "conv_gtsrb"]
MIXED = ["odresnet18_4x", "odresnet50", "odconv_gtsrb", "conv_gtsrb"]


def _trainable(model):
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


@pytest.mark.parametrize(
    "name,expected",
    [("odresnet18_1x", 11_943_944), ("odresnet18_4x", 44_901_640), ("odresnet50_1x", 28_635_112),
     ("odresnet50_4x", 90_670_888)],
)
def test_parameter_counts_equal_official_implementation(name, expected):
    # counted with torch on the official OSVAI/ODConv models, 1000 classes, reduction 0.0625
    model = kzoo.create_model(name, num_classes=1000, input_shape=(32, 32, 3))
    assert _trainable(model) == expected


def test_registered_names_and_defaults():
    assert set(MODELS) <= set(kzoo.list_models())
    for depth in (18, 50):
        assert get_entry(f"odresnet{depth}").config == get_entry(f"odresnet{depth}_1x").config == {"kernel_num": 1}
        assert get_entry(f"odresnet{depth}_4x").config == {"kernel_num": 4}
    assert get_entry("odconv_gtsrb").input_shape == (32, 32, 3)


def test_gtsrb_nets_are_small_twins():
    od = kzoo.create_model("odconv_gtsrb")  # the registry's default head: GTSRB's 43 classes
    plain = kzoo.create_model("conv_gtsrb")
    assert od.output_shape == plain.output_shape == (None, 43)
    assert od.count_params() < 1_000_000 and plain.count_params() < 1_000_000
    od_convs = [l for l in od.layers if isinstance(l, ODConv2D)]
    plain_convs = [l for l in plain.layers if isinstance(l, keras.layers.Conv2D)]
    assert [l.filters for l in od_convs] == [l.filters for l in plain_convs]
    assert [l.name for l in od_convs] == [l.name for l in plain_convs]


def test_odresnet_structure_follows_official():
    model = kzoo.create_model("odresnet50", num_classes=10, input_shape=(32, 32, 3))
    od = [l for l in model.layers if isinstance(l, ODConv2D)]
    assert len(od) == 16 * 3  # every bottleneck convolution
    assert {l.kernel_size for l in od} == {(1, 1), (3, 3)}
    plain = [l.name for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert plain == ["stem_conv"] + [f"stage{s}_block0_downsample_conv" for s in (1, 2, 3, 4)]
    assert model.get_layer("head").dtype_policy.name == "float32"


def test_features_only_and_headless():
    feats = kzoo.create_model("odresnet18", input_shape=(64, 64, 3), features_only=True, out_indices=(1, -1))
    assert feats.output_shape == [(None, 8, 8, 128), (None, 2, 2, 512)]
    gts = kzoo.create_model("odconv_gtsrb", features_only=True)
    assert [s[1:] for s in gts.output_shape] == [(16, 16, 32), (16, 16, 64), (8, 8, 128), (4, 4, 256)]
    headless = kzoo.create_model("conv_gtsrb", num_classes=0)
    assert headless.output_shape == (None, 256)
    with pytest.raises(KzooError, match="out_indices"):
        kzoo.create_model("odconv_gtsrb", features_only=True, out_indices=(7,))
    with pytest.raises(KzooError, match="kernel_num"):
        kzoo.create_model("odconv_gtsrb", kernel_num=0)
    with pytest.raises(KzooError, match="at least"):
        kzoo.create_model("odresnet18", input_shape=(16, 16, 3))


def _data(n=2, size=32, classes=5):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
    y = np.eye(classes, dtype="float32")[rng.integers(0, classes, n)]
    return x, y


# Full-size OD-ResNets are only built (parameter counts above); training and saving run on
# narrow, one-block-per-stage versions of the same registered networks (same stem, block type,
# ODConv settings, shortcuts and head), which keeps graph tracing / XLA compilation short.
SMALL = {"widths": (8, 8, 16, 16), "layers": (1, 1, 1, 1)}


def _create(name, **kwargs):
    overrides = SMALL if name.startswith("odresnet") else {}
    return kzoo.create_model(name, num_classes=5, input_shape=(32, 32, 3), **overrides, **kwargs)


def _predict(model, x):
    if keras.backend.backend() == "tensorflow":  # eager: no graph to trace
        return keras.ops.convert_to_numpy(model(x, training=False))
    return model.predict_on_batch(x)  # one jit; op-by-op eager JAX compiles every op


def _compile(model):
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss=kzoo.losses.get_loss("crossentropy"))


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_fit_step_then_save_load_round_trip(name, tmp_path):
    x, y = _data()
    model = _create(name)
    _compile(model)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    expected = _predict(model, x)
    got = _predict(loaded, x)
    assert expected.dtype == np.float32 and expected.shape == (2, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", MIXED)
def test_fit_step_mixed_bfloat16_float32_logits(name):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    x, y = _data()
    model = _create(name)
    assert model.output.dtype == "float32"
    _compile(model)
    history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.get_layer("head").compute_dtype == "float32"
    assert model.get_layer("stem_bn").compute_dtype == "bfloat16"
