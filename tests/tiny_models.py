"""Tiny configurations of every model family, shared by the model and export tests
(tests/ is on sys.path: pytest puts a rootdir conftest's folder there)."""

from __future__ import annotations

import keras

import kzoo

# family -> overrides that keep the family's options but make the network tiny.
TINY = {
    "vit": dict(dim=16, depth=2, heads=2, mlp_dim=32, patch_size=8, mean=(0.5,) * 3, std=(0.5,) * 3),
    "vgg": dict(depth=(8, "M", 16, 16, "M"), fc_units=16),
    "resnet": dict(width=8, layers=(1, 1)),
    "odconv_gtsrb": dict(widths=(8, 8, 16, 16)),
    # Fused models: both branches shrunk (each keeps its registered family options), small projections.
    "fusion": dict(vit_options=dict(dim=16, depth=1, heads=2, mlp_dim=32, patch_size=8),
                   cnn_options=dict(depth=(8, "M", 16, "M")), dim=16),
    "matched": dict(target_params=30_000),
    "airbench": dict(widths=(8, 16)),
    "cct": dict(tokenizer_widths=(8, 16), depth=1, heads=2),  # the size search itself makes them small
}

# One registered name per family the export tests cover, with its tiny keywords (the CAM VGG
# and the ODConv ResNet are shrunk through their own builders' keywords).
FAMILY_EXAMPLES = {
    "vit": ("vit_cifar_tiny", TINY["vit"]),
    "vgg": ("vgg11_bn", TINY["vgg"]),
    "vgg_cam": ("vgg11_bn_cam_cifar", dict(width_multiplier=0.125)),
    "resnet": ("resnet18_cifar", TINY["resnet"]),
    "odresnet": ("odresnet18_4x", dict(layers=(1, 1, 1, 1), widths=(8, 8, 16, 16))),
    "odconv_gtsrb": ("odconv_gtsrb", TINY["odconv_gtsrb"]),
    "fusion": ("fusion_tiny", TINY["fusion"]),
    "airbench": ("airbench94", TINY["airbench"]),
    "cct": ("cct_7_3x1", TINY["cct"]),
}


def tiny_model(family: str, num_classes: int = 3, seed: int = 0) -> keras.Model:
    """The family's example at its tiny size, 32x32 input, seeded."""
    name, overrides = FAMILY_EXAMPLES[family]
    keras.utils.set_random_seed(seed)
    return kzoo.create_model(name, num_classes=num_classes, input_shape=(32, 32, 3), **overrides)
