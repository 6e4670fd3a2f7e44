"""FID and KID (kzoo.generative): closed forms, unbiasedness, and the feature extractors."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from tiny_models import tiny_model

from kzoo.errors import KzooError
from kzoo.generative import (
    FeatureExtractor,
    feature_statistics,
    fid,
    frechet_distance,
    kernel_inception_distance,
    kid,
)


def _correlated(n, d, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) / np.sqrt(d) + rng.normal(size=d)


# ---------------------------------------------------------------------------------------------- FID


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    a, b = _correlated(400, 32, 0), _correlated(300, 32, 1)
    scale = np.trace(np.cov(a, rowvar=False))
    assert abs(fid(a, a)) < 1e-6 * scale
    ab, ba = fid(a, b), fid(b, a)
    assert ab > 1.0
    assert ab == pytest.approx(ba, rel=1e-9)
    # Fewer samples than features (singular covariances): still ~0, real and finite.
    few = _correlated(20, 64, 2)
    assert abs(fid(few, few)) < 1e-6 * np.trace(np.cov(few, rowvar=False))


def test_feature_statistics_are_float64_mean_and_unbiased_covariance():
    x = _correlated(50, 4, 3).astype(np.float32)
    mu, sigma = feature_statistics(x)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (4, 4)
    centred = x.astype(np.float64) - x.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(sigma, centred.T @ centred / (len(x) - 1), rtol=1e-12)
    np.testing.assert_allclose(mu, x.astype(np.float64).mean(axis=0), rtol=1e-12)


def test_frechet_distance_of_diagonal_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(4)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3.0, size=6), rng.uniform(0.1, 3.0, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-10)
    # Only the mean shifted: the distance is the squared shift, whatever the (full) covariance.
    sigma = np.cov(_correlated(100, 6, 5), rowvar=False)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(np.sum((mu1 - mu2) ** 2), rel=1e-9)


def test_frechet_distance_with_non_commuting_covariances():
    # For 2x2, Tr((S1 S2)^(1/2)) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2)) (the roots' sum, squared).
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 3.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    # tr(S1 S2) = 8, det S1 = det S2 = 3: Tr((S1 S2)^(1/2)) = sqrt(14).
    expected = 1.0 + 4 + 4 - 2 * np.sqrt(14.0)
    assert frechet_distance([1.0, 0.0], s1, [0.0, 0.0], s2) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance([0.0, 0.0], s2, [1.0, 0.0], s1) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_agrees_with_scipy_sqrtm():
    scipy_linalg = pytest.importorskip("scipy.linalg")
    a, b = _correlated(500, 16, 6), _correlated(500, 16, 7)
    (mu1, s1), (mu2, s2) = feature_statistics(a), feature_statistics(b)
    covmean = scipy_linalg.sqrtm(s1 @ s2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(KzooError, match="shape"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(KzooError, match="NaN"):
        frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2), np.eye(2))


# ---------------------------------------------------------------------------------------------- KID


def _mmd2_loops(x, y, degree=3, gamma=None, coef0=1.0):
    """The unbiased MMD^2 written out term by term (O(n^2) Python loops)."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma

    def k(u, v):
        return (gamma * float(np.dot(u, v)) + coef0) ** degree

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def _mmd2_biased(x, y, degree=3, coef0=1.0):
    gamma = 1.0 / x.shape[1]
    k_xx, k_yy, k_xy = ((gamma * a @ b.T + coef0) ** degree for a, b in ((x, x), (y, y), (x, y)))
    return k_xx.mean() + k_yy.mean() - 2 * k_xy.mean()


def test_kid_on_one_subset_matches_the_formula_written_out():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(9, 5)), rng.normal(size=(9, 5)) + 0.3
    mean, std = kernel_inception_distance(x, y, subsets=1, subset_size=9)
    assert mean == pytest.approx(_mmd2_loops(x, y), rel=1e-10) and std == 0.0
    mean, _ = kernel_inception_distance(x, y, subsets=1, subset_size=9, degree=2, gamma=0.5, coef0=2.0)
    assert mean == pytest.approx(_mmd2_loops(x, y, degree=2, gamma=0.5, coef0=2.0), rel=1e-10)


def test_kid_is_unbiased_where_the_biased_estimate_is_not():
    # Many pairs of small samples (10 rows) of one distribution: the estimates average to 0
    # (within 3 standard errors), while the V-statistic (diagonal included) is positive.
    m, trials = 10, 2000
    rng = np.random.default_rng(9)
    unbiased, biased = np.empty(trials), np.empty(trials)
    for t in range(trials):
        x, y = rng.normal(size=(m, 4)), rng.normal(size=(m, 4))
        unbiased[t] = kernel_inception_distance(x, y, subsets=1, subset_size=m)[0]
        biased[t] = _mmd2_biased(x, y)
    stderr_unbiased = unbiased.std() / np.sqrt(trials)
    stderr_biased = biased.std() / np.sqrt(trials)
    assert abs(unbiased.mean()) < 3 * stderr_unbiased
    assert biased.mean() > 10 * stderr_biased  # so the first check tells the two estimators apart
    assert (unbiased < 0).any()  # an unbiased estimate of 0 must go negative


