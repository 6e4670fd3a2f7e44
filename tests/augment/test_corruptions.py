"""Common corruptions (Hendrycks & Dietterich 2019) against numpy / scipy / PIL references.

Exact (float tolerance) for the deterministic corruptions, and for fog, elastic and motion blur
given the same random draws; within a bound for JPEG (vs Pillow) and pixelate (vs PIL's 8-bit
resize); statistical for the noises. Runs under TensorFlow and JAX (tests/augment runs both).
"""

import itertools

import corruption_reference as ref
import numpy as np
import pytest
import tensorflow as tf
from kzoo_augment_helpers import np_, random_images, t

from kzoo.augment import _rng
from kzoo.augment import corruptions as C
from kzoo.augment import corruptions_blur as blur
from kzoo.augment import corruptions_weather as weather
from kzoo.augment._backend import KERAS_OPS as F
from kzoo.errors import KzooError

ALL = C.CORRUPTIONS + C.HELD_OUT
DETERMINISTIC = ("defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
                 "gaussian_blur", "saturate")


def run(x, name, severity, seed=0):
    """The corruption without `corrupt`'s per-shape jax.jit: one-off calls compile faster op by op."""
    return np_(C._corrupt(F, t(x), name, severity, _rng.make_key(F, seed)))


def natural_images(batch=6, size=32, seed=0):
    """Smooth shading, a few sharp-edged rectangles and mild texture: blurs, noises and weather
    change such images by amounts ordered like their severities (uniform noise images would not)."""
    rng = np.random.RandomState(seed)
    from scipy import ndimage

    coarse = rng.uniform(30, 220, (batch, 4, 4, 3))
    x = np.stack([ndimage.zoom(c, (size / 4, size / 4, 1), order=1) for c in coarse])
    for b in range(batch):
        for _ in range(3):
            y0, x0 = rng.randint(0, size - 8, 2)
            h, w = rng.randint(4, size // 2, 2)
            x[b, y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3)
    x += rng.normal(0, 6, x.shape)
    return np.clip(x, 0, 255).astype("float32")


# ----------------------------------------------------------------------------- exact references
@pytest.mark.parametrize("severity", [1, 3, 5])
def test_gaussian_blur_matches_skimage_definition(severity):
    x = random_images(2, 32, seed=severity)
    out = run(x, "gaussian_blur", severity)
    sigma = C.PARAMS["gaussian_blur"][0][severity - 1]
    np.testing.assert_allclose(out, np.stack([ref.gaussian_blur(im, sigma) for im in x]), atol=0.02)


def test_gaussian_blur_scales_sigma_with_size():
    x = natural_images(1, 64)
    out = run(x, "gaussian_blur", 5)  # 64 px: CIFAR's sigma 1.0, doubled
    np.testing.assert_allclose(out[0], ref.gaussian_blur(x[0], 2.0), atol=0.02)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_defocus_blur_matches_disk_filter(severity):
    x = random_images(2, 32, seed=severity)
    radius, alias = C.PARAMS["defocus_blur"][0][severity - 1]
    np.testing.assert_allclose(run(x, "defocus_blur", severity),
                               np.stack([ref.defocus_blur(im, radius, alias) for im in x]), atol=0.02)


def test_imagenet_size_uses_imagenet_parameters():
    # 224 px, severity 5: disk radius 10 (the 5x5 anti-aliasing branch), pixelate to 56 px.
    x = np.round(natural_images(1, 224))
    np.testing.assert_allclose(run(x, "defocus_blur", 5)[0], ref.defocus_blur(x[0], 10, 0.5), atol=0.02)
    np.testing.assert_allclose(run(x, "pixelate", 5)[0], ref.pixelate(x[0], 0.25), atol=1.01)
    assert C.parameters("gaussian_noise", 5, 224, 224) == (0.38, 1.0)
    assert C.parameters("gaussian_noise", 5, 64, 64) == (0.10, 2.0)


# (Angles where i * sin(angle) - 0.5 is an integer, e.g. 30 degrees, round either way in float32.)
@pytest.mark.parametrize("angle", [-45.0, -12.5, 0.0, 31.0, 45.0])
def test_motion_blur_given_the_angle_matches_imagecorruptions(angle):
    x = random_images(2, 32, seed=1) / 255.0
    out = np_(blur.motion_blur(F, t(x), t([angle, -angle]), 9, 2.5)) * 255.0
    expected = [ref.motion_blur(x[0] * 255.0, 9, 2.5, angle), ref.motion_blur(x[1] * 255.0, 9, 2.5, -angle)]
    np.testing.assert_allclose(out, np.stack(expected), atol=0.02)


def test_motion_blur_drops_taps_beyond_the_image_like_the_reference():
    x = random_images(1, 8, seed=2) / 255.0
    out = np_(blur.motion_blur(F, t(x), t([20.0]), 6, 4.0)) * 255.0  # 13 taps > 8 px
    np.testing.assert_allclose(out[0], ref.motion_blur(x[0] * 255.0, 6, 4.0, 20.0), atol=0.02)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_zoom_blur_matches_scipy_clipped_zoom(severity):
    x = random_images(2, 32, seed=severity)
    factors = np.arange(*C.PARAMS["zoom_blur"][0][severity - 1])
    np.testing.assert_allclose(run(x, "zoom_blur", severity),
                               np.stack([ref.zoom_blur(im, factors) for im in x]), atol=0.02)


def test_zoom_blur_non_square():
    x = random_images(1, 32, seed=4)[:, :24]
    factors = np.arange(*C.PARAMS["zoom_blur"][0][4])
    np.testing.assert_allclose(run(x, "zoom_blur", 5)[0], ref.zoom_blur(x[0], factors), atol=0.02)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_pixelate_matches_pil_box_resize(severity):
    x = random_images(2, 32, seed=severity)
    ratio = C.PARAMS["pixelate"][0][severity - 1]
    # PIL rounds to 8 bits after each of its four passes; we keep floats.
    np.testing.assert_allclose(run(x, "pixelate", severity), np.stack([ref.pixelate(im, ratio) for im in x]), atol=2.01)


@pytest.mark.parametrize("name,fn", [("brightness", ref.brightness), ("saturate", ref.saturate),
                                     ("contrast", ref.contrast)])
@pytest.mark.parametrize("severity", [1, 4, 5])
def test_colour_corruptions_match_hsv_definitions(name, fn, severity):
    x = random_images(2, 32, seed=severity)
    x[0, 0, :3] = [[0, 0, 0], [90, 90, 90], [255, 255, 255]]  # grey pixels: hue 0, saturation 0
    x[0, 1, :2] = [[200, 200, 10], [10, 200, 200]]  # ties for the maximal channel
    c = C.PARAMS[name][0][severity - 1]
    np.testing.assert_allclose(run(x, name, severity), np.stack([fn(im, c) for im in x]), atol=0.02)


def test_plasma_fractal_matches_diamond_square():
    uniforms = weather.plasma_uniforms(F, _rng.make_key(F, 3), 2, 32)
    plasma = np_(weather.plasma_from_uniforms(F, uniforms, 2.5))
    for b in range(2):
        expected = ref.plasma_fractal([np_(u)[:, b] for u in uniforms], 32, 2.5)
        np.testing.assert_allclose(plasma[b], expected, atol=1e-4)
    assert plasma.min() == 0.0 and plasma.max() == 1.0


def test_fog_given_the_plasma_matches_reference():
    x = natural_images(2, 32)
    plasma = np_(weather.plasma_fractal(F, _rng.make_key(F, 1), 2, 32, 32, 2.0))
    out = np.clip(np_(weather.fog_with(F, t(x / 255.0), t(plasma), 1.5)), 0, 1) * 255.0
    expected = np.stack([ref.fog(x[b], plasma[b, ..., 0], 1.5) for b in range(2)])
    np.testing.assert_allclose(out, expected, atol=0.02)


def test_elastic_given_the_fields_matches_warp_and_map_coordinates():
    x = random_images(2, 32, seed=5)
    inverse, dx, dy = blur.elastic_fields(F, _rng.make_key(F, 2), 2, 32, 32, 3.2, 0.96, 2.0)
    out = np.clip(np_(blur.elastic_apply(F, t(x / 255.0), inverse, dx, dy)), 0, 1) * 255.0
    inverse, dx, dy = np_(inverse), np_(dx), np_(dy)
    expected = np.stack([ref.elastic_apply(x[b], inverse[b], dx[b], dy[b]) for b in range(2)])
    np.testing.assert_allclose(out, expected, atol=0.05)
    # The random affine map stays within the jitter of the three points (|delta| <= 2 px).
    assert np.abs(inverse[:, [0, 4]] - 1).max() < 0.5 and np.abs(inverse[:, [1, 3]]).max() < 0.5


def test_elastic_field_smoothing_matches_scipy_reflect():
    noise = np.random.RandomState(0).uniform(-1, 1, (1, 32, 32, 1)).astype("float32")
    for sigma in (0.96, 6.4, 40.0):  # 40: kernel wider than the image, several reflections
        out = np_(blur.gaussian_blur(F, t(noise), sigma, truncate=3.0, mode="reflect"))[0, ..., 0]
        np.testing.assert_allclose(out, ndimage_gaussian(noise[0, ..., 0], sigma), atol=1e-5)


def ndimage_gaussian(x, sigma):
    from scipy import ndimage

    return ndimage.gaussian_filter(x.astype(np.float64), sigma, mode="reflect", truncate=3.0)


@pytest.mark.parametrize("size", [32, 40])
def test_jpeg_is_close_to_pillow(size):
    x = np.round(natural_images(2, size, seed=size))
    for severity in (1, 5):
        quality = C.PARAMS["jpeg_compression"][0][severity - 1]
        out = run(x, "jpeg_compression", severity)
        pil = np.stack([ref.jpeg(im, quality) for im in np.round(x)])
        ours_vs_pil = np.abs(out - pil).mean()
        loss = np.abs(pil - np.round(x)).mean()
        # About one level apart (float vs integer DCT: a coefficient near a rounding boundary
        # may land one quantisation step away), far less than what JPEG itself changes.
        assert ours_vs_pil < 1.5 and ours_vs_pil < 0.2 * loss, (severity, ours_vs_pil, loss)
        assert np.percentile(np.abs(out - pil), 99) <= 12.0


# ----------------------------------------------------------------------------- random corruptions
def test_gaussian_and_speckle_noise_statistics():
    x = np.full((2, 32, 32, 3), 128.0, "float32")
    for severity in (1, 5):
        c = C.PARAMS["gaussian_noise"][0][severity - 1]
        d = (run(x, "gaussian_noise", severity) - x) / 255.0
        assert abs(d.mean()) < 0.005 and abs(d.std() / c - 1) < 0.04
        c = C.PARAMS["speckle_noise"][0][severity - 1]
        d = (run(x, "speckle_noise", severity) - x) / 128.0
        assert abs(d.mean()) < 0.005 and abs(d.std() / c - 1) < 0.04  # 6144 draws: 4 standard errors


def test_poisson_counts():
    lam = np.repeat(np.array([0.5, 3.0, 10.0, 15.9, 40.0, 250.0], "float32"), 20000).reshape(6, -1)
    counts = np_(C.poisson(F, _rng.make_key(F, 0), t(lam)))
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    np.testing.assert_allclose(counts.mean(axis=1), lam[:, 0], rtol=0.03)
    np.testing.assert_allclose(counts.var(axis=1), lam[:, 0], rtol=0.06)
    assert abs((counts[0] == 0).mean() - np.exp(-0.5)) < 0.01


def test_shot_noise_statistics():
    from scipy import stats

    for severity, size in ((1, 32), (5, 32)):  # Poisson means 200 and 20 (small means: test_poisson_counts)
        x = np.full((2, size, size, 3), 102.0, "float32")  # 0.4 of white
        c = C.parameters("shot_noise", severity, size, size)[0]
        d = run(x, "shot_noise", severity) / 255.0
        k = np.arange(0, 1000)
        values, pmf = np.clip(k / c, 0, 1), stats.poisson.pmf(k, 0.4 * c)  # clip(Poisson(x c) / c, 0, 1)
        mean = (values * pmf).sum()
        std = np.sqrt(((values - mean) ** 2 * pmf).sum())
        assert abs(d.mean() - mean) < 4 * std / np.sqrt(d.size) + 1e-4, (severity, size, d.mean(), mean)
        assert abs(d.std() / std - 1) < 0.04, (severity, size, d.std(), std)


def test_impulse_noise_flips_the_published_fraction():
    x = np.full((2, 32, 32, 3), 128.0, "float32")
    for severity in (1, 5):
        c = C.PARAMS["impulse_noise"][0][severity - 1]
        out = run(x, "impulse_noise", severity)
        salt, pepper = (out == 255.0).mean(), (out == 0.0).mean()
        assert np.all((out == 128.0) | (out == 255.0) | (out == 0.0))
        # Within 4 binomial standard deviations.
        assert abs(salt + pepper - c) < 4 * np.sqrt(c * (1 - c) / out.size)
        assert abs(salt - pepper) < 4 * np.sqrt(c / out.size)


def _reference_glass_pass(image, dy, dx, delta):
    """The published loop on one (H, W, 3) uint8 image, its swap statement verbatim, with the
    offsets it would have drawn at each (h, w) read from `dy`, `dx`."""
    x = image.copy()
    height, width = x.shape[:2]
    for h in range(height - delta, delta, -1):
        for w in range(width - delta, delta, -1):
            h_prime, w_prime = h + dy[h, w], w + dx[h, w]
            x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]  # views: a copy, not a swap
    return x


