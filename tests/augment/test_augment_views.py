"""SimCLR's two-view augmentation: layout, grayscale and blur against numpy, the preset."""

import keras
import numpy as np
import pytest
from kzoo_augment_helpers import np_, one_hot, random_images, t

import kzoo.augment as A

LUMA = np.array([0.299, 0.587, 0.114], dtype="float64")  # ITU-R 601-2, written out on purpose


def _np_blur(images, sigma, ksize):
    """Reference: separable Gaussian (sigma in pixels, `ksize` taps, normalised) with numpy's
    "reflect" padding (d c b | a b c d), columns then rows, in float64."""
    r = ksize // 2
    taps = np.exp(-(np.arange(-r, r + 1, dtype="float64") ** 2) / (2.0 * sigma**2))
    taps /= taps.sum()
    x = images.astype("float64")
    for axis in (2, 1):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(x, pad, mode="reflect")
        size = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(j, j + size), axis=axis) for j, w in enumerate(taps))
    return x


def _views(aug, images, labels, seed):
    out = aug({"images": t(images), "labels": t(labels)}, seed=seed)
    return np_(out["images"]), np_(out["labels"])


# ----------------------------------------------------------------------------- TwoViews
def test_two_views_layout_and_independent_halves():
    images, labels = random_images(5, 8), one_hot(np.arange(5), 5)
    x, y = _views(A.TwoViews(), images, labels, seed=0)
    np.testing.assert_array_equal(x[:5], images)
    np.testing.assert_array_equal(x[5:], images)
    np.testing.assert_array_equal(y, np.concatenate([labels, labels]))
    np.testing.assert_array_equal(np_(A.TwoViews()(t(images))), np.concatenate([images, images]))

    # After a per-image flip, row b and row B + b are each image b, mirrored or not, drawn apart.
    images = random_images(32, 8, seed=1)
    x, _ = _views(A.Compose([A.TwoViews(), A.RandomFlip("horizontal")]), images, one_hot(np.arange(32) % 4, 4), 3)
    mirrored = np.zeros((2, 32), bool)
    for half in range(2):
        for b in range(32):
            view = x[32 * half + b]
            mirrored[half, b] = np.array_equal(view, images[b, :, ::-1])
            assert mirrored[half, b] or np.array_equal(view, images[b])
    assert 0 < (mirrored[0] != mirrored[1]).sum() < 32  # the halves' flips are independent


# ----------------------------------------------------------------------------- RandomGrayscale
def test_grayscale_p1_matches_numpy_luma_and_p0_is_identity():
    images = random_images(4, 8, seed=2)
    gray = np.repeat((images.astype("float64") @ LUMA)[..., None], 3, axis=-1)
    np.testing.assert_allclose(np_(A.RandomGrayscale(p=1.0)(t(images), seed=0)), gray, atol=1e-3)
    np.testing.assert_array_equal(np_(A.RandomGrayscale(p=0.0)(t(images), seed=0)), images)


def test_grayscale_fraction_is_p_and_others_untouched():
    images = random_images(2000, 2, seed=3)
    out = np_(A.RandomGrayscale(p=0.2)(t(images), seed=5))
    is_gray = np.all(out == out[..., :1], axis=(1, 2, 3))
    assert abs(is_gray.mean() - 0.2) < 0.04
    np.testing.assert_array_equal(out[~is_gray], images[~is_gray])
    gray = np.repeat((images[is_gray].astype("float64") @ LUMA)[..., None], 3, axis=-1)
    np.testing.assert_allclose(out[is_gray], gray, atol=1e-3)


# ----------------------------------------------------------------------------- RandomGaussianBlur
@pytest.mark.parametrize("height,ksize", [(16, 3), (32, 3), (40, 5), (64, 7), (224, 23)])
def test_blur_kernel_size_is_simclrs(height, ksize):
    assert A.blur_kernel_size(height) == ksize


@pytest.mark.parametrize("size,ksize,sigma", [(16, 3, 0.8), (64, 7, 1.5), (64, 7, 0.5)])
def test_blur_matches_numpy_separable_gaussian_with_reflect_padding(size, ksize, sigma):
    images = random_images(3, size, seed=4)
    out = np_(A.RandomGaussianBlur(p=1.0, sigma=(sigma, sigma))(t(images), seed=0))
    np.testing.assert_allclose(out, _np_blur(images, sigma, ksize), atol=1e-3)
    # A wrong sigma, kernel size or padding would be far off: the reference is discriminating.
    assert np.abs(_np_blur(images, sigma * 1.2, ksize) - out).max() > 0.1
    assert np.abs(_np_blur(images, sigma, ksize + 2) - out).max() > 0.01 or sigma < 1.0


def test_blur_keeps_constant_images_and_p0_is_identity():
    flat = np.full((2, 32, 32, 3), 77.0, "float32")
    np.testing.assert_allclose(np_(A.RandomGaussianBlur(p=1.0)(t(flat), seed=0)), flat, atol=1e-3)
    images = random_images(4, 32, seed=5)
    np.testing.assert_array_equal(np_(A.RandomGaussianBlur(p=0.0)(t(images), seed=0)), images)


