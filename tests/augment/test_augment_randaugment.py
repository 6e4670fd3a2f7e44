"""RandAugment / TrivialAugment: every op's fixed-parameter behaviour, grouping, magnitudes."""

import numpy as np
import pytest
from PIL import Image

import kzoo.augment as A
from kzoo_augment_helpers import np_, random_images, t
from kzoo.augment import _rng
from kzoo.augment.randaugment import GEOMETRIC_OPS
from kzoo.errors import KzooError

ALL_OPS = A.RANDAUGMENT_OPS + A.EXTRA_OPS
MAGNITUDE_FREE = {"identity", "autocontrast", "equalize", "invert"}


@pytest.mark.parametrize("op", sorted(set(ALL_OPS) - MAGNITUDE_FREE))
def test_every_magnitude_op_is_identity_at_magnitude_zero(op):
    x = random_images(8, 16)
    out = np_(A.apply_op(t(x), op, t(np.zeros(8)), t(np.resize([1.0, -1.0], 8))))
    np.testing.assert_allclose(out, x, atol=1e-3)


@pytest.mark.parametrize("op", ALL_OPS)
def test_every_op_keeps_shape_dtype_and_range_at_full_magnitude(op):
    # Low contrast and >= 256 pixels, so that autocontrast and equalize (a step needs
    # 255 pixels outside the top level, as in PIL) have something to do. Tests share the
    # (8, 16, 16, 3) shape: JAX compiles each op once per shape.
    x = np.round(random_images(8, 16) * 0.4 + 60.0)
    out = A.apply_op(t(x), op, t(np.ones(8)), t(np.resize([1.0, -1.0], 8)))
    assert tuple(out.shape) == x.shape and "float32" in str(out.dtype)
    out = np_(out)
    assert out.min() >= 0.0 and out.max() <= 255.0
    if op not in ("identity",):
        assert not np.allclose(out, x), f"{op} at full magnitude changed nothing"


def test_fixed_parameters_match_the_plain_ops():
    x = random_images(2, 12)
    # solarize: level 0.5 -> threshold 256 * (1 - 0.5) = 128; posterize: level 1 -> 8 - 4 = 4 bits.
    np.testing.assert_array_equal(np_(A.apply_op(t(x), "solarize", t([0.5, 0.5]))), np_(A.solarize(t(x), t([128.0, 128.0]))))
    np.testing.assert_array_equal(np_(A.apply_op(t(x), "posterize", t([1.0, 1.0]))), np_(A.posterize(t(x), t([4, 4]))))
    # brightness: level 1, sign -1 -> factor 1 - 0.9 = 0.1.
    np.testing.assert_allclose(np_(A.apply_op(t(x), "brightness", t([1.0, 1.0]), t([-1.0, -1.0]))),
                               np_(A.adjust_brightness(t(x), t([0.1, 0.1]))), atol=1e-4)


def test_rotate_matches_pil_rotate_direction_and_fill():
    x = random_images(1, 16)
    out = np_(A.apply_op(t(x), "rotate", t([1.0])))  # +30 degrees
    ref = np.asarray(Image.fromarray(x[0].astype(np.uint8)).rotate(30, resample=Image.NEAREST, fillcolor=(128,) * 3))
    # Nearest-neighbour ties at exactly half a pixel may round either way: allow a few pixels.
    assert np.mean(np.all(out[0] == ref, axis=-1)) > 0.95


def test_translate_x_moves_content_by_45_percent_at_full_magnitude():
    x = random_images(1, 20)
    out = np_(A.apply_op(t(x), "translate_x", t([1.0]), t([1.0])))  # 9 px: content moves right
    np.testing.assert_array_equal(out[0, :, 9:], x[0, :, :-9])
    np.testing.assert_array_equal(out[0, :, :9], 128.0)


