"""`GAN`: a generator and a discriminator trained together by one `model.fit`.

Each fit step takes a batch of real images (float pixels in [0, 255], or `(images, labels)`
with the labels ignored), makes `d_steps` discriminator updates, each on fresh noise and the
same real batch, then one generator update. By default (`reuse_fakes=True`) the generator update
differentiates the fake batch of the last discriminator update through the updated
discriminator, as PyTorch's DCGAN example does, so a step runs the generator forward once
instead of twice; `reuse_fakes=False` draws fresh noise for it, as the keras.io example does.
The two networks have their own optimizers (and learning rates); `d_loss`, `g_loss`, `d_real`
and `d_fake` (mean discriminator logits on real and generated images) show in the progress bar
and in the history.

Keras has no backend-agnostic way to take two losses' gradients with respect to two variable
sets in one step, so the step itself is written twice, behind this one class:
`_step_tf.py` (GradientTape) and `_step_jax.py` (stateless, through Keras' JAX
`train_step(state, data)` contract). Everything else here is `keras.ops`.

Example:
    >>> import keras
    >>> from kzoo.generative import GAN, build_gan_networks, to_pixels
    >>> generator, discriminator = build_gan_networks("sngan_32", latent_dim=128)  # doctest: +SKIP
    >>> gan = GAN(generator, discriminator, latent_dim=128, loss="hinge", ema_decay=0.999)  # doctest: +SKIP
    >>> gan.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.9),
    ...             d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.0, beta_2=0.9))  # doctest: +SKIP
    >>> history = gan.fit(train_images, epochs=10)  # doctest: +SKIP
    >>> pixels = to_pixels(gan.generate(64, seed=0))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError
from kzoo.generative.losses import GAN_LOSSES, GanLoss
from kzoo.generative.networks import from_pixels

log = logging.getLogger("kzoo.generative")


class _OptimizerPair(keras.optimizers.MultiOptimizer):
    """A GAN's `model.optimizer`: the generator's and the discriminator's optimizers as one.

    Keras' trainers need one `model.optimizer` (the JAX one carries `model.optimizer.variables`
    through the step); this is it, and its `iterations` counts fit steps. The train steps apply
    the two optimizers separately. It saves only its own variables: the two optimizers' state is
    saved once, as the GAN's `g_optimizer` and `d_optimizer`, not a second time here.
    """

    def _own_variables(self) -> list[keras.Variable]:
        inner = sum(len(optimizer.variables) for optimizer in self.optimizers)
        return self.variables[:len(self.variables) - inner]

    def save_own_variables(self, store: Any) -> None:
        for i, variable in enumerate(self._own_variables()):
            store[str(i)] = keras.ops.convert_to_numpy(variable)

    def load_own_variables(self, store: Any) -> None:
        for i, variable in enumerate(self._own_variables()):
            variable.assign(store[str(i)])


@keras.saving.register_keras_serializable(package="kzoo")
class GAN(keras.Model):
    """A generator/discriminator pair trained by `fit`, with an optional EMA of the generator.

    Args:
        generator: model mapping noise (batch, latent_dim) to images in [-1, 1].
        discriminator: model mapping images in [-1, 1] to logits (batch, 1).
        latent_dim: size of the generator's noise input.
        loss: a name in `GAN_LOSSES` ("hinge" or "non_saturating").
        d_steps: discriminator updates per generator update.
        ema_decay: when set (e.g. 0.999), an exponential moving average of the generator's
            trainable weights is kept, updated after every generator step (the decay warms up:
            `ema_update`), and used by `sample` and `generate` by default. The generator's
            BatchNorm statistics are shared, not averaged.
        seed: seed of the training noise (a `keras.random.SeedGenerator`, saved with the model).
        reuse_fakes: the generator update reuses the last discriminator update's fakes (and the
            generator forward pass that made them) instead of generating a fresh batch.

    Calling the model on noise runs the (non-EMA) generator.

    Example:
        >>> gan = GAN(generator, discriminator, latent_dim=128, d_steps=1)  # doctest: +SKIP
        >>> gan.compile(g_optimizer="adam", d_optimizer="adam")  # doctest: +SKIP
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, latent_dim: int,
                 loss: str = "hinge", d_steps: int = 1, ema_decay: float | None = None, seed: int = 0,
                 reuse_fakes: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if loss not in GAN_LOSSES:
            raise KzooError(f"GAN: unknown loss {loss!r}; known: {', '.join(sorted(GAN_LOSSES))}")
        if int(d_steps) != d_steps or d_steps < 1:
            raise KzooError(f"GAN: d_steps must be a positive integer, got {d_steps!r}")
        if ema_decay is not None and not 0.0 <= ema_decay < 1.0:
            raise KzooError(f"GAN: ema_decay must be in [0, 1) or None, got {ema_decay!r}")
        noise_shape = tuple(generator.inputs[0].shape)[1:] if getattr(generator, "inputs", None) else None
        if noise_shape is not None and noise_shape != (latent_dim,):
            raise KzooError(f"GAN: latent_dim={latent_dim} but the generator takes noise of shape {noise_shape}")
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.loss_name = loss
        self.d_steps = int(d_steps)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.seed = seed
        self.reuse_fakes = bool(reuse_fakes)
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise_seed")
        ema_weights = []
        if self.ema_decay is not None:
            for i, weight in enumerate(generator.trainable_variables):
                ema = self.add_weight(shape=weight.shape, dtype=weight.dtype, initializer="zeros",
                                      trainable=False, name=f"ema_{i}")
                # A copy: under JAX `assign` would share the weight's buffer, and the trainer
                # donates every state buffer to the jitted step, so one buffer twice fails.
                ema.assign(ops.copy(weight))
                ema_weights.append(ema)
        self.ema_weights = ema_weights
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        # Both networks are built and the GAN's own variables exist: nothing is left for
        # `fit` to build by tracing `call` on a batch of images (which `call` does not take).
        self.built = True

    @property
    def gan_loss(self) -> GanLoss:
        return GAN_LOSSES[self.loss_name]

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    def call(self, noise: Any, training: bool = False) -> Any:
        return self.generator(noise, training=training)

    # ------------------------------------------------------------------------------ compile

    def compile(self, g_optimizer: Any = "adam", d_optimizer: Any = "adam", **kwargs: Any) -> None:
        """Set the generator's and the discriminator's optimizers (two instances, or names).

        Other keywords (`jit_compile`, `run_eagerly`, `steps_per_execution`) go to
        `keras.Model.compile`; a GAN takes no `loss` or `metrics` there.

        Example:
            >>> gan.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
            ...             d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5))  # doctest: +SKIP
        """
        for bad in ("optimizer", "loss", "metrics", "loss_weights", "weighted_metrics"):
            if bad in kwargs:
                raise KzooError(f"GAN.compile takes g_optimizer and d_optimizer, not {bad}=")
        g_optimizer, d_optimizer = keras.optimizers.get(g_optimizer), keras.optimizers.get(d_optimizer)
        if g_optimizer is d_optimizer:
            raise KzooError("GAN.compile: g_optimizer and d_optimizer must be two optimizer instances")
        # Built here on each network's own variables, so each optimizer's variable order is the
        # order of `generator.trainable_variables` / `discriminator.trainable_variables`, the
        # order both train steps pass gradients in.
        g_optimizer.build(self.generator.trainable_variables)
        d_optimizer.build(self.discriminator.trainable_variables)
        generator_ids = {id(v) for v in self.generator.trainable_variables}

        def owner(variable: keras.Variable) -> keras.optimizers.Optimizer:
            return g_optimizer if id(variable) in generator_ids else d_optimizer

        pair = _OptimizerPair(owner, name="gan_optimizers")
        super().compile(optimizer=pair, auto_scale_loss=False, **kwargs)
        pair.build(self.trainable_variables)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    def optimizers_by_name(self) -> dict[str, keras.optimizers.Optimizer]:
        """{"g": generator's optimizer, "d": discriminator's}: what kzoo's callbacks log (`lr_g`,
        `lr_d`) and what `TimeBudget` sets. A method, so saving does not walk it a second time."""
        return {"g": self.g_optimizer, "d": self.d_optimizer}

    def get_compile_config(self) -> dict[str, Any] | None:
        if not self.compiled:
            return None
        return {"g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
                "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer)}

    def compile_from_config(self, config: dict[str, Any]) -> None:
        self.compile(g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
                     d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]))

    # ------------------------------------------------------------------------------ training

    def train_step(self, *args: Any) -> Any:
        backend = keras.backend.backend()
        if backend == "jax":
            from kzoo.generative._step_jax import train_step
        elif backend == "tensorflow":
            from kzoo.generative._step_tf import train_step
        else:
            raise KzooError(f"GAN training runs under the tensorflow and jax backends, not {backend}")
        return train_step(self, *args)

    def test_step(self, *args: Any) -> Any:
        raise KzooError("GAN.fit takes no validation data, and GAN.evaluate is not defined: "
                        "score samples with kzoo.generative.fid / kid")

    def real_images(self, data: Any) -> Any:
        """The batch's images mapped from [0, 255] pixels to [-1, 1]; labels are dropped."""
        if isinstance(data, dict):
            images = data["images"]
        else:
            images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return from_pixels(images)

    # The two objectives are pure functions of the weights they differentiate and of the state
    # they carry, written once for both train steps (which only differ in how they take the
    # gradient and store the results). Calling the discriminator statelessly on both backends
    # also gives one spectral normalisation: Keras' SpectralNormalization overwrites its kernel
    # with W / sigma(W) in a training call, which `stateless_call` discards, so the raw W stays
    # the variable and the gradient flows through W / sigma(W), as in Miyato et al. (a stateful
    # TF call would instead rescale W in place and differentiate around sigma).

    def d_objective(self, d_weights: list[Any], d_state: list[Any], real: Any, fake: Any
                    ) -> tuple[Any, tuple[list[Any], Any, Any]]:
        """Discriminator loss on a real and a fake batch; aux: (new D state, mean real logit, mean fake logit)."""
        discriminator = self.discriminator
        real_logits, d_state = discriminator.stateless_call(d_weights, d_state, real, training=True)
        fake_logits, d_state = discriminator.stateless_call(d_weights, d_state, fake, training=True)
        return self.gan_loss.d_loss(real_logits, fake_logits), (d_state, ops.mean(real_logits), ops.mean(fake_logits))

    def g_objective(self, g_weights: list[Any], g_state: list[Any], d_weights: list[Any], d_state: list[Any],
                    noise: Any) -> tuple[Any, tuple[list[Any], list[Any]]]:
        """Generator loss on `noise`; aux: (new G state, new D state)."""
        fake, g_state = self.generator.stateless_call(g_weights, g_state, noise, training=True)
        g_loss, d_state = self.fake_objective(fake, d_weights, d_state)
        return g_loss, (g_state, d_state)

    def fake_objective(self, fake: Any, d_weights: list[Any], d_state: list[Any]) -> tuple[Any, list[Any]]:
        """Generator loss of a generated batch as the discriminator judges it; aux: new D state."""
        fake_logits, d_state = self.discriminator.stateless_call(d_weights, d_state, fake, training=True)
        return self.gan_loss.g_loss(fake_logits), d_state

    def ema_update(self, ema_values: list[Any], weights: list[Any], step: Any) -> list[Any]:
        """New EMA values from the current ones and the generator's new weights, after `step`
        earlier fit steps. The decay warms up as in TensorFlow's ExponentialMovingAverage with
        `num_updates`: min(ema_decay, (1 + n) / (10 + n)) at the n-th update. Without it a 0.999
        average still weighs the random initial weights 0.6 after 500 steps, and a short CPU
        run's samples (and FID) showed only that flat grey start.

        Example:
            >>> gan.ema_update([0.0], [1.0], step=0)  # first update: decay 2/11  # doctest: +SKIP
            [0.8181818]
        """
        updates = ops.cast(step, "float32") + 1.0
        decay = ops.minimum(self.ema_decay, (1.0 + updates) / (10.0 + updates))
        return [ops.cast(decay, e.dtype) * e + ops.cast(1.0 - decay, e.dtype) * ops.cast(w, e.dtype)
                for e, w in zip(ema_values, weights)]

    # ------------------------------------------------------------------------------ sampling

    def sample(self, noise: Any, ema: bool = True) -> Any:
        """Images in [-1, 1] for `noise` (batch, latent_dim), generator in inference mode.

        With `ema=True` (and an EMA kept: `ema_decay` set) the EMA weights are used, else the
        generator's own.

        Example:
            >>> images = gan.sample(keras.random.normal((16, 128), seed=1))  # doctest: +SKIP
        """
        if ema and self.ema_weights:
            images, _ = self.generator.stateless_call(
                [w.value for w in self.ema_weights],
                [v.value for v in self.generator.non_trainable_variables],
                noise, training=False)
            return images
        return self.generator(noise, training=False)

    def generate(self, n: int, seed: int = 0, ema: bool = True, batch_size: int = 256) -> np.ndarray:
        """`n` images in [-1, 1] as float32 numpy, from `keras.random.normal((n, latent_dim), seed=seed)`.

        Example:
            >>> fakes = to_pixels(gan.generate(10_000, seed=0))  # doctest: +SKIP
        """
        if n < 1 or batch_size < 1:
            raise KzooError(f"GAN.generate: n and batch_size must be positive, got {n}, {batch_size}")
        noise = keras.random.normal((n, self.latent_dim), seed=seed)
        batches = [ops.convert_to_numpy(self.sample(noise[i:i + batch_size], ema=ema))
                   for i in range(0, n, batch_size)]
        return np.concatenate(batches).astype("float32")

    # ------------------------------------------------------------------------------ saving

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "trainable": self.trainable,
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "latent_dim": self.latent_dim, "loss": self.loss_name, "d_steps": self.d_steps,
                "ema_decay": self.ema_decay, "seed": self.seed, "reuse_fakes": self.reuse_fakes}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> GAN:
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key], custom_objects=custom_objects)
        return cls(**config)
