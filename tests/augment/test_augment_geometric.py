"""Geometric ops against numpy expectations (run under TF and JAX: both must match numpy)."""

import numpy as np
import pytest

import kzoo.augment as A
from kzoo_augment_helpers import gradient_image, np_, random_images, t
from kzoo.errors import KzooError


def test_flip_left_right_only_flagged_images():
    x = random_images(3, 6)
    out = np_(A.flip_left_right(t(x), t([True, False, True], "bool")))
    np.testing.assert_array_equal(out[0], x[0, :, ::-1])
    np.testing.assert_array_equal(out[1], x[1])
    np.testing.assert_array_equal(out[2], x[2, :, ::-1])
    np.testing.assert_array_equal(np_(A.flip_up_down(t(x), t([True, False, False], "bool")))[0], x[0, ::-1])


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("degrees,k", [(90.0, 1), (180.0, 2), (-90.0, 3), (0.0, 0)])
def test_rotation_by_right_angles_is_rot90(interpolation, degrees, k):
    x = gradient_image(8)
    out = np_(A.warp_affine(t(x), A.rotation_transform(t([degrees]), 8, 8), interpolation=interpolation))
    # Counter-clockwise, as PIL's Image.rotate and np.rot90 on (rows, cols).
    np.testing.assert_allclose(out[0], np.rot90(x[0], k), atol=1e-3)


def test_translation_by_whole_pixels_shifts_and_fills():
    x = gradient_image(6)
    transform = A.affine_transform(6, 6, translate=t([[1.0, 2.0]]))  # content moves down 1, right 2
    out = np_(A.warp_affine(t(x), transform, fill_mode="constant", fill_value=7.0))
    expected = np.full_like(x[0], 7.0)
    expected[1:, 2:] = x[0, :-1, :-2]
    np.testing.assert_allclose(out[0], expected, atol=1e-4)


def test_reflect_fill_mirrors_with_the_edge_repeated():
    x = gradient_image(6)
    out = np_(A.warp_affine(t(x), A.affine_transform(6, 6, translate=t([[0.0, 2.0]])), fill_mode="reflect"))
    # (d c b a | a b c d): source columns -2, -1 read columns 1, 0.
    np.testing.assert_allclose(out[0][:, :2], x[0][:, [1, 0]], atol=1e-4)
    np.testing.assert_allclose(out[0][:, 2:], x[0][:, :-2], atol=1e-4)


def test_bilinear_half_pixel_shift_averages_neighbours():
    x = gradient_image(6)
    out = np_(A.warp_affine(t(x), A.affine_transform(6, 6, translate=t([[0.0, -0.5]])), fill_mode="nearest"))
    np.testing.assert_allclose(out[0][:, :-1], (x[0][:, :-1] + x[0][:, 1:]) / 2, atol=1e-4)


def test_shear_x_matches_pil_convention():
    x = gradient_image(8)
    s = 0.5
    out = np_(A.warp_affine(t(x), A.affine_transform(8, 8, shear=t([[0.0, s]])), interpolation="nearest",
                            fill_value=-1.0))
    rows, cols = np.mgrid[0:8, 0:8]
    src = np.floor(cols + s * rows + 0.5).astype(int)
    expected = np.where((src < 8)[..., None], x[0][rows, np.minimum(src, 7)], -1.0)
    np.testing.assert_allclose(out[0], expected, atol=1e-4)


def test_pad_crop_with_known_offsets_and_flip():
    x = random_images(2, 8)
    offsets = t([[0, 8], [4, 4]], "int32")  # image 0: top-right corner of the padded image
    out = np_(A.pad_crop(t(x), offsets, 4, flip=t([False, True], "bool")))
    padded = np.pad(x, [(0, 0), (4, 4), (4, 4), (0, 0)])
    np.testing.assert_array_equal(out[0], padded[0, 0:8, 8:16])
    np.testing.assert_array_equal(out[1], x[1, :, ::-1])


def test_resized_crop_of_the_full_image_is_identity_and_halves_average():
    x = random_images(1, 8)
    out = np_(A.resized_crop(t(x), t([[0.0, 0.0, 8.0, 8.0]]), (8, 8)))
    np.testing.assert_allclose(out, x, atol=1e-3)
    half = np_(A.resized_crop(t(x), t([[0.0, 0.0, 8.0, 8.0]]), (4, 4)))
    np.testing.assert_allclose(half[0], x[0].reshape(4, 2, 4, 2, 3).mean(axis=(1, 3)), atol=1e-3)


def test_unknown_fill_mode_is_a_kzoo_error():
    with pytest.raises(KzooError, match="fill_mode"):
        A.warp_affine(t(gradient_image(4)), A.rotation_transform(t([1.0]), 4, 4), fill_mode="wrap")


@pytest.mark.parametrize(
    "layer",
    [
        lambda: A.RandomAffine(rotation=0.1, zoom_height=0.2, zoom_width=0.2, translate_height=0.1,
                               translate_width=0.1, shear=0.2),
        lambda: A.RandomRotation(0.2),
        lambda: A.RandomZoom(0.3),
        lambda: A.RandomTranslation(0.2),
        lambda: A.RandomResizedCrop(),
        lambda: A.PadCrop(4, flip=True),
    ],
)
def test_random_geometric_layers_draw_per_image_parameters(layer):
    # Eight copies of one image: any two outputs equal would mean shared parameters.
    x = np.repeat(random_images(1, 16), 8, axis=0)
    out = np_(layer()(t(x), seed=3))
    flat = out.reshape(8, -1)
    distinct = {flat[i].tobytes() for i in range(8)}
    assert len(distinct) >= 6
    assert out.min() >= 0.0 and out.max() <= 255.0


def test_zero_factors_are_identity():
    x = random_images(4, 8)
    out = np_(A.RandomAffine(fill_mode="constant")(t(x), seed=1))
    np.testing.assert_allclose(out, x, atol=1e-4)
    np.testing.assert_array_equal(np_(A.PadCrop(0)(t(x), seed=1)), x)


def test_random_resized_crop_output_size():
    out = A.RandomResizedCrop(size=(12, 10))(t(random_images(2, 16)), seed=0)
    assert tuple(out.shape) == (2, 12, 10, 3)


def test_erase_known_boxes_and_random_erasing_boxes():
    x = random_images(2, 8)
    out = np_(A.erase(t(x), t([[1, 2, 4, 6], [0, 0, 0, 8]], "int32"), 0.0))  # image 1: empty box
    expected = x.copy()
    expected[0, 1:4, 2:6] = 0.0
    np.testing.assert_array_equal(out, expected)
    flat = np.full((8, 16, 16, 3), 200.0, "float32")
    erased = np_(A.RandomErasing(p=1.0, scale=(0.1, 0.2), value=0.0)(t(flat), seed=0))
    area = (erased[..., 0] == 0.0).mean(axis=(1, 2))
    assert np.all(area >= 0.05) and np.all(area <= 0.25)  # rounding of the box sides
    assert len(np.unique(area)) > 1
    np.testing.assert_array_equal(np_(A.RandomErasing(p=0.0)(t(flat), seed=0)), flat)
