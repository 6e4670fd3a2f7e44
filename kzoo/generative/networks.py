"""GAN generator/discriminator pairs for 32x32x3 images, registered by name.

Generators map noise of shape (batch, latent_dim) to images in [-1, 1]; discriminators map
images in [-1, 1] to one logit per image, shape (batch, 1). `to_pixels` / `from_pixels` convert
between that range and the [0, 255] float pixels of kzoo's data pipeline.

| name | generator | discriminator |
|---|---|---|
| `dcgan_32` | Radford et al. 2016, 4x4x512 -> 32x32x3 | 3 strided convs, BN in the middle ones |
| `sngan_32` | Miyato et al. 2018, Table 3 "standard CNN" | 7 convs + dense, all spectrally normalised |

`width` scales every layer's channels (64 is the published network); tests use smaller ones.
The 4x4 stride-2 transposed convolutions are `SubpixelConvTranspose2D`: Keras' Conv2DTranspose
computed as a 3x3 convolution and a pixel shuffle (same weights and outputs; XLA on a CPU runs
a transposed convolution's gradient through a slow path: kzoo/layers/upsample.py).

Keras' `SpectralNormalization` divides a kernel by its spectral norm only in training-mode
calls, and a discriminator trained by `GAN` keeps its raw kernels (see `GAN.d_objective`):
score images with `discriminator(images, training=True)` to get the logits it was trained on.

Example:
    >>> from kzoo.generative import build_gan_networks
    >>> generator, discriminator = build_gan_networks("sngan_32", latent_dim=128)  # doctest: +SKIP
    >>> generator.output_shape, discriminator.output_shape  # doctest: +SKIP
    ((None, 32, 32, 3), (None, 1))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

from kzoo.errors import KzooError
from kzoo.layers.batchnorm import FusedBatchNormalization
from kzoo.layers.upsample import SubpixelConvTranspose2D

IMAGE_SHAPE = (32, 32, 3)


def to_pixels(images: Any) -> Any:
    """Map generator output in [-1, 1] to float pixels in [0, 255] (clipped).

    Example:
        >>> keras.ops.convert_to_numpy(to_pixels([-1.0, 0.0, 1.0])).tolist()  # doctest: +SKIP
        [0.0, 127.5, 255.0]
    """
    return keras.ops.clip((keras.ops.convert_to_tensor(images, "float32") + 1.0) * 127.5, 0.0, 255.0)


def from_pixels(images: Any) -> Any:
    """Map float (or uint8) pixels in [0, 255] to [-1, 1], the range the discriminators take.

    Example:
        >>> keras.ops.convert_to_numpy(from_pixels([0.0, 127.5, 255.0])).tolist()  # doctest: +SKIP
        [-1.0, 0.0, 1.0]
    """
    return keras.ops.cast(images, "float32") / 127.5 - 1.0


def _generator_bn(name: str, gamma: Any = "ones") -> FusedBatchNormalization:
    # PyTorch's BatchNorm settings, which the reference GAN code uses: Keras' default momentum
    # (0.99) leaves the moving statistics, used when sampling, far behind a fast-changing generator.
    return FusedBatchNormalization(momentum=0.9, epsilon=1e-5, gamma_initializer=gamma, name=name)


def _dcgan_32(latent_dim: int, width: int) -> tuple[keras.Model, keras.Model]:
    """Radford et al.'s DCGAN as commonly run on CIFAR-10: the PyTorch DCGAN example's network
    (ngf = ndf = 64) with one up/down-sampling stage fewer for 32x32 images. G: Dense to
    4x4x512, BN, ReLU; 4x4 stride-2 deconvs to 8x8x256 and 16x16x128 (BN, ReLU); a 4x4 stride-2
    deconv to 32x32x3 and tanh. D: 4x4 stride-2 convs 64 -> 128 -> 256 with LeakyReLU(0.2) and BN
    on all but the first; a Dense logit on the 4x4x256 features (the example's final 4x4 valid
    conv). Keras' "same" padding of a 4x4 stride-2 (de)conv on even sizes is PyTorch's padding=1."""
    # Radford et al.: weights N(0, 0.02), BN scale N(1, 0.02), LeakyReLU 0.2 in D. One initializer
    # per layer: an unseeded Keras initializer draws its seed once, when made, so a shared one would
    # give equal-shaped layers equal weights.
    def init() -> keras.initializers.Initializer:
        return keras.initializers.RandomNormal(stddev=0.02)

    def gamma() -> keras.initializers.Initializer:
        return keras.initializers.RandomNormal(mean=1.0, stddev=0.02)

    noise = keras.Input((latent_dim,), name="noise")
    x = keras.layers.Dense(4 * 4 * 8 * width, use_bias=False, kernel_initializer=init(), name="project")(noise)
    x = keras.layers.Reshape((4, 4, 8 * width))(x)
    x = keras.layers.ReLU()(_generator_bn("project_bn", gamma())(x))
    for i, channels in enumerate((4 * width, 2 * width)):
        x = SubpixelConvTranspose2D(channels, 4, strides=2, padding="same", use_bias=False,
                                         kernel_initializer=init(), name=f"deconv{i + 1}")(x)
        x = keras.layers.ReLU()(_generator_bn(f"deconv{i + 1}_bn", gamma())(x))
    x = SubpixelConvTranspose2D(3, 4, strides=2, padding="same", kernel_initializer=init(), name="to_rgb")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    generator = keras.Model(noise, images, name="dcgan_32_generator")

    inputs = keras.Input(IMAGE_SHAPE, name="images")
    x = inputs
    for i, channels in enumerate((width, 2 * width, 4 * width)):
        x = keras.layers.Conv2D(channels, 4, strides=2, padding="same", use_bias=i == 0,
                                kernel_initializer=init(), name=f"conv{i + 1}")(x)
        if i > 0:  # no BN on the input layer (Radford et al., section 3)
            x = FusedBatchNormalization(gamma_initializer=gamma(), name=f"conv{i + 1}_bn")(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Flatten()(x)
    logits = keras.layers.Dense(1, kernel_initializer=init(), dtype="float32", name="logit")(x)
    return generator, keras.Model(inputs, logits, name="dcgan_32_discriminator")


def _sngan_32(latent_dim: int, width: int) -> tuple[keras.Model, keras.Model]:
    """Miyato et al. 2018, Table 3, the CIFAR-10 "standard CNN". G: Dense to 4x4x512, BN, ReLU;
    4x4 stride-2 deconvs to 256, 128, 64 channels (BN, ReLU); 3x3 conv to 3 and tanh. D: 3x3 conv
    64, 4x4/2 conv 64, 3x3 conv 128, 4x4/2 conv 128, 3x3 conv 256, 4x4/2 conv 256, 3x3 conv 512,
    each with LeakyReLU(0.1), then a Dense logit; every D layer spectrally normalised (one power
    iteration per training call)."""
    noise = keras.Input((latent_dim,), name="noise")
    x = keras.layers.Dense(4 * 4 * 8 * width, name="project")(noise)
    x = keras.layers.Reshape((4, 4, 8 * width))(x)
    # BN + ReLU after the projection as in the authors' code (pfnet-research/sngan_projection).
    x = keras.layers.ReLU()(_generator_bn("project_bn")(x))
    for i, channels in enumerate((4 * width, 2 * width, width)):
        x = SubpixelConvTranspose2D(channels, 4, strides=2, padding="same", name=f"deconv{i + 1}")(x)
        x = keras.layers.ReLU()(_generator_bn(f"deconv{i + 1}_bn")(x))
    x = keras.layers.Conv2D(3, 3, padding="same", name="to_rgb")(x)
    images = keras.layers.Activation("tanh", dtype="float32", name="tanh")(x)
    generator = keras.Model(noise, images, name="sngan_32_generator")

    def sn(layer: keras.layers.Layer) -> keras.layers.Layer:
        return keras.layers.SpectralNormalization(layer, power_iterations=1, name=f"sn_{layer.name}")

    inputs = keras.Input(IMAGE_SHAPE, name="images")
    x = inputs
    convs = [(3, 1, width), (4, 2, width), (3, 1, 2 * width), (4, 2, 2 * width),
             (3, 1, 4 * width), (4, 2, 4 * width), (3, 1, 8 * width)]
    for i, (kernel, stride, channels) in enumerate(convs):
        x = sn(keras.layers.Conv2D(channels, kernel, strides=stride, padding="same", name=f"conv{i + 1}"))(x)
        x = keras.layers.LeakyReLU(0.1)(x)
    x = keras.layers.Flatten()(x)
    logits = sn(keras.layers.Dense(1, dtype="float32", name="logit"))(x)
    return generator, keras.Model(inputs, logits, name="sngan_32_discriminator")


GAN_MODELS: dict[str, Callable[[int, int], tuple[keras.Model, keras.Model]]] = {
    "dcgan_32": _dcgan_32,
    "sngan_32": _sngan_32,
}


def build_gan_networks(name: str, latent_dim: int = 128, width: int = 64) -> tuple[keras.Model, keras.Model]:
    """Build the registered (generator, discriminator) pair `name` as two functional models.

    `width` is the base channel count (64 = the published networks: dcgan_32's generator runs
    512 -> 256 -> 128 -> 3 channels and its discriminator 64 -> 128 -> 256; sngan_32 follows
    Miyato et al.'s Table 3 with every channel count scaled by width / 64).

    Example:
        >>> generator, discriminator = build_gan_networks("dcgan_32", latent_dim=100)  # doctest: +SKIP
    """
    if name not in GAN_MODELS:
        raise KzooError(f"unknown GAN architecture {name!r}; registered: {', '.join(sorted(GAN_MODELS))}")
    if latent_dim < 1 or width < 1:
        raise KzooError(f"build_gan_networks: latent_dim and width must be positive, got {latent_dim}, {width}")
    return GAN_MODELS[name](latent_dim, width)