def test_kid_of_different_distributions_is_clearly_positive():
    rng = np.random.default_rng(10)
    same = kernel_inception_distance(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), subsets=20,
                                     subset_size=100)
    shifted = kernel_inception_distance(rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 1.0, subsets=20,
                                        subset_size=100)
    assert shifted[0] > 3 * shifted[1] > 0
    assert shifted[0] > 20 * abs(same[0])


def test_kid_subsets_are_seeded_and_capped_at_the_smaller_set():
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(60, 4)), rng.normal(size=(40, 4)) + 0.5
    first = kernel_inception_distance(x, y, subsets=5, subset_size=30, seed=3)
    assert first == kernel_inception_distance(x, y, subsets=5, subset_size=30, seed=3)
    assert first != kernel_inception_distance(x, y, subsets=5, subset_size=30, seed=4)
    # torch-fidelity's draw: one RandomState, first set's rows then the second's, per subset.
    draw = np.random.RandomState(3)
    expected = []
    for _ in range(5):
        xs, ys = x[draw.choice(60, 30, replace=False)], y[draw.choice(40, 30, replace=False)]
        expected.append(_mmd2_loops(xs, ys))
    assert first[0] == pytest.approx(np.mean(expected), rel=1e-9)
    assert first[1] == pytest.approx(np.std(expected), rel=1e-9)
    # subset_size above the smaller set (40): every subset is 40 rows, so with all of y and 40 of x.
    capped = kernel_inception_distance(x, y, subsets=1, subset_size=1000, seed=0)[0]
    rows = np.random.RandomState(0).choice(60, 40, replace=False)
    assert capped == pytest.approx(_mmd2_loops(x[rows], y), rel=1e-9)
    with pytest.raises(KzooError, match="features"):
        kernel_inception_distance(x, y[:, :3])


# ---------------------------------------------------------------------------------------------- extractors


def _images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, size=(n, size, size, 3)).astype(np.float32)


def test_from_classifier_gives_the_pre_logit_features(tmp_path):
    model = tiny_model("vit", num_classes=3)
    extractor = FeatureExtractor.from_classifier(model)
    assert extractor.name == f"fid_kzoo_{model.name}" and "kzoo" in extractor.name
    assert extractor.image_size == (32, 32)
    # Batches of 2 throughout: under JAX every new batch shape is one more compilation.
    images = _images(4, 32)
    features = extractor.features(images, batch_size=2)
    kernel, bias = model.get_layer("head").get_weights()
    assert features.dtype == np.float64 and features.shape == (4, kernel.shape[0])
    # The features are the head's input: the head applied to them gives the classifier's logits.
    logits = np.concatenate([keras.ops.convert_to_numpy(model.predict_on_batch(images[i:i + 2])) for i in (0, 2)])
    np.testing.assert_allclose(features @ kernel + bias, logits, rtol=1e-4, atol=1e-4)
    # Other sizes are resized to the classifier's input; a saved checkpoint loads the same way.
    assert extractor.features(_images(2, 16)).shape == (2, kernel.shape[0])
    path = str(tmp_path / "c10.keras")
    model.save(path)
    loaded = FeatureExtractor.from_classifier(path, name="fid_kzoo_c10")
    assert loaded.name == "fid_kzoo_c10"
    np.testing.assert_allclose(loaded.features(images, batch_size=2), features, rtol=1e-5, atol=1e-5)
    # fid/kid over images go through the extractor.
    assert abs(fid(images, images, extractor, batch_size=2)) < 1e-6 * np.trace(np.cov(features, rowvar=False))
    assert kid(images, images[::-1], extractor, batch_size=2, subsets=2)[0] == pytest.approx(
        kernel_inception_distance(features, features[::-1], subsets=2)[0], rel=1e-4, abs=1e-6)
    with pytest.raises(KzooError, match="extractor"):
        fid(images, images)


@pytest.mark.slow  # building InceptionV3 takes ~15 s under JAX on a 2-core CPU (~5 s under TensorFlow)
def test_inception_v3_random_weights_give_2048_features_at_299():
    keras.utils.set_random_seed(0)
    extractor = FeatureExtractor.inception_v3()
    assert extractor.name == "fid_keras_inception_v3_random"
    assert extractor.model.input_shape == (None, 299, 299, 3)
    features = extractor.features(_images(2, 32))
    assert features.shape == (2, 2048) and features.dtype == np.float64 and np.isfinite(features).all()
    with pytest.raises(KzooError, match="not found"):
        FeatureExtractor.inception_v3("no/such/weights.h5")


def test_importing_kzoo_generative_starts_neither_keras_nor_tensorflow():
    code = "import sys, kzoo.generative; sys.exit(1 if {'keras', 'tensorflow'} & set(sys.modules) else 0)"
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=60, check=False).returncode == 0
