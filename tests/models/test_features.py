"""features_only: one mechanism for every family; index handling and errors."""

from __future__ import annotations

import keras
import pytest
from model_checks import images, shape_only

import kzoo
from kzoo.errors import KzooError
from kzoo.models.features import resolve_out_indices


def test_resolve_out_indices():
    assert resolve_out_indices(None, 4) == (0, 1, 2, 3)
    assert resolve_out_indices((-1, 0), 4) == (3, 0)
    assert resolve_out_indices(2, 4) == (2,)
    message = r"out_indices: 4 is out of range for resnet18 with 4 stages; valid are 0\.\.3 or -4\.\.-1"
    with pytest.raises(KzooError, match=message):
        resolve_out_indices((4,), 4, "resnet18")
    with pytest.raises(KzooError, match="out of range"):
        resolve_out_indices((-5,), 4)
    with pytest.raises(KzooError, match="empty"):
        resolve_out_indices((), 4)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("resnet50", [(None, 56, 56, 256), (None, 28, 28, 512), (None, 14, 14, 1024), (None, 7, 7, 2048)]),
        ("resnet18_cifar", [(None, 32, 32, 64), (None, 16, 16, 128), (None, 8, 8, 256), (None, 4, 4, 512)]),
        (
            "vgg11",
            [(None, 224, 224, 64), (None, 112, 112, 128), (None, 56, 56, 256), (None, 28, 28, 512), (None, 14, 14, 512)],
        ),
    ],
)
def test_cnn_stage_maps(name, expected):
    with shape_only():
        model = kzoo.create_model(name, features_only=True)
    assert model.output_shape == expected


def test_vit_block_maps_and_selection():
    with shape_only():
        model = kzoo.create_model("vit_base_patch16_224", features_only=True)
        last = kzoo.create_model(
            "vit_base_patch16_224", features_only=True, out_indices=(-1,), input_shape=(160, 256, 3)
        )
    assert model.output_shape == [(None, 14, 14, 768)] * 12
    assert last.output_shape == (None, 10, 16, 768)  # Keras unwraps a single output


def test_features_keep_only_needed_layers():
    with shape_only():
        model = kzoo.create_model("resnet18", features_only=True, out_indices=(1,))
    names = {layer.name for layer in model.layers}
    assert "stage2" in names and "stage3" not in names and "head" not in names
    with shape_only():
        vit = kzoo.create_model("vit_tiny_patch16_224", features_only=True, out_indices=(2,))
    assert sum(isinstance(layer, keras.layers.LayerNormalization) for layer in vit.layers) == 6


def test_out_of_range_through_create_model():
    with pytest.raises(KzooError, match="valid are 0..11 or -12..-1"):
        kzoo.create_model("vit_tiny_patch16_224", features_only=True, out_indices=(12,))
    with pytest.raises(KzooError, match="valid are 0..4"):
        kzoo.create_model("vgg11", features_only=True, out_indices=(5,))


def test_feature_maps_run():
    model = kzoo.create_model(
        "resnet18", features_only=True, out_indices=(0, -1), input_shape=(32, 32, 3), width=4, layers=(1, 1, 1, 1)
    )
    maps = model.predict(images(2), verbose=0)
    assert [m.shape for m in maps] == [(2, 8, 8, 4), (2, 1, 1, 32)]
