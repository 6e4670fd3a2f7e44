"""AdaptiveLoss (class-balanced focal loss), class counts and the loss factory."""

import numpy as np
import pytest
import keras
from keras import ops

from kzoo.errors import KzooError
from kzoo.losses import (
    AdaptiveLoss,
    class_counts_from_labels,
    effective_number_weights,
    get_loss,
)


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _data(n=6, c=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2, (n, c)).astype("float32")
    labels = np.eye(c, dtype="float32")[rng.integers(0, c, n)]
    return labels, logits


def test_gamma_zero_uniform_weights_is_cross_entropy():
    y, logits = _data()
    ce = keras.losses.CategoricalCrossentropy(from_logits=True)(y, logits)
    got = AdaptiveLoss(alpha=1.0, gamma=0.0)(y, logits)
    np.testing.assert_allclose(_np(got), _np(ce), rtol=1e-6)
    uniform = AdaptiveLoss(alpha=1.0, gamma=0.0, class_counts=[7, 7, 7, 7])(y, logits)  # equal counts
    np.testing.assert_allclose(_np(uniform), _np(ce), rtol=1e-6)
    probs = _np(ops.softmax(logits))
    np.testing.assert_allclose(_np(AdaptiveLoss(alpha=1.0, gamma=0.0, from_logits=False)(y, probs)), _np(ce), rtol=1e-5)


def test_effective_number_weights_formula():
    counts = np.array([1000, 100, 10, 1])
    beta = 0.99
    raw = (1 - beta) / (1 - beta ** counts)
    np.testing.assert_allclose(effective_number_weights(counts, beta), raw / raw.sum() * 4, rtol=1e-6)
    np.testing.assert_allclose(effective_number_weights(counts, 0.0), np.ones(4))
    w = effective_number_weights([500, 50, 5], 0.999)
    assert w[0] < w[1] < w[2] and w.sum() == pytest.approx(3.0)


def test_focal_and_weights_match_numpy():
    y, logits = _data(seed=1)
    counts = [40, 10, 5, 1]
    loss = AdaptiveLoss(alpha=0.25, gamma=2.0, beta=0.9, class_counts=counts)
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    w = effective_number_weights(counts, 0.9)
    per_sample = -0.25 * (y * w * (1 - np.exp(logp)) ** 2 * logp).sum(axis=1)
    np.testing.assert_allclose(_np(loss(y, logits)), per_sample.mean(), rtol=1e-5)
    # integer labels are one-hot encoded
    np.testing.assert_allclose(_np(loss(np.argmax(y, axis=1), logits)), per_sample.mean(), rtol=1e-5)
    # explicit class_weights are used as given
    explicit = AdaptiveLoss(alpha=0.25, gamma=2.0, class_weights=w)
    np.testing.assert_allclose(_np(explicit(y, logits)), per_sample.mean(), rtol=1e-5)


def test_focusing_down_weights_easy_examples():
    y = np.eye(3, dtype="float32")[[0]]
    easy = np.array([[6.0, 0.0, 0.0]], "float32")
    ce = _np(AdaptiveLoss(alpha=1.0, gamma=0.0)(y, easy))
    focal = _np(AdaptiveLoss(alpha=1.0, gamma=2.0)(y, easy))
    assert focal < ce * 1e-3


def test_class_counts_helper():
    assert class_counts_from_labels(np.array([0, 2, 2, 1, 2])).tolist() == [1, 1, 3]
    assert class_counts_from_labels([1, 1], num_classes=4).tolist() == [0, 2, 0, 0]
    onehot = np.eye(3, dtype="float32")[[0, 2, 2]]
    assert class_counts_from_labels(onehot).tolist() == [1.0, 0.0, 2.0]
    batches = [(np.zeros((2, 4, 4, 3)), onehot[:2]), (np.zeros((1, 4, 4, 3)), onehot[2:])]
    assert class_counts_from_labels(batches).tolist() == [1.0, 0.0, 2.0]
    assert class_counts_from_labels(ops.convert_to_tensor(onehot)).tolist() == [1.0, 0.0, 2.0]
    with pytest.raises(KzooError, match="num_classes"):
        class_counts_from_labels([0, 5], num_classes=3)


def test_compile_fit_and_serialise():
    x = np.random.default_rng(2).normal(size=(8, 5)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0, 0, 0, 1, 0]]
    loss = get_loss("adaptive", class_counts=class_counts_from_labels(y))
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.compile(optimizer="sgd", loss=loss)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    config = keras.losses.serialize(loss)
    clone = keras.losses.deserialize(config)
    assert isinstance(clone, AdaptiveLoss) and clone.class_weights == pytest.approx(loss.class_weights)
    assert clone.get_config()["class_counts"] == [5.0, 2.0, 1.0]


def test_factory_and_errors():
    ce = get_loss("crossentropy", label_smoothing=0.1)
    assert isinstance(ce, keras.losses.CategoricalCrossentropy) and ce.get_config()["from_logits"] is True
    assert isinstance(get_loss("adaptive"), AdaptiveLoss)
    with pytest.raises(KzooError, match="unknown loss"):
        get_loss("hinge")
    with pytest.raises(KzooError, match="adaptive"):
        get_loss("adaptive", gama=2.0)
    with pytest.raises(KzooError, match="not both"):
        AdaptiveLoss(class_counts=[1, 2], class_weights=[1, 1])
    with pytest.raises(KzooError, match="beta"):
        AdaptiveLoss(beta=1.0, class_counts=[1, 2])
    y, logits = _data(c=4)
    with pytest.raises(KzooError, match="class weights"):
        AdaptiveLoss(class_counts=[1, 2, 3])(y, logits)