def test_grouped_round_applies_to_each_image_its_own_op():
    x = random_images(8, 16)
    ops = ("identity", "rotate", "solarize", "equalize", "contrast", "translate_y", "sharpness")
    F = A.base.KERAS_OPS
    key = _rng.make_key(F, 11)
    per_op, slot_of_image, _ = A.randaugment.assign_slots(F, key, 8, len(ops))
    slots = per_op * len(ops)
    level = np.linspace(0.1, 1.0, slots).astype("float32")
    sign = np.where(np.arange(slots) % 2 == 0, 1.0, -1.0).astype("float32")
    out, op_index = A.apply_ops_grouped(t(x), key, ops, t(level), t(sign))
    out, op_index, slot_of_image = np_(out), np_(op_index), np_(slot_of_image)[:8]
    order = [op for op in ops if op not in GEOMETRIC_OPS] + [op for op in ops if op in GEOMETRIC_OPS]
    ops_of_images = [order[s // per_op] for s in slot_of_image]
    assert [ops[i] for i in op_index] == ops_of_images
    # Whole-batch calls with each image's own slot parameters (one shape: JAX compiles once).
    level_of_image, sign_of_image = t(level[slot_of_image]), t(sign[slot_of_image])
    for op in set(ops_of_images):
        images = [b for b in range(8) if ops_of_images[b] == op]
        expected = np_(A.apply_op(t(x), op, level_of_image, sign_of_image))
        np.testing.assert_allclose(out[images], expected[images], atol=1e-3, err_msg=op)


def test_each_image_draws_its_op_uniformly():
    F = A.base.KERAS_OPS
    counts = np.zeros((4, 14))
    for seed in range(280):
        per_op, slot_of_image, image_of_slot = A.randaugment.assign_slots(F, _rng.make_key(F, seed), 4, 14)
        ops_of_images = np_(slot_of_image)[:4] // per_op
        counts[np.arange(4), ops_of_images] += 1
        assert sorted(np_(image_of_slot)[np_(slot_of_image)[:4]]) == [0, 1, 2, 3]
    # 280 draws per image over 14 ops: 20 expected each; a broken draw piles up elsewhere.
    assert counts.min() >= 5 and counts.max() <= 40


def test_randaugment_layer_identity_at_magnitude_zero_and_per_image_draws():
    x = random_images(8, 16)
    magnitude_ops = [op for op in A.RANDAUGMENT_OPS if op not in MAGNITUDE_FREE]
    same = np_(A.RandAugment(num_ops=2, magnitude=0, ops=magnitude_ops)(t(x), seed=1))
    np.testing.assert_allclose(same, x, atol=1e-3)
    copies = np.repeat(random_images(1, 16), 8, axis=0)
    out = np_(A.RandAugment(num_ops=2, magnitude=9)(t(copies), seed=2))
    assert len({o.tobytes() for o in out}) >= 6
    assert out.min() >= 0.0 and out.max() <= 255.0


@pytest.mark.parametrize("std", [0.5, float("inf")])
def test_magnitude_std_draws_per_image_magnitudes(std):
    # One op (brightness, sign fixed by a flat image's clip-free range) isolates the magnitude.
    x = np.full((16, 4, 4, 3), 100.0, "float32")
    layer = A.RandAugment(num_ops=1, magnitude=5, magnitude_std=std, ops=("brightness",))
    out = np_(layer(t(x), seed=4))[:, 0, 0, 0]
    factors = np.abs(out / 100.0 - 1.0) / 0.9 * 10  # the magnitude each image got
    assert len(np.unique(np.round(factors, 4))) > 8
    assert factors.max() <= 10.0 + 1e-3
    if np.isinf(std):
        assert factors.max() <= 5.0 + 1e-3
    fixed = np_(A.RandAugment(num_ops=1, magnitude=5, ops=("brightness",))(t(x), seed=4))[:, 0, 0, 0]
    np.testing.assert_allclose(np.abs(fixed / 100.0 - 1.0), 0.45, atol=1e-4)


def test_trivial_augment_one_op_wide_ranges():
    x = np.repeat(random_images(1, 16), 8, axis=0)
    out = np_(A.TrivialAugment()(t(x), seed=5))
    assert out.shape == x.shape and out.min() >= 0.0 and out.max() <= 255.0
    assert len({o.tobytes() for o in out}) >= 5
    layer = A.TrivialAugment(ops=("brightness",))
    levels = np_(layer._levels(A.base.KERAS_OPS, _rng.make_key(A.base.KERAS_OPS, 0), 1000))
    assert set(np.round(levels * 30).astype(int)) == set(range(31))  # 31 magnitude bins


def test_unknown_op_is_a_kzoo_error():
    with pytest.raises(KzooError, match="unknown ops"):
        A.RandAugment(ops=("rotate", "wobble"))