@pytest.mark.parametrize("delta,size", [(1, (32, 32)), (2, (20, 24)), (3, (24, 17)), (4, (40, 40))])
def test_glass_pass_equals_the_reference_loop_exactly(delta, size):
    rng = np.random.default_rng(delta)
    images = rng.integers(0, 256, (3, *size, 3)).astype(np.uint8)
    dy, dx = rng.integers(-delta, delta, (2, 3, *size)).astype(np.int32)  # randint's [-delta, delta)
    out = np_(blur.glass_pass(F, t(images.astype("float32")), t(dy, "int32"), t(dx, "int32"), delta))
    expected = np.stack([_reference_glass_pass(images[b], dy[b], dx[b], delta) for b in range(3)])
    np.testing.assert_array_equal(out, expected.astype("float32"))
    if delta == 1:  # nothing is moved twice: every visited pixel holds its own or an up-left neighbour's value
        assert np.mean(np.all(out == images, axis=-1)[:, 2:, 2:]) < 0.5


def test_glass_blur_offsets_are_uniform_over_the_published_range():
    # No blur; the channels encode each pixel's row and column, so its source can be read back.
    # delta = 1: every visited pixel copies itself, its left, upper or upper-left neighbour, each
    # with probability 1/4 (numpy's randint(-1, 1) draws -1 or 0); the border rows stay.
    rows, cols = np.mgrid[0:32, 0:32]
    x = np.stack([rows * 8.0, cols * 8.0, np.zeros((32, 32))], axis=-1)[None].repeat(64, 0)
    out = np_(blur.glass_blur(F, t(x / 255.0), _rng.make_key(F, 1), 1e-3, 1, 1)) * 255.0
    dy = (np.round(out[..., 0] / 8.0) - rows)[:, 2:, 2:]
    dx = (np.round(out[..., 1] / 8.0) - cols)[:, 2:, 2:]
    for offset in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        share = np.mean((dy == offset[0]) & (dx == offset[1]))
        assert abs(share - 0.25) < 4 * np.sqrt(0.25 * 0.75 / dy.size), (offset, share)
    np.testing.assert_allclose(out[:, :2], x[:, :2], atol=1e-3)


