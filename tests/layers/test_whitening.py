"""PatchWhitening and airbench's identity-initialised convolutions."""

import keras
import numpy as np
import pytest

import kzoo
from kzoo.errors import KzooError
from kzoo.layers import PatchWhitening, adapt_whitening
from kzoo.models.airbench import PartialDirac

pytestmark = pytest.mark.backend_agnostic


def _correlated_images(n=64, size=10, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated (like photos)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, size + 1, size + 1, 3))
    smooth = z[:, 1:, 1:] + 0.8 * z[:, :-1, 1:] + 0.6 * z[:, 1:, :-1]  # spatial correlation
    mix = np.array([[1.0, 0.7, 0.5], [0.0, 1.0, 0.6], [0.0, 0.0, 1.0]])  # channel correlation
    return (smooth @ mix * 2.0 + 1.0).astype("float32")


def _second_moment(outputs):
    # The reference whitens the patches' uncentred second moment (its inputs are normalised).
    flat = outputs.reshape(-1, outputs.shape[-1]).astype("float64")
    return flat.T @ flat / len(flat)


def _patch_moment(images):
    """The second moment of the images' 2x2 patches, ordered (row, column, channel) like the kernel."""
    windows = np.lib.stride_tricks.sliding_window_view(images, (2, 2), axis=(1, 2))
    return _second_moment(windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 12))


def test_adapted_filters_whiten_the_patches():
    images = _correlated_images()
    layer = PatchWhitening(2)
    layer.adapt(images)
    out = keras.ops.convert_to_numpy(layer(images))
    assert out.shape == (64, 9, 9, 24)
    half = out[..., :12]
    np.testing.assert_allclose(out[..., 12:], -half, atol=1e-5)  # each filter and its negation
    np.testing.assert_allclose(_second_moment(half), np.eye(12), atol=0.02)  # white: unit, uncorrelated
    before = _patch_moment(images)  # the raw patches are far from white
    assert np.abs(before - np.diag(np.diag(before))).max() > 1.0
    assert [w.path.split("/")[-1] for w in layer.trainable_weights] == ["bias"]  # the filters stay frozen


def test_eps_caps_the_gain_of_the_weak_directions():
    # Each eigen-direction comes out with power lambda / (lambda + eps): a large eps leaves the
    # strong (smooth) directions white and damps the weak, high-frequency ones instead of boosting them.
    images = _correlated_images()
    eigenvalues = np.linalg.eigvalsh(_patch_moment(images))
    layer = kzoo.create_model("airbench94", num_classes=3, widths=(8, 8), whiten_eps=5.0,
                              input_shape=(10, 10, 3)).get_layer("stem_whiten")
    assert layer.eps == 5.0
    layer.adapt(images)
    out = keras.ops.convert_to_numpy(layer(images))[..., :12] - keras.ops.convert_to_numpy(layer.bias)[:12]
    np.testing.assert_allclose(np.linalg.eigvalsh(_second_moment(out)), eigenvalues / (eigenvalues + 5.0),
                               rtol=1e-3, atol=1e-4)
    assert eigenvalues.min() / (eigenvalues.min() + 5.0) < 0.5  # the test has a weak direction to damp
    with pytest.raises(KzooError, match="eps must be a number >= 0, got -0.1"):
        kzoo.create_model("airbench94", whiten_eps=-0.1)


def test_unadapted_layer_passes_the_pixels_through_with_both_signs():
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(PatchWhitening(2)(x))
    # filter j of the first half picks patch element j, ordered (row, column, channel)
    np.testing.assert_allclose(out[..., 0], x[:, :4, :4, 0], atol=1e-6)
    np.testing.assert_allclose(out[..., 5], x[:, :4, 1:, 2], atol=1e-6)  # row 0, column 1, channel 2
    np.testing.assert_allclose(out[..., 12 + 11], -x[:, 1:, 1:, 2], atol=1e-6)


def test_strided_layer_whitens_non_overlapping_patches():
    images = _correlated_images(n=32, size=12)
    dense, strided = PatchWhitening(4), PatchWhitening(4, strides=4)
    dense.adapt(images)
    strided.adapt(images)
    out = keras.ops.convert_to_numpy(strided(images))
    assert out.shape == strided.compute_output_shape(images.shape) == (32, 3, 3, 96)
    # the same filters (fitted to every window) read at every 4th position
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(dense(images))[:, ::4, ::4], atol=1e-4)
    clone = PatchWhitening.from_config(strided.get_config())
    assert (clone.kernel_size, clone.strides) == (4, 4)


def test_adapt_whitening_uses_what_the_model_feeds_the_layer(tmp_path):
    model = kzoo.create_model("airbench94", num_classes=3, widths=(8, 8))
    pixels = np.clip(_correlated_images(n=32, size=32) * 12 + 110, 0, 255)
    assert adapt_whitening(model, pixels) == 1
    whitened = keras.Model(model.inputs, model.get_layer("stem_whiten").output).predict(pixels, verbose=0)
    bias = keras.ops.convert_to_numpy(model.get_layer("stem_whiten").bias)
    # white only if the layer was fitted to the normalised inputs (x / 255 - mean) / std, not raw pixels
    np.testing.assert_allclose(_second_moment(whitened[..., :12] - bias[:12]), np.eye(12), atol=0.02)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded.get_layer("stem_whiten").kernel),
                                  keras.ops.convert_to_numpy(model.get_layer("stem_whiten").kernel))


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(KzooError, match="kernel_size must be a positive int"):
        PatchWhitening(0)
    with pytest.raises(KzooError, match="strides must be a positive int, got 1.5"):
        PatchWhitening(2, strides=1.5)
    with pytest.raises(KzooError, match=r"expected images \(N, H, W, C\) of at least 2x2, got shape \(4, 4\)"):
        PatchWhitening(2).adapt(np.zeros((4, 4)))
    layer = PatchWhitening(2)
    layer.build((None, 8, 8, 3))
    with pytest.raises(KzooError, match="built for 3 channels, got images with 1"):
        layer.adapt(np.zeros((2, 8, 8, 1)))


@pytest.mark.parametrize("cin,cout", [(4, 8), (8, 4)])
def test_partial_dirac_starts_as_the_identity_on_the_first_filters(cin, cout):
    x = np.random.default_rng(2).normal(size=(2, 6, 6, cin)).astype("float32")
    conv = keras.layers.Conv2D(cout, 3, padding="same", use_bias=False, kernel_initializer=PartialDirac(seed=0))
    y = keras.ops.convert_to_numpy(conv(x))
    n = min(cin, cout)
    np.testing.assert_allclose(y[..., :n], x[..., :n], atol=1e-6)
    if cout > cin:  # the other filters keep PyTorch's default U(+-1/sqrt(fan_in))
        rest = keras.ops.convert_to_numpy(conv.kernel)[..., cin:]
        assert 0 < np.abs(rest).max() <= 1 / np.sqrt(9 * cin)


def test_airbench94_matches_the_reference_parameter_count():
    # airbench94.py's network counted with torch (requires_grad only: its whitening weights and
    # BatchNorm scales are frozen): 24 + 13,824 + 64 + 36,864 + 64 + 147,456 + 256 + 589,824 + 256
    # + 589,824 + 256 + 589,824 + 256 + 2,560.
    model = kzoo.create_model("airbench94")
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 1_971_352
    assert model.get_layer("stage3").output.shape == (None, 3, 3, 256)
