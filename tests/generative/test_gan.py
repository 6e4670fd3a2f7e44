"""GANs trained by one `model.fit` (kzoo.generative): losses, networks, the two-optimizer step,
spectral-norm and EMA state, saving. Runs under both backends."""

import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.generative import GAN, GAN_LOSSES, build_gan_networks, from_pixels, to_pixels

LATENT = 4


def _numpy(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _changed(before, after):
    return any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def _softplus(x):
    return np.logaddexp(0.0, x)


# ------------------------------------------------------------------------------------------- losses


@pytest.mark.parametrize("name", ["hinge", "non_saturating"])
def test_gan_losses_match_numpy(name):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(scale=2.0, size=(7, 1)), rng.normal(scale=2.0, size=(7, 1))
    if name == "hinge":
        d_expected = np.maximum(0, 1 - real).mean() + np.maximum(0, 1 + fake).mean()
        g_expected = -fake.mean()
    else:
        # Binary cross-entropy written out: real labelled 1, fake 0; G wants its fakes called real.
        sigmoid = 1 / (1 + np.exp(-np.concatenate([real, fake])))
        d_expected = -np.log(sigmoid[:7]).mean() - np.log(1 - sigmoid[7:]).mean()
        g_expected = _softplus(-fake).mean()
    loss = GAN_LOSSES[name]
    assert float(loss.d_loss(real.astype("float32"), fake.astype("float32"))) == pytest.approx(d_expected, rel=1e-5)
    assert float(loss.g_loss(fake.astype("float32"))) == pytest.approx(g_expected, rel=1e-5)


# ----------------------------------------------------------------------------------------- networks


WIDTH = 2  # every test builds the registered networks at this width: under JAX, equal shapes reuse compiles

# The published networks (width 64); at width w every count but the RGB output and the logit scales by w / 64.
PUBLISHED = {
    "dcgan_32": ([8192, 256, 128, 3], [64, 128, 256, 1]),
    "sngan_32": ([8192, 256, 128, 64, 3], [64, 64, 128, 128, 256, 256, 512, 1]),
}


def _units(model):
    kinds = (keras.layers.Dense, keras.layers.Conv2D, keras.layers.Conv2DTranspose)
    layers = [getattr(layer, "layer", layer) for layer in model.layers]  # look inside SpectralNormalization
    return [layer.units if isinstance(layer, keras.layers.Dense) else layer.filters
            for layer in layers if isinstance(layer, kinds)]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_registered_networks_have_the_published_layers_and_ranges(name):
    generator, discriminator = build_gan_networks(name, latent_dim=LATENT, width=WIDTH)
    g_units, d_units = ([c * WIDTH // 64 if c > 3 else c for c in units] for units in PUBLISHED[name])
    assert _units(generator) == g_units
    assert _units(discriminator) == d_units
    if name == "sngan_32":
        wrapped = [layer.layer for layer in discriminator.layers
                   if isinstance(layer, keras.layers.SpectralNormalization)]
        assert len(wrapped) == 8  # every conv and the dense
        assert [(conv.kernel_size[0], conv.strides[0]) for conv in wrapped[:-1]] == [(3, 1), (4, 2)] * 3 + [(3, 1)]

    # `predict` compiles each network once (eager JAX would compile every op); the training-mode
    # calls run inside the fit below.
    images = generator.predict(np.random.default_rng(0).normal(size=(3, LATENT)) * 50.0, verbose=0)
    assert images.shape == (3, 32, 32, 3)
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0
    assert discriminator.predict(images, verbose=0).shape == (3, 1)


def test_pixel_helpers_invert_each_other():
    pixels = np.array([0.0, 63.75, 127.5, 255.0], "float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(from_pixels(pixels)), [-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(to_pixels(from_pixels(pixels))), pixels, atol=1e-4)
    assert keras.ops.convert_to_numpy(to_pixels(np.array([-1.5, 1.5]))).tolist() == [0.0, 255.0]


def test_bad_names_and_arguments_are_kzoo_errors():
    with pytest.raises(KzooError, match="dcgan_32"):
        build_gan_networks("stylegan")
    generator = keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(3)])
    discriminator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(KzooError, match="loss"):
        GAN(generator, discriminator, latent_dim=LATENT, loss="wasserstein")
    with pytest.raises(KzooError, match="latent_dim"):
        GAN(generator, discriminator, latent_dim=LATENT + 1)
    gan = GAN(generator, discriminator, latent_dim=LATENT)
    adam = keras.optimizers.Adam()
    with pytest.raises(KzooError, match="two optimizer instances"):
        gan.compile(g_optimizer=adam, d_optimizer=adam)


# ------------------------------------------------------------------------------------------- fit


@pytest.fixture(scope="module")
def trained():
    """One tiny SNGAN (BN in G, spectral norm in D), fitted in three phases of 2 steps each:
    both learning rates 0, then only D's raised, then G's too. One compiled step serves all three."""
    keras.utils.set_random_seed(0)
    generator, discriminator = build_gan_networks("sngan_32", latent_dim=LATENT, width=WIDTH)
    gan = GAN(generator, discriminator, latent_dim=LATENT, d_steps=2, ema_decay=0.5, seed=3)
    gan.compile(g_optimizer=keras.optimizers.Adam(0.0), d_optimizer=keras.optimizers.Adam(0.0))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, 8)
    vector_u = [layer.vector_u for layer in discriminator.layers if hasattr(layer, "vector_u")]

    def snapshot():
        return {"g": _numpy(generator.trainable_variables), "d": _numpy(discriminator.trainable_variables),
                "g_bn": _numpy(generator.non_trainable_variables), "u": _numpy(vector_u),
                "ema": _numpy(gan.ema_weights), "seed": _numpy([gan.seed_generator.state])[0]}

    # (images, labels) batches, labels ignored; the same batch structure each time, so that the
    # learning rates, which are optimizer state, change without a retrace.
    phases = {"initial": snapshot()}
    gan.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    phases["frozen"] = snapshot()
    gan.d_optimizer.learning_rate.assign(1e-2)
    gan.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    phases["d_only"] = snapshot()
    gan.g_optimizer.learning_rate.assign(1e-2)
    history = gan.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    phases["final"] = snapshot()
    return gan, phases, history.history


def test_fit_logs_both_losses_and_the_mean_logits(trained):
    _, _, history = trained
    assert set(history) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(values).all() for values in history.values())