def test_elastic_displacements_grow_with_severity():
    # The published CIFAR parameters shrink the affine jitter as severity grows (so the pixel
    # distance does not increase), while the elastic displacement alpha / sigma grows.
    spread = []
    for severity in range(2, 6):
        alpha, sigma, affine = C.PARAMS["elastic_transform"][0][severity - 1]
        _, dx, dy = blur.elastic_fields(F, _rng.make_key(F, 0), 4, 32, 32, alpha, sigma, affine)
        spread.append(np.sqrt(np_(dx) ** 2 + np_(dy) ** 2).mean())
    assert all(b > a for a, b in itertools.pairwise(spread)), spread


# Published parameters that are not ordered by distance to the clean image: saturate's 1-2
# desaturate and 3-5 saturate; frost's and glass blur's weight on the clean image drops in steps;
# elastic's affine jitter shrinks (its field grows, tested above); spatter's water severities.
NOT_ORDERED = {"saturate": [(1, 2), (3, 4), (4, 5)], "frost": [(1, 2), (1, 5)], "glass_blur": [(1, 4), (3, 5)],
               "elastic_transform": [], "spatter": [(1, 2), (1, 4), (4, 5)]}


@pytest.mark.parametrize("name", ALL)
def test_severity_order_and_seeding(name):
    x = natural_images(2, 32)
    out = [run(x, name, s, seed=4) for s in range(1, 6)]
    distance = [np.abs(o - x).mean() for o in out]
    pairs = NOT_ORDERED.get(name, list(itertools.pairwise(range(1, 6))))
    for a, b in pairs:
        assert distance[b - 1] >= distance[a - 1] - 1e-3, (name, distance)
    assert all(0.0 < d < 128.0 for d in distance)
    assert all(o.shape == x.shape and o.min() >= 0.0 and o.max() <= 255.0 for o in out)
    # Seeded: the same seed repeats the output exactly; another seed changes the random ones.
    np.testing.assert_array_equal(run(x, name, 3, seed=4), out[2])
    other = run(x, name, 3, seed=5)
    if name in DETERMINISTIC:
        np.testing.assert_array_equal(other, out[2])
    else:
        assert np.abs(other - out[2]).max() > 1.0


