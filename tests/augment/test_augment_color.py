"""Colour ops against PIL (the reference RandAugment implementations use) and numpy."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

import kzoo.augment as A
from kzoo_augment_helpers import np_, random_images, t


def _pil(x, fn):
    """Apply a PIL function to each image of a float batch of 8-bit values."""
    return np.stack([np.asarray(fn(Image.fromarray(img.astype(np.uint8)))) for img in x]).astype("float32")


def test_solarize_threshold_per_image():
    x = np.array([[[[10.0, 200.0, 128.0]]], [[[10.0, 200.0, 128.0]]]], dtype="float32")
    out = np_(A.solarize(t(x), t([128.0, 256.0])))
    np.testing.assert_array_equal(out[0, 0, 0], [10.0, 55.0, 127.0])
    np.testing.assert_array_equal(out[1, 0, 0], [10.0, 200.0, 128.0])  # threshold 256: identity
    ref = _pil(random_images(2, 8), lambda im: ImageOps.solarize(im, 100))
    np.testing.assert_array_equal(np_(A.solarize(t(random_images(2, 8)), t([100.0, 100.0]))), ref)


@pytest.mark.parametrize("bits", [1, 2, 4, 7, 8])
def test_posterize_bits_match_pil(bits):
    x = random_images(2, 8)
    out = np_(A.posterize(t(x), t([bits, bits])))
    np.testing.assert_array_equal(out, _pil(x, lambda im: ImageOps.posterize(im, bits)))
    assert np_(A.posterize(t([[[[200.0, 255.0, 17.0]]]]), t([2])))[0, 0, 0].tolist() == [192.0, 192.0, 0.0]


def test_equalize_on_a_known_histogram():
    # One channel: 256 pixels of 50, 256 of 100, 512 of 200. PIL: step = (1024 - 512) // 255 = 2,
    # lut[v] = (step // 2 + pixels below v) // step -> 50: 0, 100: 128, 200: 256 -> 255.
    channel = np.array([50.0] * 256 + [100.0] * 256 + [200.0] * 512, dtype="float32").reshape(32, 32)
    x = np.stack([channel, channel.T, np.full((32, 32), 9.0, "float32")], axis=-1)[None]
    out = np_(A.equalize(t(x)))
    assert dict(zip(*np.unique(out[0, ..., 0], return_counts=True))) == {0.0: 256, 128.0: 256, 255.0: 512}
    np.testing.assert_array_equal(out[0, ..., 2], 9.0)  # a single level is left alone
    np.testing.assert_array_equal(out, _pil(x, ImageOps.equalize))


def test_equalize_matches_pil_on_random_and_skewed_images():
    rng = np.random.RandomState(1)
    skewed = np.clip(rng.normal(60, 15, (2, 16, 16, 3)), 0, 255).round().astype("float32")
    for x in (random_images(2, 16), skewed):
        np.testing.assert_array_equal(np_(A.equalize(t(x))), _pil(x, ImageOps.equalize))


def test_autocontrast_and_invert():
    x = np.clip(random_images(2, 8) * 0.5 + 40, 0, 255).round()
    out = np_(A.autocontrast(t(x)))
    assert out.min(axis=(1, 2)).tolist() == [[0.0] * 3] * 2 and out.max(axis=(1, 2)).tolist() == [[255.0] * 3] * 2
    np.testing.assert_allclose(out, _pil(x, ImageOps.autocontrast), atol=1.0)  # PIL truncates, we round
    flat = np.full((1, 4, 4, 3), 77.0, "float32")
    np.testing.assert_array_equal(np_(A.autocontrast(t(flat))), flat)
    np.testing.assert_array_equal(np_(A.invert(t(x))), 255.0 - x)


def test_solarize_add_adds_below_threshold_only():
    x = np.array([[[[0.0, 100.0, 200.0]]]], dtype="float32")
    np.testing.assert_array_equal(np_(A.solarize_add(t(x), t([60.0])))[0, 0, 0], [60.0, 160.0, 200.0])


@pytest.mark.parametrize(
    "fn,enhancer",
    [
        (A.adjust_brightness, ImageEnhance.Brightness),
        (A.adjust_contrast, ImageEnhance.Contrast),
        (A.adjust_saturation, ImageEnhance.Color),
        (A.adjust_sharpness, ImageEnhance.Sharpness),
    ],
)
@pytest.mark.parametrize("factor", [0.1, 1.0, 1.9])
def test_blends_match_pil_enhance(fn, enhancer, factor):
    x = random_images(2, 12, seed=3)
    out = np_(fn(t(x), t([factor, factor])))
    # PIL works in 8 bits (rounds the grey image, truncates the result): within 2 levels.
    np.testing.assert_allclose(out, _pil(x, lambda im: enhancer(im).enhance(factor)), atol=2.0)
    if factor == 1.0:
        np.testing.assert_allclose(out, x, atol=1e-3)


def test_blend_factors_are_per_image():
    x = random_images(2, 8)
    out = np_(A.adjust_brightness(t(x), t([0.0, 1.0])))
    np.testing.assert_array_equal(out[0], 0.0)
    np.testing.assert_allclose(out[1], x[1], atol=1e-4)


def test_hue_shift_zero_is_identity_and_grey_is_fixed():
    x = random_images(2, 8)
    np.testing.assert_allclose(np_(A.adjust_hue(t(x), t([0.0, 0.0]))), x, atol=0.05)
    grey = np.repeat(random_images(1, 8, channels=1), 3, axis=-1)
    np.testing.assert_allclose(np_(A.adjust_hue(t(grey), t([0.3]))), grey, atol=0.05)


def test_color_jitter_identity_at_zero_and_per_image():
    x = np.repeat(random_images(1, 8), 6, axis=0)
    np.testing.assert_allclose(np_(A.ColorJitter()(t(x), seed=0)), x, atol=1e-4)
    out = np_(A.ColorJitter(0.4, 0.4, 0.4, 0.1)(t(x), seed=0))
    assert len({o.tobytes() for o in out}) == 6
    assert out.min() >= 0.0 and out.max() <= 255.0
