"""`GAN.train_step` under the TensorFlow backend: GradientTapes over `GAN`'s pure objectives.

Imported only when Keras runs on TensorFlow (JAX-only machines have no TF).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf
from keras import ops

if TYPE_CHECKING:
    from kzoo.generative.gan import GAN


def _values(variables: list[keras.Variable]) -> list[Any]:
    return [tf.convert_to_tensor(v) for v in variables]


def _assign(variables: list[keras.Variable], values: list[Any]) -> None:
    for v, value in zip(variables, values, strict=True):
        v.assign(value)


def _value_and_grad(objective: Callable[..., Any], weights: list[Any], *args: Any) -> tuple[Any, list[Any]]:
    with tf.GradientTape() as tape:
        tape.watch(weights)
        loss, aux = objective(weights, *args)
    return (loss, aux), tape.gradient(loss, weights)


def train_step(gan: GAN, data: Any) -> dict[str, Any]:
    """`d_steps` discriminator updates then one generator update (on the last D update's fakes
    with `gan.reuse_fakes`, else on fresh noise); returns the metric results."""
    generator, discriminator = gan.generator, gan.discriminator
    g_vars, g_buffers = generator.trainable_variables, generator.non_trainable_variables
    d_vars, d_buffers = discriminator.trainable_variables, discriminator.non_trainable_variables
    real = gan.real_images(data)
    batch = ops.shape(real)[0]
    for step in range(gan.d_steps):
        noise = keras.random.normal((batch, gan.latent_dim), seed=gan.seed_generator)
        if gan.reuse_fakes and step == gan.d_steps - 1:
            # The generator update will reuse these fakes: keep this forward pass on a tape.
            g_weights = _values(g_vars)
            with tf.GradientTape() as g_tape:
                g_tape.watch(g_weights)
                fake, g_state = generator.stateless_call(g_weights, _values(g_buffers), noise, training=True)
            _assign(g_buffers, g_state)
        else:
            fake = generator(noise, training=True)
        (d_loss, (d_state, d_real, d_fake)), grads = _value_and_grad(
            gan.d_objective, _values(d_vars), _values(d_buffers), real, fake)
        _assign(d_buffers, d_state)
        gan.d_optimizer.apply(grads, d_vars)
        gan.d_loss_tracker.update_state(d_loss)
        gan.d_real_tracker.update_state(d_real)
        gan.d_fake_tracker.update_state(d_fake)

    if gan.reuse_fakes:
        # d loss / d fake through the updated discriminator, then back through the taped generator.
        (g_loss, d_state), fake_grad = _value_and_grad(
            gan.fake_objective, fake, _values(d_vars), _values(d_buffers))
        grads = g_tape.gradient(fake, g_weights, output_gradients=fake_grad)
    else:
        noise = keras.random.normal((batch, gan.latent_dim), seed=gan.seed_generator)
        (g_loss, (g_state, d_state)), grads = _value_and_grad(
            gan.g_objective, _values(g_vars), _values(g_buffers), _values(d_vars), _values(d_buffers), noise)
        _assign(g_buffers, g_state)
    _assign(d_buffers, d_state)
    gan.g_optimizer.apply(grads, g_vars)
    gan.g_loss_tracker.update_state(g_loss)

    if gan.ema_weights:
        _assign(gan.ema_weights, gan.ema_update(_values(gan.ema_weights), _values(g_vars),
                                                gan.optimizer.iterations.value))
    gan.optimizer.iterations.assign_add(1)
    return {m.name: m.result() for m in gan.metrics}
