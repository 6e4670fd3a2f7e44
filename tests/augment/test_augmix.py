"""AugMix: the mixing formula, its randomness, the op set and severity, the JS loss, AugMixJSD in fit."""

import math

import keras
import numpy as np
import pytest
from kzoo_augment_helpers import np_, one_hot, random_images, t

from kzoo.augment import _rng
from kzoo.augment._backend import KERAS_OPS
from kzoo.augment.augmix import AUGMIX_OPS, AugMix, AugMixJSD, jensen_shannon
from kzoo.augment.color import autocontrast
from kzoo.augment.placement import map_dataset

F = KERAS_OPS


def _jit(fn):
    # Eager JAX compiles every primitive on first use; one jit of the whole function is faster.
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return fn


def test_op_set_leaves_out_the_test_corruptions():
    assert set(AUGMIX_OPS) == {"autocontrast", "equalize", "posterize", "rotate", "solarize",
                               "shear_x", "shear_y", "translate_x", "translate_y"}
    assert set(AugMix().ops) == set(AUGMIX_OPS)
    assert not {"contrast", "color", "brightness", "sharpness", "cutout", "identity"} & set(AugMix().ops)


def test_output_is_the_mixture_of_the_sampled_chains():
    aug = AugMix(seed=0)
    images = random_images(8, 16)
    out = np_(aug(t(images), seed=3))
    key = _rng.make_key(F, 3)
    chains = np_(_jit(lambda x, k: aug.chains(F, x, k))(t(images), key))
    weights, m = (np_(v) for v in aug.mixing_weights(F, key, 8))
    assert chains.shape == (3, 8, 16, 16, 3)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    assert (weights >= 0).all() and (m >= 0).all() and (m <= 1).all()
    expected = m[:, None, None, None] * images + (1 - m[:, None, None, None]) * np.einsum("bk,kbhwc->bhwc", weights,
                                                                                        chains)
    np.testing.assert_allclose(out / 255.0, expected / 255.0, atol=1e-4)
    # The chains really are augmented, and differently from each other.
    assert np.abs(chains - images[None]).mean() > 5.0 and np.abs(chains[0] - chains[1]).mean() > 5.0


def test_single_idempotent_op_leaves_m_x_plus_one_minus_m_op_x():
    # autocontrast twice is autocontrast once, so every chain is autocontrast(x) whatever its depth
    # and the output must be m * x + (1 - m) * autocontrast(x) for the sampled m (weights sum to 1).
    images = random_images(8, 8) * 0.5 + 40.0  # a narrow range, so autocontrast changes it a lot
    contrasted = np_(autocontrast(t(images)))
    np.testing.assert_array_equal(np_(autocontrast(t(contrasted))), contrasted)
    aug = AugMix(ops=("autocontrast",), seed=0)
    out = np_(aug(t(images), seed=5))
    _, m = aug.mixing_weights(F, _rng.make_key(F, 5), 8)
    m = np_(m)[:, None, None, None]
    np.testing.assert_allclose(out / 255.0, (m * images + (1 - m) * contrasted) / 255.0, atol=1e-4)
    assert m.std() > 0.1  # m is drawn per image


def test_mixing_weights_follow_dirichlet_and_beta():
    weights, m = (np_(v) for v in AugMix(alpha=1.0).mixing_weights(F, _rng.make_key(F, 0), 4000))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(weights.mean(axis=0), [1 / 3] * 3, atol=0.02)
    np.testing.assert_allclose(weights.var(axis=0), [1 / 18] * 3, atol=0.01)  # Dirichlet(1, 1, 1)
    assert 0.47 < m.mean() < 0.53 and abs(m.var() - 1 / 12) < 0.01  # Beta(1, 1) = U(0, 1)
    assert len(np.unique(weights[:, 0])) > 3990


def test_chain_depths_are_one_to_three_ops():
    # invert applied d times is x for even d and 255 - x for odd d: the chains show their depths.
    images = random_images(16, 8)
    key = _rng.make_key(F, 2)
    aug = AugMix(ops=("invert",), seed=0)
    chains = np_(aug.chains(F, t(images), key))
    depths = np_(aug.chain_depths(F, key, 3 * 16)).reshape(3, 16)
    assert set(np.unique(depths)) == {1, 2, 3}
    expected = np.where((depths % 2 == 0)[..., None, None, None], images[None], 255.0 - images[None])
    np.testing.assert_array_equal(chains, expected)
    fixed = np_(AugMix(ops=("invert",), depth=2, seed=0).chains(F, t(images), key))
    np.testing.assert_array_equal(fixed, np.broadcast_to(images, fixed.shape))


def test_severity_maps_to_the_reference_posterize_bits():
    # Severity 3: levels in [0.01, 0.3], so 4 - floor(4 l) keeps 4 or 3 bits (the reference's),
    # never RandAugment's 8 - round(4 l) (7 or 8 bits).
    aug = AugMix(ops=("posterize",), width=2, depth=1, seed=0)
    images = random_images(16, 8)
    chains = np_(aug.chains(F, t(images), _rng.make_key(F, 1)))
    assert (chains % 16 == 0).all()
    kept_3_bits = (chains % 32 == 0).all(axis=(2, 3, 4))
    assert kept_3_bits.any() and not kept_3_bits.all()


