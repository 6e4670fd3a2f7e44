"""`GAN.train_step` under the JAX backend: a pure function of Keras' training state.

Keras' JAX trainer jits `train_step(state, data) -> (logs, state)` with
`state = (trainable, non_trainable, optimizer, metrics)`: lists of values in the order of
`gan.trainable_variables`, `gan.non_trainable_variables`, `gan.optimizer.variables` (the
MultiOptimizer over both optimizers) and `gan.metrics_variables`. Nothing may be read from or
written to a variable here: the trainer has emptied them for the length of the epoch. Every
piece of state the step changes is therefore carried in those lists: both networks' weights,
their BatchNorm statistics, the spectral-norm power-iteration vectors, the EMA weights, the
noise seed, both optimizers' slots and the metric totals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import keras

if TYPE_CHECKING:
    from kzoo.generative.gan import GAN


class _Values:
    """Current values of a list of variables, read and replaced by variable (not position)."""

    def __init__(self, variables: list[keras.Variable], values: list[Any]) -> None:
        self._index = {id(v): i for i, v in enumerate(variables)}
        self.values = list(values)

    def get(self, variables: list[keras.Variable]) -> list[Any]:
        return [self.values[self._index[id(v)]] for v in variables]

    def set(self, variables: list[keras.Variable], values: list[Any]) -> None:
        for v, value in zip(variables, values, strict=True):
            self.values[self._index[id(v)]] = value


def _noise(gan: GAN, state: _Values, batch: int) -> Any:
    seed = gan.seed_generator.state
    with keras.StatelessScope(state_mapping=[(seed, state.get([seed])[0])]) as scope:
        noise = keras.random.normal((batch, gan.latent_dim), seed=gan.seed_generator)
    state.set([seed], [scope.get_current_value(seed)])
    return noise


def train_step(gan: GAN, state: tuple[list[Any], ...], data: Any) -> tuple[dict[str, Any], tuple[list[Any], ...]]:
    """`d_steps` discriminator updates then one generator update (on the last D update's fakes
    with `gan.reuse_fakes`, else on fresh noise), without touching any variable."""
    trainable, non_trainable, optimizer_values, metric_values = state
    weights = _Values(gan.trainable_variables, trainable)
    buffers = _Values(gan.non_trainable_variables, non_trainable)
    slots = _Values(gan.optimizer.variables, optimizer_values)
    generator, discriminator = gan.generator, gan.discriminator
    g_vars, g_buffers = generator.trainable_variables, generator.non_trainable_variables
    d_vars, d_buffers = discriminator.trainable_variables, discriminator.non_trainable_variables
    g_opt, d_opt = gan.g_optimizer, gan.d_optimizer
    real = gan.real_images(data)
    records = []  # (tracker, value), applied to the metric state at the end

    for step in range(gan.d_steps):
        noise = _noise(gan, buffers, real.shape[0])
        g_weights, g_buffer_values = weights.get(g_vars), buffers.get(g_buffers)

        def g_forward(w: list[Any], g_buffer_values=g_buffer_values, noise=noise) -> tuple[Any, list[Any]]:
            return generator.stateless_call(w, g_buffer_values, noise, training=True)

        if gan.reuse_fakes and step == gan.d_steps - 1:
            # The generator update will reuse these fakes: keep this forward pass's pullback.
            fake, g_pullback, g_state = jax.vjp(g_forward, g_weights, has_aux=True)
        else:
            fake, g_state = g_forward(g_weights)
        buffers.set(g_buffers, g_state)
        (d_loss, (d_state, d_real, d_fake)), grads = jax.value_and_grad(gan.d_objective, has_aux=True)(
            weights.get(d_vars), buffers.get(d_buffers), real, fake)
        buffers.set(d_buffers, d_state)
        new_weights, new_slots = d_opt.stateless_apply(slots.get(d_opt.variables), grads, weights.get(d_vars))
        weights.set(d_vars, new_weights)
        slots.set(d_opt.variables, new_slots)
        records += [(gan.d_loss_tracker, d_loss), (gan.d_real_tracker, d_real), (gan.d_fake_tracker, d_fake)]

    if gan.reuse_fakes:
        # d loss / d fake through the updated discriminator, then back through the kept pullback.
        (g_loss, d_state), fake_grad = jax.value_and_grad(gan.fake_objective, has_aux=True)(
            fake, weights.get(d_vars), buffers.get(d_buffers))
        (grads,) = g_pullback(fake_grad)
    else:
        noise = _noise(gan, buffers, real.shape[0])
        (g_loss, (g_state, d_state)), grads = jax.value_and_grad(gan.g_objective, has_aux=True)(
            weights.get(g_vars), buffers.get(g_buffers), weights.get(d_vars), buffers.get(d_buffers), noise)
        buffers.set(g_buffers, g_state)
    buffers.set(d_buffers, d_state)
    new_weights, new_slots = g_opt.stateless_apply(slots.get(g_opt.variables), grads, weights.get(g_vars))
    weights.set(g_vars, new_weights)
    slots.set(g_opt.variables, new_slots)
    records.append((gan.g_loss_tracker, g_loss))

    steps = gan.optimizer.iterations  # the MultiOptimizer's own counter: fit steps
    if gan.ema_weights:
        buffers.set(gan.ema_weights, gan.ema_update(buffers.get(gan.ema_weights), new_weights, slots.get([steps])[0]))
    slots.set([steps], [slots.get([steps])[0] + 1])

    metric_vars = gan.metrics_variables
    with keras.StatelessScope(state_mapping=list(zip(metric_vars, metric_values))) as scope:
        for tracker, value in records:
            tracker.update_state(value)
        logs = {m.name: m.result() for m in gan.metrics}
    metric_values = [scope.get_current_value(v) for v in metric_vars]
    return logs, (weights.values, buffers.values, slots.values, metric_values)
