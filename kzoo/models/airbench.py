"""airbench: the fast CIFAR-10 network of Keller Jordan's speed runs (airbench94: 94% in about 10
epochs, 0.36 PFLOP of training), as a registered kzoo model. Its recipe is `kzoo train --recipe
airbench94` (docs/recipes.md)."""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError
from kzoo.layers.preprocess import ContrastNormalization
from kzoo.layers.whitening import PatchWhitening
from kzoo.models.common import POOL_NAME, HEAD_NAME, check_num_classes, image_input
from kzoo.models.features import feature_model, resolve_out_indices

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# PyTorch's default conv/linear initialisation, U(+-1/sqrt(fan_in)), which the recipe was tuned with.
TORCH_DEFAULT = dict(scale=1 / 3, mode="fan_in", distribution="uniform")


@keras.saving.register_keras_serializable(package="kzoo")
class PartialDirac(keras.initializers.Initializer):
    """PyTorch's default kernel initialisation, except that the first `in_channels` filters start
    as the identity (a one at the kernel centre on their own channel): each convolution begins
    as an implicit residual connection.

    Example:
        >>> w = PartialDirac(seed=0)((3, 3, 4, 8))
        >>> float(w[1, 1, 2, 2]), float(w[0, 0, 2, 2])
        (1.0, 0.0)
    """

    def __init__(self, seed: int | None = None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        base = keras.initializers.VarianceScaling(**TORCH_DEFAULT, seed=self.seed)(shape, dtype=dtype)
        n = min(cin, cout)
        identity = np.zeros(shape, "float32")
        identity[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
        is_identity_filter = np.arange(cout) < n
        return ops.where(is_identity_filter, ops.cast(identity, base.dtype), base)

    def get_config(self):
        return {"seed": self.seed}


def whitened_conv_groups(x, widths: Sequence[int], whiten_kernel: int = 2, bn_momentum: float = 0.6,
                         whiten_eps: float = 5e-4) -> list:
    """airbench's body on normalised images `x`: the whitening stem, then per width a group of
    conv3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU. Returns each group's
    output (`stage{k}`)."""
    x = PatchWhitening(whiten_kernel, eps=whiten_eps, name="stem_whiten")(x)
    x = keras.layers.Activation("gelu", name="stem_gelu")(x)
    stages = []
    for k, width in enumerate(widths, start=1):
        for j in (1, 2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, kernel_initializer=PartialDirac(),
                                    name=f"stage{k}_conv{j}")(x)
            if j == 1:
                x = keras.layers.MaxPooling2D(2, name=f"stage{k}_pool")(x)
            # Keras' momentum is the running average's weight (PyTorch's 1 - momentum).
            x = keras.layers.BatchNormalization(momentum=bn_momentum, epsilon=1e-12, scale=False,
                                                name=f"stage{k}_bn{j}")(x)
            x = keras.layers.Activation("gelu", name=f"stage{k}" if j == 2 else f"stage{k}_gelu{j}")(x)
        stages.append(x)
    return stages


def build_airbench(
    widths: Sequence[int] = (64, 256, 256),
    num_classes: int = 10,
    input_shape: Sequence[int] = (32, 32, 3),
    whiten_kernel: int = 2,
    whiten_eps: float = 5e-4,
    contrast_norm: bool = False,
    bn_momentum: float = 0.6,
    logit_scale: float = 1 / 9,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    name: str | None = None,
) -> keras.Model:
    """Build an airbench network: a frozen patch-whitening stem, then per width a group of
    conv3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU (convolutions without
    bias, identity-initialised; BatchNorm without scale), global max-pool, and a bias-free linear
    head whose input is multiplied by `logit_scale`. `whiten_eps` is added to the stem's patch
    eigenvalues: airbench's 5e-4 boosts the weakest (high-frequency) directions up to 40x on CIFAR-10;
    `airbench94_damped` uses 0.1, which damps them (docs/robustness.md). `contrast_norm` puts
    `ContrastNormalization` (per-image standardisation) before the stem, which makes the network
    invariant to contrast (`airbench94_damped_cn`).

    Stage k's output is `stage{k}`; the reference pools its 3x3 map with MaxPool(3), which is the
    global max at 32x32 (and stays defined at other sizes).

    Example:
        >>> model = build_airbench()
        >>> sum(int(keras.ops.size(w)) for w in model.trainable_weights)
        1971352
    """
    check_num_classes(num_classes, "airbench")
    widths = tuple(widths)
    if not widths or any(not isinstance(w, int) or w < 1 for w in widths):
        raise KzooError(f"airbench: widths must be positive ints, one per stage, got {widths}")
    name = name or "airbench"
    if features_only:
        resolve_out_indices(out_indices, len(widths), name)
    inputs, x = image_input(input_shape, mean, std, "airbench")
    if contrast_norm:
        x = ContrastNormalization(name="contrast_norm")(x)
    stages = whitened_conv_groups(x, widths, whiten_kernel, bn_momentum, whiten_eps)
    x = stages[-1]
    if features_only:
        return feature_model(inputs, stages, out_indices, name)
    x = keras.layers.GlobalMaxPooling2D(name=POOL_NAME)(x)
    if num_classes:
        # Scaling the head's input instead of its output is the same function and the same gradients
        # (no bias), and keeps `head` the last layer for kzoo.transfer.
        x = keras.layers.Rescaling(logit_scale, name="logit_scale")(x)
        x = keras.layers.Dense(num_classes, use_bias=False, dtype="float32", name=HEAD_NAME,
                               kernel_initializer=keras.initializers.VarianceScaling(**TORCH_DEFAULT))(x)
    return keras.Model(inputs, x, name=name)
