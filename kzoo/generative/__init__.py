"""Sample-quality metrics of image generators: FID and KID over a fixed, named feature network.

A score is only comparable with another computed by the same feature network: the
`FeatureExtractor`'s `name` (e.g. `fid_kzoo_resnet18_cifar`, `fid_keras_inception_v3`) says which,
and belongs next to every reported figure.

Example:
    >>> from kzoo.generative import FeatureExtractor, fid, kid
    >>> extractor = FeatureExtractor.from_classifier("runs/c10/best.keras", name="fid_kzoo_c10")  # doctest: +SKIP
    >>> fid(real_images, fake_images, extractor)  # doctest: +SKIP
"""

from kzoo._lazy import lazy_getattr

# Every name below is imported on first use: importing kzoo.generative starts neither Keras nor TensorFlow.
_EXPORTS = dict.fromkeys(
    ["FeatureExtractor", "feature_statistics", "fid", "frechet_distance", "kernel_inception_distance", "kid"],
    "kzoo.generative.metrics",
)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = ["FeatureExtractor", "feature_statistics", "fid", "frechet_distance", "kernel_inception_distance", "kid"]