def test_real_batches_are_images_or_tuples_or_dicts_mapped_to_minus_one_one(trained):
    gan, _, _ = trained
    pixels = np.full((2, 32, 32, 3), 255.0, "float32")
    for batch in (pixels, (pixels, np.zeros(2)), {"images": pixels, "labels": np.zeros(2)}):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(gan.real_images(batch)), 1.0)


def test_learning_rates_are_separate_and_both_networks_train(trained):
    _, phases, _ = trained
    initial, frozen, d_only, final = (phases[k] for k in ("initial", "frozen", "d_only", "final"))
    assert not _changed(initial["g"], frozen["g"]) and not _changed(initial["d"], frozen["d"])
    assert _changed(frozen["d"], d_only["d"]), "D lr > 0 left D unchanged"
    assert not _changed(frozen["g"], d_only["g"]), "G lr 0 changed G: the learning rates are not separate"
    assert _changed(d_only["g"], final["g"]) and _changed(d_only["d"], final["d"])


def test_d_steps_discriminator_updates_per_generator_update(trained):
    gan, _, _ = trained
    assert int(gan.g_optimizer.iterations) == 6  # 3 fits x 2 steps
    assert int(gan.d_optimizer.iterations) == 12
    assert int(gan.optimizer.iterations) == 6  # model.optimizer counts fit steps


def test_batchnorm_statistics_and_the_noise_seed_are_carried(trained):
    _, phases, _ = trained
    # Learning rates 0, yet G's moving statistics moved: the step keeps BatchNorm state (under JAX
    # it is carried through the jitted step, not written to the variables).
    assert _changed(phases["initial"]["g_bn"], phases["frozen"]["g_bn"])
    # Fresh noise for each of the 2 D updates, in each of the 6 steps; the G update reuses the
    # last D update's fakes (reuse_fakes, the default) and draws none.
    drawn = phases["final"]["seed"].astype("int64") - phases["initial"]["seed"].astype("int64")
    assert drawn.sum() == 6 * 2


def test_spectral_norm_vectors_are_carried_while_kernels_stay_raw(trained):
    _, phases, _ = trained
    # Both learning rates 0: the power iteration still moved every u (carried as state through
    # the step, under JAX too), and no kernel was rescaled in place.
    assert all(_changed([a], [b]) for a, b in zip(phases["initial"]["u"], phases["frozen"]["u"]))
    assert not _changed(phases["initial"]["d"], phases["frozen"]["d"])


