"""ContrastNormalization: per-image standardisation, and the contrast invariance it buys."""

import keras
import numpy as np
import pytest

import kzoo
from kzoo.layers import ContrastNormalization


def _images(n=3, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, 8, 8, 3)).astype("float32")


def _contrast(x, c):
    """The benchmark's contrast corruption without clipping: scale about each channel's mean."""
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * c + mean


def test_matches_numpy_reference():
    x = _images()
    y = keras.ops.convert_to_numpy(ContrastNormalization(epsilon=0.05)(x))
    centred = x - x.mean(axis=(1, 2), keepdims=True)
    expected = centred / np.sqrt((centred**2).mean(axis=(1, 2, 3), keepdims=True) + 0.05**2)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("c", [0.05, 0.5, 3.0])
def test_contrast_and_per_channel_shift_do_not_change_the_output(c):
    layer = ContrastNormalization(epsilon=1e-6)
    x = _images()
    shifted = _contrast(x, c) + np.array([0.3, -0.2, 0.1], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(shifted)), keras.ops.convert_to_numpy(layer(x)),
                               atol=2e-4)


def test_channel_ratios_survive():
    # One deviation for all channels: a channel with twice the spread keeps twice the spread.
    x = _images(1)
    x[..., 1] = 2.0 * x[..., 0]
    y = keras.ops.convert_to_numpy(ContrastNormalization(epsilon=1e-6)(x))
    np.testing.assert_allclose(y[..., 1], 2.0 * y[..., 0], atol=1e-5)


def test_flat_image_maps_to_zero():
    y = keras.ops.convert_to_numpy(ContrastNormalization()(np.full((1, 4, 4, 3), 0.7, "float32")))
    assert np.all(np.isfinite(y)) and np.abs(y).max() < 1e-4


def test_bad_epsilon_and_config_round_trip():
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        ContrastNormalization(epsilon=0.0)
    layer = ContrastNormalization.from_config(ContrastNormalization(epsilon=0.25).get_config())
    assert layer.epsilon == 0.25


def test_damped_cn_model_is_contrast_invariant_and_plain_model_is_not():
    pixels = np.random.default_rng(1).uniform(40.0, 215.0, (4, 32, 32, 3)).astype("float32")
    low = _contrast(pixels, 0.3)
    gaps = {}
    for name in ("airbench94_damped_cn", "airbench94_damped"):
        keras.utils.set_random_seed(0)
        model = kzoo.create_model(name)
        gaps[name] = np.abs(model.predict(pixels, verbose=0) - model.predict(low, verbose=0)).max()
    assert gaps["airbench94_damped_cn"] < 1e-3 < gaps["airbench94_damped"]