def test_per_image_draws_seeds_range_and_labels():
    aug = AugMix(seed=0)
    images = np.repeat(random_images(1, 16), 8, axis=0)
    labels = one_hot(np.arange(8) % 4, 4)
    out = aug({"images": t(images), "labels": t(labels)}, seed=1)
    x = np_(out["images"])
    np.testing.assert_array_equal(np_(out["labels"]), labels)
    assert x.shape == images.shape and x.min() >= 0.0 and x.max() <= 255.0
    # The same image 8 times: 8 different results.
    assert min(np.abs(x[i] - x[j]).mean() for i in range(8) for j in range(i)) > 0.5
    np.testing.assert_array_equal(np_(aug(t(images), seed=1)), x)
    assert np.abs(np_(aug(t(images), seed=2)) - x).mean() > 2.0
    # Unseeded calls advance the generator; a copy from the config replays a seeded call.
    assert not np.array_equal(np_(aug(t(images))), np_(aug(t(images))))
    copy = AugMix.from_config(aug.get_config())
    assert copy.get_config() == aug.get_config()
    np.testing.assert_array_equal(np_(copy(t(images), seed=1)), x)


def test_runs_in_the_tf_data_pipeline():
    tf = pytest.importorskip("tensorflow")
    images, labels = random_images(16, 16), one_hot(np.arange(16) % 4, 4)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    aug = AugMix(seed=0)
    batches = list(map_dataset(ds, aug, seed=3))
    first = np.asarray(batches[0][0])
    np.testing.assert_array_equal(np.asarray(batches[0][1]), labels[:8])
    # Batch i uses the key (i, seed): the pipeline matches a direct call with that key.
    direct = np_(aug(t(images[:8]), seed=t(np.array([0, 3]), "uint32")))
    np.testing.assert_allclose(first, direct, atol=1e-3)
    assert not np.allclose(first, images[:8]) and not np.allclose(np.asarray(batches[1][0]), first[:8])


def _np_js(logits):
    ps = [np.exp(z - z.max(-1, keepdims=True)) for z in logits]
    ps = [p / p.sum(-1, keepdims=True) for p in ps]
    mix = np.clip(sum(ps) / 3.0, 1e-7, 1.0)
    return np.mean(sum((p * np.log(p / mix)).sum(-1) for p in ps) / 3.0)


def test_jensen_shannon():
    rs = np.random.RandomState(0)
    a, b, c = (rs.normal(0, 2, (6, 10)).astype("float32") for _ in range(3))
    assert abs(float(jensen_shannon(t(a), t(a), t(a)))) < 1e-6
    js = float(jensen_shannon(t(a), t(b), t(c)))
    np.testing.assert_allclose(js, _np_js([a.astype("float64"), b, c]), atol=1e-5)
    assert js > 0.05
    for order in [(b, a, c), (c, b, a), (a, c, b)]:
        np.testing.assert_allclose(float(jensen_shannon(*map(t, order))), js, atol=1e-6)
    # Three one-hot-like predictions on different classes reach the bound log(3).
    peaked = [np.eye(3, dtype="float32")[[i]] * 60.0 for i in range(3)]
    np.testing.assert_allclose(float(jensen_shannon(*map(t, peaked))), math.log(3.0), atol=1e-4)
    assert float(jensen_shannon(*map(t, peaked))) <= math.log(3.0) + 1e-6


def _tiny_model(num_classes=4):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Conv2D(8, 3, kernel_initializer=keras.initializers.RandomNormal(stddev=1.0, seed=1))(x)
    # BatchNorm in training mode: the logits depend on which images share the forward pass.
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0, seed=2))(x)
    return keras.Model(inputs, outputs)


def test_augmix_jsd_loss_metrics_and_saving(tmp_path):
    keras.utils.set_random_seed(0)
    model, aug = _tiny_model(), AugMix(seed=0)
    trainer = AugMixJSD(model, aug)
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)
    # Learning rate 0: the one logged step is at the initial weights, so it can be recomputed.
    trainer.compile(optimizer=keras.optimizers.SGD(0.0), loss=ce,
                    metrics=[keras.metrics.CategoricalCrossentropy(from_logits=True, name="ce")])
    images, labels = random_images(8, 16, seed=1), one_hot(np.arange(8) % 4, 4)
    state = np_(aug.generator.state)
    logs = trainer.fit(images, labels, batch_size=8, epochs=1, verbose=0, shuffle=False).history
    # The generator is model state: it advanced (JAX: carried out of the stateless step).
    assert not np.array_equal(np_(aug.generator.state), state)

    views = aug(t(np.concatenate([images, images])), seed=state)
    logits = np_(model(keras.ops.concatenate([t(images), views], axis=0), training=True))
    clean, aug1, aug2 = logits[:8], logits[8:16], logits[16:]
    expected_ce = float(ce(t(labels), t(clean)))
    expected_js = _np_js([clean.astype("float64"), aug1, aug2])
    assert expected_js > 0.01  # the check below would not see a missing JS term otherwise
    np.testing.assert_allclose(logs["loss"][0], expected_ce + 12.0 * expected_js, rtol=2e-3)
    np.testing.assert_allclose(logs["ce"][0], expected_ce, rtol=1e-4)  # metrics on the clean logits
    np.testing.assert_allclose(logs["jsd"][0], expected_js, rtol=2e-3)

    # Evaluation and inference go straight to the model; the model saves and reloads on its own.
    evaluated = trainer.evaluate(images, labels, verbose=0, return_dict=True)
    assert "jsd" not in evaluated
    np.testing.assert_allclose(evaluated["loss"], float(ce(t(labels), model(t(images), training=False))), rtol=1e-4)
    np.testing.assert_allclose(np_(trainer.predict(images, verbose=0)), np_(model.predict(images, verbose=0)),
                               atol=1e-5)
    path = tmp_path / "model.keras"
    trainer.model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np_(reloaded.predict(images, verbose=0)), np_(model.predict(images, verbose=0)),
                               atol=1e-5)
