"""What every augmentation layer promises: calling convention, dtypes, ranges, seeds, config,
tf.data (also under JAX, where the layers switch to TF ops inside the map)."""

import numpy as np
import pytest
import keras

import kzoo.augment as A
from kzoo_augment_helpers import np_, one_hot, random_images, t
from kzoo.augment import _rng

LAYERS = {
    "flip": lambda: A.RandomFlip("horizontal_and_vertical"),
    "pad_crop": lambda: A.PadCrop(4, flip=True),
    "resized_crop": lambda: A.RandomResizedCrop(),
    "affine": lambda: A.RandomAffine(rotation=0.1, zoom_height=0.2, zoom_width=0.2, shear=0.2),
    "rotation": lambda: A.RandomRotation(0.1),
    "zoom": lambda: A.RandomZoom(0.2, 0.3),
    "translation": lambda: A.RandomTranslation(0.1),
    "jitter": lambda: A.ColorJitter(0.4, 0.4, 0.4, 0.1),
    "randaugment": lambda: A.RandAugment(num_ops=2, magnitude=9, magnitude_std=0.5),
    "trivial": lambda: A.TrivialAugment(),
    "erasing": lambda: A.RandomErasing(p=1.0, value="random"),
    "cutmix": lambda: A.CutMix(),
    "mixup": lambda: A.MixUp(),
    "choice": lambda: A.RandomChoice([A.CutMix(), A.MixUp()], [0.5, 0.5]),
}


def _batch():
    return {"images": t(random_images(8, 16)), "labels": t(one_hot(np.arange(8) % 4, 4)), "extra": t(np.arange(8))}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_contract_shapes_dtypes_ranges_seeds(name):
    layer = LAYERS[name]()
    data = _batch()
    out = layer(data, seed=7)
    assert set(out) == {"images", "labels", "extra"}
    assert tuple(out["images"].shape) == (8, 16, 16, 3) and "float32" in str(out["images"].dtype)
    assert tuple(out["labels"].shape) == (8, 4)
    np.testing.assert_array_equal(np_(out["extra"]), np.arange(8))
    x, y = np_(out["images"]), np_(out["labels"])
    assert x.min() >= 0.0 and x.max() <= 255.0
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(x, np_(data["images"]))
    # Same seed, same batch; another seed, another batch.
    np.testing.assert_array_equal(np_(layer(data, seed=7)["images"]), x)
    assert not np.array_equal(np_(layer(data, seed=8)["images"]), x)
    # No seed: the layer's SeedGenerator advances, and a layer built with the same seed repeats it.
    a, b = LAYERS[name](), LAYERS[name]()
    a.seed = b.seed = None
    first = np_(type(a).from_config({**a.get_config(), "seed": 3})(data)["images"])
    again = np_(type(b).from_config({**b.get_config(), "seed": 3})(data)["images"])
    np.testing.assert_array_equal(first, again)
    # Inference leaves the batch alone.
    np.testing.assert_array_equal(np_(layer(data, training=False)["images"]), np_(data["images"]))


@pytest.mark.parametrize("name", ["pad_crop", "randaugment", "jitter"])
def test_bare_tensors_uint8_and_single_images(name):
    layer = LAYERS[name]()
    images = random_images(8, 16)
    out = layer(t(images), seed=1)
    assert tuple(out.shape) == (8, 16, 16, 3)
    as_uint8 = layer(t(images, "uint8"), seed=1)
    assert "uint8" in str(as_uint8.dtype)
    single = layer(t(images[0]), seed=1)
    assert tuple(single.shape) == (16, 16, 3)


def test_seed_generator_advances_between_calls():
    layer = A.RandAugment(seed=1)
    data = _batch()
    assert not np.array_equal(np_(layer(data)["images"]), np_(layer(data)["images"]))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_get_config_round_trip(name):
    layer = LAYERS[name]()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is type(layer)
    data = _batch()
    np.testing.assert_allclose(np_(clone(data, seed=2)["images"]), np_(layer(data, seed=2)["images"]), atol=1e-4)


def test_random_numbers_are_the_same_on_every_backend():
    # A numpy copy of kzoo.augment._rng: TF and JAX must both reproduce it bit for bit.
    def mix(x):
        x = np.uint32(x)
        x ^= x >> np.uint32(16)
        x = (x * np.uint32(0x7FEB352D)).astype(np.uint32)
        x ^= x >> np.uint32(15)
        x = (x * np.uint32(0x846CA68B)).astype(np.uint32)
        return x ^ (x >> np.uint32(16))

    with np.errstate(over="ignore"):
        a = mix(np.uint32(42) + np.uint32(0x9E3779B9))
        b = mix((np.uint32(0) + np.uint32(0x632BE5AB)) ^ a)
        counter = np.arange(6, dtype=np.uint32) + np.uint32(3 << 24)
        h = mix((counter * np.uint32(0x9E3779B9)).astype(np.uint32) ^ a)
        h = mix((h + b).astype(np.uint32))
    F = A.base.KERAS_OPS
    key = _rng.make_key(F, 42)
    np.testing.assert_array_equal(np_(_rng.bits(F, key, 3, (2, 3))), h.reshape(2, 3))
    np.testing.assert_array_equal(np_(_rng.uniform(F, key, 3, (6,))), (h >> 8).astype(np.float32) / 2**24)


def test_rng_distributions():
    F = A.base.KERAS_OPS
    key = _rng.make_key(F, 0)
    u = np_(_rng.uniform(F, key, 1, (8192,)))
    assert abs(u.mean() - 0.5) < 0.015 and u.min() >= 0.0 and u.max() < 1.0
    z = np_(_rng.normal(F, key, 2, (8192,)))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05
    for alpha in (0.4, 2.0):
        beta = np_(_rng.beta(F, key, 4, (8192,), alpha))
        assert abs(beta.mean() - 0.5) < 0.03
        assert abs(beta.var() - 1.0 / (4 * (2 * alpha + 1))) < 0.012
    perm = np_(_rng.permutation(F, key, 9, 50))
    assert sorted(perm) == list(range(50))


@pytest.mark.parametrize("name", ["randaugment", "choice", "affine"])
def test_runs_in_a_tf_data_map_and_matches_eager(name):
    tf = pytest.importorskip("tensorflow")
    layer = LAYERS[name]()
    images, labels = random_images(8, 16), one_hot(np.arange(8) % 4, 4)
    seed = np.array([5, 6], dtype="int64")
    ds = tf.data.Dataset.from_tensors(({"images": images, "labels": labels}, seed))
    piped = next(iter(ds.map(lambda d, s: layer(d, seed=s))))
    eager = layer({"images": t(images), "labels": t(labels)}, seed=seed)
    # The same key draws the same parameters in TF (the map) and in the test's backend.
    np.testing.assert_allclose(piped["images"].numpy(), np_(eager["images"]), atol=2e-3)
    np.testing.assert_allclose(piped["labels"].numpy(), np_(eager["labels"]), atol=1e-5)
    unseeded = next(iter(tf.data.Dataset.from_tensors({"images": images, "labels": labels}).map(layer)))
    assert unseeded["images"].shape == (8, 16, 16, 3)