def test_corrupt_keeps_dtype_and_matches_the_eager_path():
    x = natural_images(2, 16, seed=3)
    out = np_(C.corrupt(t(x), "motion_blur", 2, seed=11))
    np.testing.assert_allclose(out, run(x, "motion_blur", 2, seed=11), atol=1e-3)
    as_uint8 = C.corrupt(t(np.round(x), "uint8"), "contrast", 2)
    assert np_(as_uint8).dtype == np.uint8 and np_(as_uint8).shape == x.shape


def test_inside_tf_data_map_matches_eager():
    x = natural_images(4, 16, seed=6)
    ds = tf.data.Dataset.from_tensor_slices(x).batch(4)
    # motion blur and snow: per-image slices through vectorized_map, in TF's graph under either backend
    for name in ("gaussian_noise", "fog", "motion_blur", "snow"):
        mapped = next(iter(ds.map(lambda b, n=name: C.corrupt(b, n, 4, seed=9)))).numpy()
        np.testing.assert_allclose(mapped, run(x, name, 4, seed=9), atol=0.05)


def test_bad_inputs_raise_one_line_errors():
    x = t(natural_images(1, 16))
    with pytest.raises(KzooError, match="did you mean gaussian_noise") as err:
        C.corrupt(x, "gausian_noise", 1)
    assert "\n" not in str(err.value)
    for severity in (0, 6, 2.5, True):
        with pytest.raises(KzooError, match="severity") as err:
            C.corrupt(x, "fog", severity)
        assert "\n" not in str(err.value)
    with pytest.raises(KzooError, match="at least 8x8") as err:
        C.corrupt(t(np.zeros((2, 6, 16, 3))), "snow", 1)
    assert "\n" not in str(err.value)
    with pytest.raises(KzooError, match=r"\(N, H, W, 3\)"):
        C.corrupt(t(np.zeros((16, 16, 3))), "fog", 1)
    assert len(C.CORRUPTIONS) == 15 and len(C.HELD_OUT) == 4 and not set(C.CORRUPTIONS) & set(C.HELD_OUT)


@pytest.mark.skipif(__import__("keras").backend.backend() != "tensorflow", reason="TensorFlow's tf.function warning")
def test_eager_tensorflow_compiles_each_corruption_without_retracing_warnings(caplog):
    # `kzoo robustness` calls each (corruption, severity) eagerly: one tf.function each, and
    # TensorFlow's "triggered tf.function retracing" warning after five of them is noise there.
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    with caplog.at_level("WARNING"):
        for name in C.CORRUPTIONS[:7]:
            C.corrupt(x, name, 1, seed=1)
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
