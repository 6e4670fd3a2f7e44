"""NT-Xent (SimCLR's loss) against a numpy reference written from the paper, and known values."""

import keras
import numpy as np
import pytest

from kzoo.errors import KzooError
from kzoo.losses import nt_xent


def reference(z1, z2, temperature):
    """Chen et al. 2020, eq. 1, averaged over all 2N anchors, in float64 with explicit loops
    (the log of the ratio taken as a difference of logs, so tiny temperatures do not overflow)."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z)
    losses = []
    for i in range(n):
        j = (i + n // 2) % n
        log_denominator = np.logaddexp.reduce([z[i] @ z[k] / temperature for k in range(n) if k != i])
        losses.append(log_denominator - z[i] @ z[j] / temperature)
    return float(np.mean(losses))


@pytest.mark.parametrize("batch,dim,temperature", [(2, 3, 0.5), (5, 8, 0.1), (16, 32, 1.0), (7, 4, 0.07)])
def test_matches_the_paper_definition(batch, dim, temperature):
    rng = np.random.default_rng(batch * dim)
    z1, z2 = rng.normal(size=(batch, dim)), rng.normal(size=(batch, dim))
    got = float(nt_xent(z1.astype("float32"), z2.astype("float32"), temperature))
    assert got == pytest.approx(reference(z1, z2, temperature), rel=1e-5, abs=1e-5)


def test_known_values():
    # Orthogonal pairs whose two views agree: the positive has cosine 1, the 2B - 2 negatives 0.
    eye = np.eye(4, dtype="float32")
    assert float(nt_xent(eye, eye, 1.0)) == pytest.approx(np.log(np.e + 6) - 1, abs=1e-6)
    assert float(nt_xent(eye, eye, 0.5)) == pytest.approx(np.log(np.exp(2) + 6) - 2, abs=1e-6)
    # Collapse: all 2B embeddings equal -> every candidate ties, loss = log(2B - 1).
    same = np.ones((5, 3), "float32")
    assert float(nt_xent(same, same, 0.2)) == pytest.approx(np.log(9), abs=1e-5)
    # Scale does not matter (cosine similarity).
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(6, 5)).astype("float32"), rng.normal(size=(6, 5)).astype("float32")
    assert float(nt_xent(100 * z1, 0.01 * z2, 0.5)) == pytest.approx(float(nt_xent(z1, z2, 0.5)), rel=1e-5)


def test_self_similarity_is_masked():
    # Each anchor is its own best match (cosine 1); if it were not masked out, a tiny temperature
    # would make the loss ~ (1 - s_pos) / T; masked, anchors whose views agree give ~0.
    rng = np.random.default_rng(1)
    z = rng.normal(size=(8, 16)).astype("float32")
    assert float(nt_xent(z, z, 0.01)) < 1e-3


def test_stable_at_small_temperature_and_gradients_are_finite():
    rng = np.random.default_rng(2)
    z1 = keras.Variable(rng.normal(size=(8, 16)).astype("float32"))
    z2 = rng.normal(size=(8, 16)).astype("float32")
    value = float(nt_xent(z1, z2, 1e-3))
    assert np.isfinite(value) and value == pytest.approx(reference(keras.ops.convert_to_numpy(z1), z2, 1e-3),
                                                          rel=1e-4)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = nt_xent(z1.value, z2, 1e-3)
        grad = tape.gradient(loss, z1.value)
    else:
        import jax

        grad = jax.grad(lambda a: nt_xent(a, z2, 1e-3))(keras.ops.convert_to_numpy(z1))
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(grad)))


@pytest.mark.parametrize("temperature", [0.0, -0.5])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(KzooError, match="temperature must be > 0"):
        nt_xent(np.ones((2, 2), "float32"), np.ones((2, 2), "float32"), temperature)
