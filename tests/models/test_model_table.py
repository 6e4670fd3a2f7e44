"""FLOP counts against published figures (2 FLOPs per multiply-add, 224x224, one image)."""

import pytest

import kzoo
from kzoo.models.table import count_flops, model_table


@pytest.mark.parametrize("name, gflops", [
    ("resnet18", 3.64),  # torchvision: 1.81 GMACs
    ("resnet50", 8.18),  # torchvision: 4.09 GMACs
    ("vit_base_patch16_224", 105.5 / 3),  # the 105.5 GFLOP per training image = 3 forwards
])
def test_forward_flops_match_published_figures(name, gflops):
    assert count_flops(kzoo.create_model(name)) / 1e9 == pytest.approx(gflops, rel=0.01)


def test_table_lists_params_and_flops():
    table = model_table(["vit_cifar_tiny"])
    # 546,186 parameters with 10 classes; the table counts the default 1000-class head: +990 x 129.
    assert "| `vit_cifar_tiny` | vit | 32x32x3 | 673,896 | 0.08 |" in table
