"""Exact parameter counts of the reference networks (torchvision / timm numbers, no tolerance).

Built shape-only (see model_checks.shape_only): the count is exact, the weights never exist.
ViT and VGG compare `count_params()`; networks with BatchNorm compare trainable parameters,
which is what torch's `parameters()` counts (moving statistics are buffers there).
"""

from __future__ import annotations

import pytest
from model_checks import shape_only, trainable_count

import kzoo
from kzoo.models.vgg import build_vgg
from kzoo.models.vit import build_vit

ALL_PARAMS = [
    ("vit_base_patch16_224", 1000, 86_567_656),
    ("vit_base_patch16_224", 100, 85_875_556),
    ("vit_base_patch16_224", 200, 85_952_456),
    ("vit_small_patch16_224", 1000, 22_050_664),
    ("vit_tiny_patch16_224", 1000, 5_717_416),
    ("vit_base_patch32_224", 1000, 88_224_232),
    ("vit_large_patch16_224", 1000, 304_326_632),
    ("vit_huge_patch14_224", 1000, 632_045_800),
    ("vit_huge_patch14_224", 0, 630_764_800),
    ("vit_cifar_tiny", 10, 546_186),
    ("vgg11", 1000, 132_863_336),
    ("vgg11", 100, 129_176_036),
    ("vgg16", 1000, 138_357_544),
    ("vgg19", 1000, 143_667_240),
]

TRAINABLE_PARAMS = [
    ("vgg16_bn", 1000, 138_365_992),
    ("resnet18", 1000, 11_689_512),
    ("resnet34", 1000, 21_797_672),
    ("resnet50", 1000, 25_557_032),
    ("resnet50", 200, 23_917_832),
    ("resnet101", 1000, 44_549_160),
    ("resnet101", 200, 42_909_960),
    ("resnet152", 1000, 60_192_808),
]


@pytest.mark.parametrize("name, num_classes, expected", ALL_PARAMS)
def test_count_params(name, num_classes, expected):
    with shape_only():
        model = kzoo.create_model(name, num_classes=num_classes)
    assert model.count_params() == expected


@pytest.mark.parametrize("name, num_classes, expected", TRAINABLE_PARAMS)
def test_trainable_params(name, num_classes, expected):
    with shape_only():
        model = kzoo.create_model(name, num_classes=num_classes)
    assert trainable_count(model) == expected


def test_builders_directly():
    with shape_only():
        assert build_vit(32, 4, 128, 4, 2, 256, 10, "cls").count_params() == 546_186
        assert build_vgg(16).count_params() == 138_357_544
        assert trainable_count(kzoo.build_resnet("bottleneck", (3, 4, 6, 3))) == 25_557_032


def test_airbench94_w512_widens_only_the_last_group():
    # The SimCLR backbone of docs/selfsup.md: 512 pooled features, the first two groups airbench94's.
    with shape_only():
        base = kzoo.create_model("airbench94", num_classes=0)
        wide = kzoo.create_model("airbench94_w512", num_classes=0)
    assert base.output_shape == (None, 256) and wide.output_shape == (None, 512)
    def early(model):
        return [tuple(w.shape) for w in model.weights if not w.path.startswith("stage3")]

    assert early(wide) == early(base)
    assert trainable_count(wide) == 4_328_600  # the model table: 4,333,720 with a 10-class head