def test_ema_follows_the_generator_and_generate_uses_it(trained):
    gan, phases, _ = trained
    assert _changed(phases["initial"]["ema"], phases["final"]["ema"])
    assert _changed(phases["final"]["g"], phases["final"]["ema"])
    noise = keras.random.normal((4, LATENT), seed=7)
    raw = keras.ops.convert_to_numpy(gan.generator(noise, training=False))
    np.testing.assert_allclose(gan.generate(4, seed=7, ema=False, batch_size=2), raw, atol=1e-6)
    assert not np.allclose(gan.generate(4, seed=7), raw, atol=1e-4)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("reuse_fakes", [True, False])
def test_one_step_is_the_sgd_update_of_both_objectives(reuse_fakes):
    """A linear G and D, SGD, one fit step, against the update worked out by hand: D descends
    BCE on the real batch and on G(z1); then G descends -log D(G(z)) through the *updated* D,
    with z = z1 (the D update's own fakes) when reusing, else a second draw z2."""
    keras.utils.set_random_seed(1)
    generator = keras.Sequential([keras.Input((LATENT,)), keras.layers.Dense(3)])
    discriminator = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    gan = GAN(generator, discriminator, latent_dim=LATENT, loss="non_saturating", seed=5, reuse_fakes=reuse_fakes)
    lr_g, lr_d = 0.3, 0.2
    gan.compile(g_optimizer=keras.optimizers.SGD(lr_g), d_optimizer=keras.optimizers.SGD(lr_d))
    (wg, bg), (wd, bd) = _numpy(generator.trainable_variables), _numpy(discriminator.trainable_variables)
    pixels = np.random.default_rng(0).uniform(0, 255, (6, 3)).astype("float32")
    gan.fit(pixels, batch_size=6, epochs=1, shuffle=False, verbose=0)

    seeds = keras.random.SeedGenerator(5)
    z1, z2 = (keras.ops.convert_to_numpy(keras.random.normal((6, LATENT), seed=seeds)).astype("float64")
              for _ in range(2))
    real = pixels / 127.5 - 1.0
    fake = z1 @ wg + bg
    s_real, s_fake = real @ wd + bd, fake @ wd + bd  # D logits, (6, 1)
    d_real, d_fake = -_sigmoid(-s_real) / 6, _sigmoid(s_fake) / 6  # d loss / d logit
    wd1 = wd - lr_d * (real.T @ d_real + fake.T @ d_fake)
    bd1 = bd - lr_d * (d_real.sum(0) + d_fake.sum(0))
    z = z1 if reuse_fakes else z2
    g_fake = z @ wg + bg
    d_logit = -_sigmoid(-(g_fake @ wd1 + bd1)) / 6
    d_image = d_logit @ wd1.T  # through the updated discriminator
    wg1, bg1 = wg - lr_g * (z.T @ d_image), bg - lr_g * d_image.sum(0)
    got = _numpy(generator.trainable_variables) + _numpy(discriminator.trainable_variables)
    for name, value, expected in zip(("wg", "bg", "wd", "bd"), got, (wg1, bg1, wd1, bd1)):
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5, err_msg=name)
    drawn = _numpy([gan.seed_generator.state])[0].astype("int64") - _numpy([seeds.state])[0].astype("int64")
    assert drawn.sum() == (-1 if reuse_fakes else 0), "the G update drew noise although it reuses the fakes"


def test_save_and_safe_load_round_trip(trained, tmp_path):
    gan, _, _ = trained
    gan.save(tmp_path / "gan.keras")
    loaded = keras.saving.load_model(tmp_path / "gan.keras", safe_mode=True)
    assert isinstance(loaded, GAN)
    assert (loaded.d_steps, loaded.loss_name, loaded.ema_decay, loaded.reuse_fakes) == (2, "hinge", 0.5, True)
    for ema in (True, False):
        np.testing.assert_allclose(loaded.generate(4, seed=1, ema=ema), gan.generate(4, seed=1, ema=ema), atol=1e-6)
    assert int(loaded.d_optimizer.iterations) == 12  # optimizer state came back too
    assert float(loaded.g_optimizer.learning_rate) == pytest.approx(1e-2)


def test_the_ema_decay_warms_up_then_stays_at_its_setting():
    gan = GAN(*build_gan_networks("dcgan_32", latent_dim=LATENT, width=WIDTH), latent_dim=LATENT, ema_decay=0.999)
    for step, decay in ((0, 2 / 11), (89, 91 / 100), (20_000, 0.999)):
        (value,) = gan.ema_update([np.zeros(3, "float32")], [np.ones(3, "float32")], step)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(value), 1.0 - decay, rtol=1e-4)
