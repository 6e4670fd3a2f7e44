"""FID and KID of image sets, over the features of a fixed, named network.

FID (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted to the two feature
sets; KID (Binkowski et al. 2018) the unbiased MMD^2 estimate with the cubic polynomial kernel,
averaged over random subsets, as torch-fidelity computes it. Both are computed in float64 numpy;
only the feature extraction runs Keras (`keras.ops`, any backend).

A score depends on the feature network: `FeatureExtractor.name` says which one, and only
scores with the same name compare. `fid_kzoo_*` (a kzoo classifier's pre-logit features) is not
Inception FID; neither is `fid_keras_inception_v3_random`, which exists for tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from kzoo.errors import KzooError

if TYPE_CHECKING:
    import keras

log = logging.getLogger("kzoo.generative")

INCEPTION_SIZE = (299, 299)
INCEPTION_FEATURES = 2048


# --------------------------------------------------------------------------------------------
# FID


def frechet_distance(mu1: Any, sigma1: Any, mu2: Any, sigma2: Any) -> float:
    """The Fréchet distance ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) of two Gaussians.

    Computed in float64. Covariances are symmetrised; tiny negative eigenvalues (rounding in a
    singular covariance, e.g. fewer samples than features) count as 0. The result can be a
    rounding error below 0 (about 1e-15 of the traces) for identical statistics.

    Example:
        >>> round(frechet_distance([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [3.0, 4.0], [[4.0, 0.0], [0.0, 1.0]]), 6)
        26.0
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise KzooError(f"frechet_distance: expected means of shape (D,) and covariances (D, D) with one D, got "
                        f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}")
    if not all(np.isfinite(a).all() for a in (mu1, mu2, sigma1, sigma2)):
        raise KzooError("frechet_distance: the means or covariances contain NaN or inf")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    # Tr((S1 S2)^(1/2)) = sum of the singular values of S1^(1/2) S2^(1/2) (the product times its
    # transpose is S1^(1/2) S2 S1^(1/2), similar to S1 S2), with each square root from `eigh` of a
    # symmetric matrix. Not scipy.linalg.sqrtm(S1 @ S2), as pytorch-fid does: S1 S2 is not
    # symmetric, so sqrtm goes through a complex Schur form, returns spurious imaginary parts and
    # fails on singular covariances (pytorch-fid then retries with eps * I added), and scipy is
    # not a kzoo dependency. Singular values of the product of the roots, rather than the
    # eigenvalues of S1^(1/2) S2 S1^(1/2), avoid squaring: a zero eigenvalue comes out at 1e-16
    # of the trace, not 1e-8 (measured: self-distance of 50 samples x 256 features -2e-15 of the
    # trace here, -7e-8 with eigenvalues or with sqrtm), and the result is symmetric in its arguments.
    tr_covmean = np.linalg.svd(_sqrt_psd(sigma1) @ _sqrt_psd(sigma2), compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix (negative eigenvalues -> 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def feature_statistics(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of (N, D) features, in float64 (as pytorch-fid and torch-fidelity).

    Example:
        >>> mu, sigma = feature_statistics([[0.0, 1.0], [2.0, 3.0]])
        >>> mu.tolist(), sigma.tolist()
        ([1.0, 2.0], [[2.0, 2.0], [2.0, 2.0]])
    """
    features = _as_features(features, "feature_statistics")
    return features.mean(axis=0), np.atleast_2d(np.cov(features, rowvar=False))


# --------------------------------------------------------------------------------------------
# KID


def kernel_inception_distance(features1: Any, features2: Any, subsets: int = 100, subset_size: int = 1000,
                              degree: int = 3, gamma: float | None = None, coef0: float = 1.0,
                              seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation over `subsets` random subsets of the unbiased MMD^2 estimate.

    The kernel is polynomial, k(x, y) = (gamma x.y + coef0)^degree with gamma = 1/D by default.
    Each subset draws `subset_size` rows of each set without replacement (capped at the smaller
    set's size); the estimate on subsets X, Y of m rows is
        sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
          - 2 sum_{i, j} k(x_i, y_j) / m^2,
    which is unbiased (its mean is 0 for two samples of one distribution) and can be negative.
    The std is numpy's (ddof=0). Subsets are drawn as torch-fidelity draws them
    (`np.random.RandomState(seed).choice(n, m, replace=False)`, first set then second), so with
    the same features, sizes and seed the figures match `torch_fidelity`'s `kid_features_to_metric`
    up to rounding (it computes in the features' dtype, float32 from its extractors, and refuses a
    subset larger than a set instead of capping it).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> real, fake = rng.normal(size=(300, 8)), rng.normal(size=(300, 8)) + 1
        >>> mean, std = kernel_inception_distance(real, fake, subsets=10, subset_size=100)
        >>> mean > 3 * std
        True
    """
    features1 = _as_features(features1, "kernel_inception_distance")
    features2 = _as_features(features2, "kernel_inception_distance")
    if features1.shape[1] != features2.shape[1]:
        raise KzooError(f"kernel_inception_distance: the feature sets have {features1.shape[1]} and "
                        f"{features2.shape[1]} features; they must come from one extractor")
    for key, value in (("subsets", subsets), ("subset_size", subset_size), ("degree", degree)):
        least = 2 if key == "subset_size" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise KzooError(f"kernel_inception_distance: {key} must be an int >= {least}, got {value!r}")
    n1, n2 = len(features1), len(features2)
    m = min(int(subset_size), n1, n2)
    if m < subset_size:
        log.info("KID subsets of %d rows: the sets have %d and %d (subset_size %d asked)", m, n1, n2, subset_size)
    gamma = 1.0 / features1.shape[1] if gamma is None else float(gamma)
    rng = np.random.RandomState(seed)
    estimates = np.empty(int(subsets), dtype=np.float64)
    for i in range(int(subsets)):
        x = features1[rng.choice(n1, m, replace=False)]
        y = features2[rng.choice(n2, m, replace=False)]
        estimates[i] = _mmd2_unbiased(x, y, degree, gamma, coef0)
    return float(estimates.mean()), float(estimates.std())


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """The unbiased MMD^2 estimate of two samples under the polynomial kernel (Gretton et al. 2012, MMD^2_u)."""
    m, n = len(x), len(y)
    k_xx = (gamma * (x @ x.T) + coef0) ** degree
    k_yy = (gamma * (y @ y.T) + coef0) ** degree
    k_xy = (gamma * (x @ y.T) + coef0) ** degree
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


def _as_features(features: Any, caller: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise KzooError(f"{caller}: expected features of shape (N, D) with N >= 2, got shape {features.shape}")
    if not np.isfinite(features).all():
        raise KzooError(f"{caller}: the features contain NaN or inf")
    return features


# --------------------------------------------------------------------------------------------
# Feature networks


class FeatureExtractor:
    """A fixed network mapping images (N, H, W, 3), float in [0, 255], to feature vectors (N, D).

    `model` takes images of `image_size` in [0, 255] (its own preprocessing inside it); images of
    another size are resized to it (bilinear, `keras.ops.image.resize`). `name` says which network
    it is (and so which scores compare): use the constructors, or name a custom one yourself.

    Example:
        >>> extractor = FeatureExtractor.from_classifier(kzoo.create_model("resnet18_cifar"))  # doctest: +SKIP
        >>> extractor.name, extractor.features(images).shape  # doctest: +SKIP
        ('fid_kzoo_resnet18_cifar', (100, 512))
    """

    def __init__(self, model: keras.Model, name: str, image_size: tuple[int, int] | None = None):
        if not isinstance(name, str) or not name:
            raise KzooError("FeatureExtractor: name must be a non-empty string saying which network it is")
        self.model = model
        self.name = name
        self.image_size = tuple(int(v) for v in image_size) if image_size is not None else None

    def __repr__(self) -> str:
        return f"FeatureExtractor(name={self.name!r}, image_size={self.image_size}, dim={self.dim})"

    @property
    def dim(self) -> int | None:
        """The feature width D (None when the model does not say)."""
        shape = self.model.output_shape
        return shape[-1] if isinstance(shape, tuple) else None

    @classmethod
    def from_classifier(cls, model_or_path: keras.Model | str | os.PathLike, name: str | None = None
                        ) -> FeatureExtractor:
        """The pre-logit features of a kzoo classifier (a model, or a `.keras` checkpoint path).

        The features are the input of the classifier's `head` layer (the same cut as
        `kzoo probe`); a model with one (batch, features) output is used as it is. The name
        defaults to `fid_kzoo_<model name>`; give one saying what it was trained on (e.g.
        `fid_kzoo_c10` for kzoo's CIFAR-10 classifier). Scores over it are not Inception FIDs.

        Example:
            >>> FeatureExtractor.from_classifier("runs/c10/best.keras", name="fid_kzoo_c10").name  # doctest: +SKIP
            'fid_kzoo_c10'
        """
        import keras

        from kzoo.selfsup.probe import feature_model

        if isinstance(model_or_path, (str, os.PathLike)):
            from kzoo.training.api import load_checkpoint

            where = os.fspath(model_or_path)
            model = load_checkpoint(where)
        elif isinstance(model_or_path, keras.Model):
            model, where = model_or_path, f"model {model_or_path.name}"
        else:
            raise KzooError(f"FeatureExtractor.from_classifier: expected a keras.Model or a .keras path, got "
                            f"{type(model_or_path).__name__}")
        features, kind = feature_model(model, where)
        shape = features.input_shape[0] if isinstance(features.input_shape, list) else features.input_shape
        size = tuple(shape[1:3])
        if len(shape) != 4 or None in size:
            raise KzooError(f"{where} takes inputs of shape {shape}: expected images of a fixed size "
                            "(batch, height, width, channels)")
        log.info("feature extractor: %s features of %s (%d wide)", kind, where, features.output_shape[-1])
        return cls(features, name or f"fid_kzoo_{model.name}", image_size=size)

    @classmethod
    def inception_v3(cls, weights: str | os.PathLike | None = None) -> FeatureExtractor:
        """Keras' InceptionV3 without its top, average-pooled (2048 features), at 299x299.

        `weights`: a path to Keras' no-top InceptionV3 weights (`.h5` / `.weights.h5`, e.g.
        `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`; nothing is downloaded); None
        gives random weights, named `fid_keras_inception_v3_random` (for tests). Images are resized to
        299x299 (bilinear) and scaled to [-1, 1] (Inception's preprocessing). Keras' ImageNet
        InceptionV3 is not the 2015-12-05 TF graph that the published FIDs (TTUR, pytorch-fid,
        torch-fidelity) use, so its scores do not equal published ones: compare them only with
        each other.

        Example:
            >>> FeatureExtractor.inception_v3("inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5").name  # doctest: +SKIP
            'fid_keras_inception_v3'
        """
        import keras

        if weights is not None:
            weights = os.fspath(weights)
            if not os.path.isfile(weights):
                raise KzooError(f"InceptionV3 weights not found: {weights}; pass a path to Keras' InceptionV3 .h5 "
                                "(no download is attempted), or None for random weights")
        inputs = keras.Input((*INCEPTION_SIZE, 3), name="images")
        scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="inception_preprocessing")(inputs)
        backbone = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=None,
                                                  input_shape=(*INCEPTION_SIZE, 3))
        if weights is not None:
            try:
                backbone.load_weights(weights)
            except (ValueError, OSError, KeyError, TypeError) as err:  # another network's file, or the with-top one
                raise KzooError(f"cannot load {weights} into InceptionV3 (include_top=False): "
                                f"{str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__}; "
                                "expected Keras' no-top InceptionV3 weights") from None
        model = keras.Model(inputs, backbone(scaled), name="fid_keras_inception_v3")
        return cls(model, "fid_keras_inception_v3" if weights is not None else "fid_keras_inception_v3_random",
                   image_size=INCEPTION_SIZE)

    def features(self, images: Any, batch_size: int = 64) -> np.ndarray:
        """Features (N, D), float64, of images (N, H, W, 3) in [0, 255] or of an iterable of such batches.

        An iterable may yield `(images, labels)` pairs (e.g. a tf.data dataset); labels are ignored.

        Example:
            >>> FeatureExtractor.inception_v3().features(np.zeros((2, 32, 32, 3))).shape  # doctest: +SKIP
            (2, 2048)
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise KzooError(f"FeatureExtractor.features: batch_size must be an int >= 1, got {batch_size!r}")
        if _is_pair(images):
            images = images[0]
        if hasattr(images, "shape") or isinstance(images, list):
            images = np.asarray(images)
            batches: Iterable = (images[i:i + batch_size] for i in range(0, len(images), batch_size))
        else:
            batches = images
        out = [self._batch_features(batch) for batch in batches]
        if not out:
            raise KzooError("FeatureExtractor.features: no images")
        return np.concatenate(out, axis=0)

    def _batch_features(self, batch: Any) -> np.ndarray:
        import keras

        if _is_pair(batch):
            batch = batch[0]
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise KzooError(f"{self.name}: expected images of shape (N, H, W, 3), got {batch.shape}")
        if batch.size and batch.max() <= 1.0:
            log.warning("%s: images are in [0, 1]? This extractor expects [0, 255] (the maximum is %.3g)",
                        self.name, batch.max())
        if self.image_size is not None and tuple(batch.shape[1:3]) != self.image_size:
            batch = keras.ops.image.resize(batch, self.image_size, interpolation="bilinear", antialias=False)
        features = keras.ops.convert_to_numpy(self.model.predict_on_batch(batch))
        return np.asarray(features, dtype=np.float64).reshape(len(features), -1)


def _is_pair(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and np.ndim(value[0]) == 4


def _features_of(images_or_features: Any, extractor: FeatureExtractor | None, caller: str,
                 batch_size: int) -> np.ndarray:
    """Features as they are (2-D), or computed by `extractor` from images (4-D)."""
    if np.ndim(images_or_features) == 2:
        return _as_features(images_or_features, caller)
    if extractor is None:
        raise KzooError(f"{caller}: got images of shape {np.shape(images_or_features)} and no extractor; pass "
                        "extractor=FeatureExtractor.from_classifier(...) or .inception_v3(weights_path), "
                        "or features (N, D)")
    return _as_features(extractor.features(images_or_features, batch_size=batch_size), caller)


def fid(real: Any, fake: Any, extractor: FeatureExtractor | None = None, batch_size: int = 64) -> float:
    """FID of two image sets (N, H, W, 3) in [0, 255] over `extractor`'s features, or of two feature sets (N, D).

    Report it with `extractor.name`: only scores over the same network compare. `batch_size`:
    images per forward pass of the extractor.

    Example:
        >>> extractor = FeatureExtractor.from_classifier("runs/c10/best.keras", name="fid_kzoo_c10")  # doctest: +SKIP
        >>> fid(real_images, generated_images, extractor)  # doctest: +SKIP
        12.3
    """
    real = _features_of(real, extractor, "fid", batch_size)
    fake = _features_of(fake, extractor, "fid", batch_size)
    if real.shape[1] != fake.shape[1]:
        raise KzooError(f"fid: the feature sets have {real.shape[1]} and {fake.shape[1]} features; they must come "
                        "from one extractor")
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def kid(real: Any, fake: Any, extractor: FeatureExtractor | None = None, batch_size: int = 64,
        **options: Any) -> tuple[float, float]:
    """KID (mean, std) of two image sets over `extractor`'s features, or of two feature sets (N, D).

    `options` go to `kernel_inception_distance` (subsets, subset_size, degree, gamma, coef0, seed).

    Example:
        >>> kid(real_images, generated_images, extractor, subsets=100, subset_size=1000)  # doctest: +SKIP
        (0.0123, 0.0011)
    """
    return kernel_inception_distance(_features_of(real, extractor, "kid", batch_size),
                                     _features_of(fake, extractor, "kid", batch_size), **options)
