"""Image generation: GANs trained by one `model.fit`, and sample-quality metrics (FID, KID).

`GAN` trains a registered generator/discriminator pair (`build_gan_networks`: `dcgan_32`,
`sngan_32`) with a named objective from `GAN_LOSSES` under the TensorFlow or the JAX backend.
Generators make images in [-1, 1]; `to_pixels` / `from_pixels` convert to and from kzoo's
[0, 255] pixels.

A FID or KID score is only comparable with another computed by the same feature network: the
`FeatureExtractor`'s `name` (e.g. `fid_kzoo_resnet18_cifar`, `fid_keras_inception_v3`) says which,
and belongs next to every reported figure.

Training a GAN: `train_gan` (`kzoo gan train`, a kzoo run directory), or `GAN` by hand (the example
in `kzoo.generative.gan`; docs/generative.md). Scoring it:

Example:
    >>> from kzoo.generative import FeatureExtractor, fid, to_pixels
    >>> extractor = FeatureExtractor.from_classifier("runs/c10/best.keras", name="fid_kzoo_c10")  # doctest: +SKIP
    >>> fid(real_images, to_pixels(gan.generate(10_000)), extractor)  # doctest: +SKIP
"""

from kzoo._lazy import lazy_getattr

# Every name below is imported on first use: importing kzoo.generative starts neither Keras nor TensorFlow.
_EXPORTS = {
    **dict.fromkeys(
        ["FeatureExtractor", "feature_statistics", "fid", "frechet_distance", "kernel_inception_distance", "kid"],
        "kzoo.generative.metrics",
    ),
    "GAN": "kzoo.generative.gan",
    "train_gan": "kzoo.generative.training",
    "sample_images": "kzoo.generative.sampling",
    **dict.fromkeys(["GAN_LOSSES", "GanLoss"], "kzoo.generative.losses"),
    **dict.fromkeys(["GAN_MODELS", "build_gan_networks", "from_pixels", "to_pixels"], "kzoo.generative.networks"),
}
__getattr__ = lazy_getattr(__name__, _EXPORTS)

__all__ = [
    "GAN", "GAN_LOSSES", "GAN_MODELS", "FeatureExtractor", "GanLoss", "build_gan_networks", "feature_statistics",
    "fid", "frechet_distance", "from_pixels", "kernel_inception_distance", "kid", "sample_images", "to_pixels",
    "train_gan",
]
