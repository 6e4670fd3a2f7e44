"""knn_predict (kzoo.selfsup.knn): weighted kNN votes in keras.ops, checked against numpy (TF and JAX)."""

import numpy as np
import pytest
from keras import ops

from kzoo.errors import KzooError
from kzoo.selfsup import knn_predict


def reference(bank, labels, queries, num_classes, k, temperature):
    """Plain numpy weighted kNN (Wu et al. 2018): cosine top-k, votes exp(sim / T) summed per class."""
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    sim = queries.astype(np.float64) @ bank.T.astype(np.float64)
    k = min(k, len(bank))
    scores = np.zeros((len(queries), num_classes))
    for i, row in enumerate(sim):
        for j in np.argsort(-row)[:k]:
            scores[i, labels[j]] += np.exp(row[j] / temperature)
    return scores


def _data(n=60, q=23, d=8, c=5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)).astype("float32"), rng.integers(0, c, n),
            rng.normal(size=(q, d)).astype("float32"))


@pytest.mark.parametrize("k,temperature,chunk", [(1, 0.1, 1024), (5, 0.1, 7), (20, 0.5, 4), (60, 0.07, 23),
                                                 (200, 1.0, 5)])
def test_matches_numpy_reference(k, temperature, chunk):
    bank, labels, queries = _data()
    got = ops.convert_to_numpy(knn_predict(bank, labels, queries, 5, k=k, temperature=temperature, chunk=chunk))
    assert got.shape == (23, 5)
    np.testing.assert_allclose(got, reference(bank, labels, queries, 5, k, temperature), rtol=1e-4, atol=1e-4)


def test_chunks_do_not_change_the_scores():
    bank, labels, queries = _data(n=40, q=50, c=3, seed=1)
    whole = ops.convert_to_numpy(knn_predict(bank, labels, queries, 3, k=10, chunk=1024))
    for chunk in (1, 3, 49, 50):
        np.testing.assert_allclose(ops.convert_to_numpy(knn_predict(bank, labels, queries, 3, k=10, chunk=chunk)),
                                   whole, rtol=1e-5)


def test_hand_made_case():
    # Bank: two class-0 points along +x, one class-1 point along +y; scale does not matter (cosine).
    bank = np.array([[1, 0], [10, 1], [0, 3]], "float32")
    labels = np.array([0, 0, 1])
    query = np.array([[0, 1]], "float32")  # similarities: 0, 1/sqrt(101), 1
    scores = ops.convert_to_numpy(knn_predict(bank, labels, query, 2, k=2, temperature=1.0))
    np.testing.assert_allclose(scores, [[np.exp(1 / np.sqrt(101)), np.e]], rtol=1e-5)
    # k=1: only the class-1 point votes; a third class nobody votes for scores 0.
    scores = ops.convert_to_numpy(knn_predict(bank, labels, query, 3, k=1, temperature=0.5))
    np.testing.assert_allclose(scores, [[0, np.exp(2), 0]], rtol=1e-5)


def test_k_larger_than_the_bank_is_clamped():
    bank, labels, queries = _data(n=6, q=4, c=2, seed=2)
    clamped = ops.convert_to_numpy(knn_predict(bank, labels, queries, 2, k=200, temperature=0.3))
    np.testing.assert_allclose(clamped, ops.convert_to_numpy(knn_predict(bank, labels, queries, 2, k=6,
                                                                         temperature=0.3)), rtol=1e-6)
    np.testing.assert_allclose(clamped, reference(bank, labels, queries, 2, 6, 0.3), rtol=1e-4)


def test_refusals_are_one_line():
    bank, labels, queries = _data()
    for kwargs, words in (({"k": 0}, "k=0"), ({"temperature": 0.0}, "temperature"), ({"chunk": 0}, "chunk=0")):
        with pytest.raises(KzooError, match=words) as err:
            knn_predict(bank, labels, queries, 5, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(KzooError, match="labels"):
        knn_predict(bank, labels[:-1], queries, 5)
    with pytest.raises(KzooError, match=r"\(Q, D\)"):
        knn_predict(bank, labels, queries[:, :3], 5)
