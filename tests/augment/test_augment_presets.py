"""Presets and the two placements (tf.data pipeline, inside the training step)."""

import numpy as np
import pytest
import keras

import kzoo.augment as A
from kzoo_augment_helpers import np_, one_hot, random_images, t
from kzoo.errors import KzooError


@pytest.mark.parametrize("name", ["basic", "signs", "vit_example", "strong", "cutmix", "crop", "flip"])
def test_presets_keep_shapes_ranges_and_label_mass(name):
    aug = A.get_preset(name, num_classes=10, image_size=(16, 16), seed=0)
    images, labels = random_images(8, 16), one_hot(np.arange(8), 10)
    out = aug({"images": t(images), "labels": t(labels)}, seed=1)
    x, y = np_(out["images"]), np_(out["labels"])
    assert x.shape == (8, 16, 16, 3) and y.shape == (8, 10)
    assert x.min() >= 0.0 and x.max() <= 255.0
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    if name not in ("strong", "cutmix"):
        np.testing.assert_array_equal(y, labels)
    else:
        assert (y.max(axis=1) < 1.0).sum() >= 4  # CutMix (and MixUp) mixed most labels
    assert not np.array_equal(x, images)
    np.testing.assert_array_equal(np_(aug({"images": t(images), "labels": t(labels)}, seed=1)["images"]), x)


def test_preset_names():
    assert A.get_preset("none", num_classes=10, image_size=(32, 32)) is None
    with pytest.raises(KzooError, match="valid: none, basic, signs, vit_example, strong"):
        A.get_preset("stronk", num_classes=10, image_size=(32, 32))
    # Padding scales with the image: 4 px at 32, 8 px at 64.
    assert A.get_preset("basic", num_classes=10, image_size=(64, 64)).layers[0].padding == 8


def test_signs_preset_never_mirrors():
    # A mirrored "keep left" sign is a "keep right" sign: no flip anywhere in this preset.
    aug = A.get_preset("signs", num_classes=43, image_size=(32, 32), seed=0)
    assert not any(isinstance(layer, A.RandomFlip) for layer in aug.layers)
    assert not aug.layers[0].flip
    left_bright = np.zeros((16, 32, 32, 3), "float32")
    left_bright[:, :, :12] = 255.0  # bright left third: a flip would move it to the right
    out = np_(aug({"images": t(left_bright), "labels": t(one_hot(np.arange(16) % 43, 43))}, seed=3)["images"])
    assert (out[:, :, :10].mean(axis=(1, 2, 3)) > out[:, :, -10:].mean(axis=(1, 2, 3))).all()


def test_map_dataset_is_reproducible_and_parallel():
    tf = pytest.importorskip("tensorflow")
    images, labels = random_images(32, 16), one_hot(np.arange(32) % 10, 10)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    aug = A.get_preset("strong", num_classes=10, image_size=(16, 16))

    augmented = A.map_dataset(ds, aug, seed=3, num_parallel_calls=4)
    first = [x.numpy() for x, _ in augmented]
    second = [x.numpy() for x, _ in augmented]  # a second pass: same keys, same batches
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    assert A.map_dataset(ds, None) is ds


def _tiny_model(num_classes=4):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


def test_device_augmentation_trains_with_mixed_labels_and_leaves_inference_alone():
    model = _tiny_model()
    aug = A.get_preset("strong", num_classes=4, image_size=(16, 16), seed=0)
    trainer = A.DeviceAugmentation(model, aug)
    trainer.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    images, labels = random_images(16, 16), one_hot(np.arange(16) % 4, 4)
    state_before = np_(aug.generator.state)
    history = trainer.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    # The augmentation's seed state is model state: it advanced once per step (JAX: carried out
    # of the stateless step; TF: assigned in place).
    assert not np.array_equal(np_(aug.generator.state), state_before)
    np.testing.assert_allclose(np_(trainer.predict(images, verbose=0)), np_(model.predict(images, verbose=0)), atol=1e-5)
    np.testing.assert_allclose(np_(trainer(t(images))), np_(model(t(images))), atol=1e-5)

    # The loss is computed on the augmented batch: with one image repeated and MixUp only, the
    # device loss equals the loss on the mixed labels, not on the originals.
    mix = A.DeviceAugmentation(_tiny_model(), A.MixUp(seed=0))
    mix.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    out = mix({"images": t(images), "labels": t(labels)}, training=True)
    assert set(out) == {"logits", "labels"} and not np.allclose(np_(out["labels"]), labels)


def test_augment_grid_writes_before_and_after_rows(tmp_path):
    pytest.importorskip("tensorflow")  # kzoo.data decodes with tf.data
    from PIL import Image

    out = A.augment_grid(None, "basic", tmp_path / "grid.png", num_images=4, num_augmented=2)
    picture = np.asarray(Image.open(out))
    # 3 rows (before + 2 augmented) of 4 images, 32 px enlarged 3x, 2 px gaps.
    assert picture.shape == (3 * 98 + 2, 4 * 98 + 2, 3)


def test_crop_and_flip_presets_are_the_halves_of_basic():
    images, labels = random_images(16, 16), one_hot(np.arange(16) % 10, 10)
    flipped = np_(A.get_preset("flip", num_classes=10, image_size=(16, 16))(
        {"images": t(images), "labels": t(labels)}, seed=2)["images"])
    mirrored = [np.array_equal(f, i[:, ::-1]) for f, i in zip(flipped, images)]
    assert all(m or np.array_equal(f, i) for m, f, i in zip(mirrored, flipped, images)) and 0 < sum(mirrored) < 16
    crop = A.get_preset("crop", num_classes=10, image_size=(16, 16))
    assert [type(layer).__name__ for layer in crop.layers] == ["PadCrop"] and not crop.layers[0].flip