def test_blur_sigma_is_drawn_per_image_in_range():
    images = np.repeat(random_images(1, 32, seed=6), 16, axis=0)
    out = np_(A.RandomGaussianBlur(p=1.0, sigma=(0.5, 2.0))(t(images), seed=1))
    assert len({o.tobytes() for o in out}) == 16
    # More blur, less variance: each image's lies between sigma 2.0's and sigma 0.5's.
    low, high = _np_blur(images[:1], 2.0, 3).var(), _np_blur(images[:1], 0.5, 3).var()
    assert all(low - 1e-2 <= o.var() <= high + 1e-2 for o in out)
    picked = np_(A.RandomGaussianBlur(p=0.5)(t(images), seed=2))
    unchanged = np.all(picked == images, axis=(1, 2, 3))
    assert 0 < unchanged.sum() < 16


# ----------------------------------------------------------------------------- simclr preset
def test_simclr_views_differ_and_are_plausible():
    aug = A.get_preset("simclr", num_classes=10, image_size=(32, 32), seed=0)
    images, labels = random_images(8, 32, seed=7), one_hot(np.arange(8), 10)
    x, y = _views(aug, images, labels, seed=1)
    assert x.shape == (16, 32, 32, 3) and y.shape == (16, 10)
    assert x.min() >= 0.0 and x.max() <= 255.0 and np.isfinite(x).all()
    np.testing.assert_array_equal(y, np.concatenate([labels, labels]))
    for b in range(8):
        assert not np.array_equal(x[b], x[8 + b])
        assert not np.array_equal(x[b], images[b]) and not np.array_equal(x[8 + b], images[b])


def test_simclr_is_seeded():
    aug = A.simclr_views((64, 64))
    images, labels = random_images(4, 64, seed=8), one_hot(np.arange(4), 4)
    first, _ = _views(aug, images, labels, seed=3)
    np.testing.assert_array_equal(_views(aug, images, labels, seed=3)[0], first)
    np.testing.assert_array_equal(_views(A.simclr_views((64, 64)), images, labels, seed=3)[0], first)
    assert not np.allclose(_views(aug, images, labels, seed=4)[0], first)


def names(aug):
    return [type(layer).__name__ for layer in aug.layers]


def test_simclr_preset_recipe_and_blur_by_size():
    big = A.get_preset("simclr", num_classes=10, image_size=(64, 64))
    assert names(big) == ["TwoViews", "RandomResizedCrop", "RandomFlip", "ColorJitter", "RandomGrayscale",
                          "RandomGaussianBlur"]
    assert names(A.get_preset("simclr", num_classes=10, image_size=(32, 32)))[-1] == "RandomGrayscale"
    assert names(A.simclr_views((32, 32), blur=True))[-1] == "RandomGaussianBlur"
    assert names(A.simclr_views((96, 96), blur=False))[-1] == "RandomGrayscale"
    crop, flip, jitter, gray, blur = big.layers[1:]
    assert crop.scale == (0.08, 1.0) and flip.mode == "horizontal" and flip.p == 0.5
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue, jitter.p) == (0.4, 0.4, 0.4, 0.1, 0.8)
    assert gray.p == 0.2 and blur.p == 0.5 and blur.sigma == (0.1, 2.0) and blur.kernel_fraction == 0.1
    assert "simclr" in A.PRESETS
    x, y = _views(big, random_images(2, 64), one_hot([0, 1], 10), seed=0)
    assert x.shape == (4, 64, 64, 3) and y.shape == (4, 10)


def test_simclr_round_trips_through_config():
    aug = A.simclr_views((64, 64), seed=0)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(aug))
    assert [layer.get_config() for layer in clone.layers] == [layer.get_config() for layer in aug.layers]
    images, labels = random_images(2, 64, seed=9), one_hot([0, 1], 2)
    np.testing.assert_array_equal(_views(clone, images, labels, 6)[0], _views(aug, images, labels, 6)[0])


def test_simclr_in_a_tf_data_pipeline():
    tf = pytest.importorskip("tensorflow")
    images, labels = random_images(12, 16, seed=10), one_hot(np.arange(12) % 3, 3)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    aug = A.get_preset("simclr", num_classes=3, image_size=(16, 16))
    batches = [(x.numpy(), y.numpy()) for x, y in A.map_dataset(ds, aug, seed=2, num_parallel_calls=2)]
    assert [x.shape for x, _ in batches] == [(8, 16, 16, 3)] * 3
    for i, (x, y) in enumerate(batches):
        np.testing.assert_array_equal(y, np.concatenate([labels[4 * i:4 * i + 4]] * 2))
        assert x.min() >= 0.0 and x.max() <= 255.0 and not np.array_equal(x[:4], x[4:])
    again = [x.numpy() for x, _ in A.map_dataset(ds, aug, seed=2)]
    for (x, _), x2 in zip(batches, again):
        np.testing.assert_array_equal(x, x2)
