"""Matched-size CNN/ViT pairs: the source experiment's exact counts, the search, its errors.

Models are built shape-only (model_checks.shape_only) unless they run: counts are exact and
the weights never exist, so even the 129M-parameter pair costs milliseconds.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from model_checks import images, shape_only, trainable_count

import kzoo
from kzoo.models.matched import (
    build_matched_vgg, matched_configs, matched_pair, patch_size_for, register_matched, vgg_params, vit_params,
)


def test_source_pair_counts():
    # The source: torchvision VGG11 and ViT-B/16 with its last six blocks repeated (18 blocks),
    # both with a 100-class head (CIFAR-100), 224x224 input.
    with shape_only():
        vgg = kzoo.create_model("vgg11", num_classes=100)
        vit = kzoo.create_model("vit_base_patch16_224_depth18")
    assert vgg.count_params() == 129_176_036
    assert vit.count_params() == 128_402_788
    assert vit_params(768, 18, 3072, 100, (224, 224), 16) == 128_402_788


def test_source_vit_is_deeper_not_wider():
    # The 42,527,232 parameters over ViT-B/16 (85,875,556) are six ViT-B blocks exactly; no
    # wider MLP or hidden size of a 12-block ViT-B/16 gives the source's count.
    block = vit_params(768, 1, 3072, 0, (224, 224), 16) - vit_params(768, 0, 3072, 0, (224, 224), 16)
    assert 128_402_788 - 85_875_556 == 6 * block
    assert all(vit_params(768, 12, m, 100, (224, 224), 16) != 128_402_788 for m in range(3072, 8192))
    for dim in range(768, 1536):  # wider hidden size, MLP ratio 4 or MLP kept at 3072
        assert 128_402_788 not in (vit_params(dim, 12, 4 * dim, 100, (224, 224), 16),
                                   vit_params(dim, 12, 3072, 100, (224, 224), 16))


@pytest.mark.parametrize("target, num_classes, image_size", [
    (30_000, 10, 32), (300_000, 10, 32), (2_000_000, 10, 32), (5_000_000, 100, 32), (1_000_000, 100, 64),
])
def test_pair_within_tolerance_and_formulas_exact(target, num_classes, image_size):
    vgg_cfg, vit_cfg = matched_configs(target, num_classes, image_size)
    with shape_only():
        vgg, vit = matched_pair(target, num_classes, image_size)
    # The closed forms the search uses are the built networks' counts, exactly.
    assert trainable_count(vgg) == vgg_cfg["params"]
    assert trainable_count(vit) == vit.count_params() == vit_cfg["params"]
    for model in (vgg, vit):
        assert abs(trainable_count(model) - target) <= 0.02 * target, model.name
        assert model.output_shape == (None, num_classes) and model.input_shape == (None, image_size, image_size, 3)
    assert vit_cfg["dim"] % vit_cfg["heads"] == 0 and vit_cfg["dim"] <= vit_cfg["mlp_dim"] <= 4 * vit_cfg["dim"]
    assert vgg_cfg["width_multiplier"] * 64 == int(vgg_cfg["width_multiplier"] * 64)
    last = 8 * round(64 * vgg_cfg["width_multiplier"])
    assert last <= vgg_cfg["fc_units"] <= 16 * last


def test_search_prefers_the_reference_shapes():
    vgg, vit = matched_configs(2_000_000)
    # VGG11's 4096 hidden units per 512 channels; the CIFAR ViT ladder depth = dim / 32.
    assert vgg["fc_units"] == pytest.approx(8 * 8 * 64 * vgg["width_multiplier"], rel=0.05)
    assert (vit["patch_size"], vit["dim"], vit["depth"], vit["heads"]) == (4, 192, 6, 6)
    assert patch_size_for(32, 32) == 4 and patch_size_for(224, 224) == 16 and patch_size_for(96, 64) == 8


def test_search_covers_its_range_without_gaps():
    # Every target between the smallest and the largest reachable pair can be matched.
    for target in [int(x) for x in [2e4 * 1.5**i for i in range(20)]]:
        vgg, vit = matched_configs(target)
        assert abs(vgg["params"] - target) <= 0.02 * target and abs(vit["params"] - target) <= 0.02 * target


@pytest.mark.parametrize("target", [1_000, 10**11])
def test_out_of_reach_targets_raise_one_line(target):
    with pytest.raises(kzoo.KzooError, match=r"within 2% of .* choose a target between") as err:
        matched_pair(target)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad, match", [
    (dict(target_params=0), "positive int"), (dict(target_params=2.5e6), "positive int"),
    (dict(target_params=10**6, image_size=16), "at least 32"), (dict(target_params=10**6, tolerance=0), "tolerance"),
])
def test_bad_arguments(bad, match):
    with pytest.raises(kzoo.KzooError, match=match):
        matched_configs(**bad)


def test_registry_builders_match_at_the_callers_head_and_run():
    with shape_only():
        default = kzoo.create_model("matched_vit")
        cifar100 = kzoo.create_model("matched_vgg", num_classes=100, target_params=1_000_000)
    assert abs(default.count_params() - 2_000_000) <= 40_000
    assert abs(trainable_count(cifar100) - 1_000_000) <= 20_000 and cifar100.output_shape == (None, 100)
    vgg_name, vit_name = register_matched(40_000)
    assert register_matched(40_000) == (vgg_name, vit_name)  # registering twice is a no-op
    x = images(2)
    for name in (vgg_name, vit_name):
        model = kzoo.create_model(name, num_classes=3)
        assert model.name == name and abs(trainable_count(model) - 40_000) <= 800
        logits = model.predict(x, verbose=0)
        assert logits.shape == (2, 3) and math.isfinite(float(logits.sum()))
    with shape_only():
        features = build_matched_vgg(40_000, features_only=True)
    assert len(features.outputs) == 5


def test_matched_cnn_head_keeps_the_signal_at_init():
    # torchvision's N(0, 0.01) hidden layers suit fc1's 25,088 inputs; after a global pool of 96
    # channels they shrank the signal ~70x over the two layers; the from-scratch CNN stayed at chance.
    model = build_matched_vgg(1_000_000, num_classes=10)
    probe = keras.Model(model.input, [model.get_layer("pool").output, model.get_layer("fc2").output])
    pooled, hidden = (np.sqrt(np.mean(np.square(t))) for t in probe.predict(images(16), verbose=0))
    assert 0.3 < hidden / pooled < 3, (hidden, pooled)


def test_vgg_formula_without_batch_norm_is_torchvision_convs():
    # VGG11's convolutions at full width: 9,220,480 parameters (torchvision's features).
    assert vgg_params(64, 0, 0, batch_norm=False) == 9_220_480
