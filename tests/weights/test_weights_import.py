"""Each tiny timm / torchvision / transformers checkpoint reproduces its library's logits in kzoo."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from kzoo.weights import load_weights
from tests.weights.conftest import FIXTURES, NAMES, build, reference

TOL = 1e-4


@pytest.mark.parametrize("name", NAMES)
def test_fixture_logits_match_reference(name):
    ref = reference(name)
    model = load_weights(build(name), FIXTURES / f"{name}.safetensors")
    logits = np.asarray(model(ref["images"]))
    assert logits.dtype == np.float32
    assert np.abs(logits - ref["logits"]).max() < TOL
    assert model.kzoo_weights_info["head_loaded"]


def test_transformers_vit_sets_layer_norm_epsilon():
    model = load_weights(build("transformers_vit"), FIXTURES / "transformers_vit.safetensors")
    assert model.get_layer("block_0_norm1").epsilon == 1e-12
    assert model.get_layer("norm").get_config()["epsilon"] == 1e-12  # survives save/load


def test_transformers_vit_model_without_classifier(tmp_path, caplog):
    """A `ViTModel` checkpoint (no `vit.` prefix, a pooler, no classifier) loads; features match."""
    ref = reference("transformers_vit")
    state = load_file(FIXTURES / "transformers_vit.safetensors")
    state = {k[len("vit."):]: v for k, v in state.items() if k.startswith("vit.")}
    state["pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    state["pooler.dense.bias"] = np.zeros((32,), np.float32)
    path = tmp_path / "vitmodel.safetensors"
    save_file(state, path)
    model = load_weights(build("transformers_vit", num_classes=0), path)
    assert np.abs(np.asarray(model(ref["images"])) - ref["features"]).max() < TOL
    with caplog.at_level(logging.WARNING, logger="kzoo.weights"):
        load_weights(build("transformers_vit"), path)
    assert "no classifier" in caplog.text


def test_transformers_v5_state_dict_names(tmp_path):
    """transformers 5's in-memory names (layers.N.attention.q_proj, mlp.fc1) load as well."""
    ref = reference("transformers_vit")
    renames = {
        "encoder.layer.": "layers.", "attention.attention.query": "attention.q_proj",
        "attention.attention.key": "attention.k_proj", "attention.attention.value": "attention.v_proj",
        "attention.output.dense": "attention.o_proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    }
    state = {}
    for key, value in load_file(FIXTURES / "transformers_vit.safetensors").items():
        for old, new in renames.items():
            key = key.replace(old, new)
        state[key] = value
    save_file(state, tmp_path / "v5.safetensors")
    model = load_weights(build("transformers_vit"), tmp_path / "v5.safetensors")
    assert np.abs(np.asarray(model(ref["images"])) - ref["logits"]).max() < TOL


def test_other_class_count_loads_everything_but_the_head(caplog):
    ref = reference("torchvision_resnet")
    full = load_weights(build("torchvision_resnet"), FIXTURES / "torchvision_resnet.safetensors")
    with caplog.at_level(logging.WARNING, logger="kzoo.weights"):
        model = load_weights(build("torchvision_resnet", num_classes=7), FIXTURES / "torchvision_resnet.safetensors")
    assert "classifier not loaded" in caplog.text and "(32, 5)" in caplog.text and "(32, 7)" in caplog.text
    assert not model.kzoo_weights_info["head_loaded"]
    for name in ("conv1", "layer4_0_conv2", "layer2_1_bn2"):
        for a, b in zip(model.get_layer(name).get_weights(), full.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert model(ref["images"]).shape == (2, 7)


def test_vit_checkpoint_at_another_resolution_resamples_position_embedding():
    from kzoo.layers.position_embedding import resample_position_embedding

    model = load_weights(build("timm_vit", image_size=48), FIXTURES / "timm_vit.safetensors")
    saved = load_file(FIXTURES / "timm_vit.safetensors")["pos_embed"]
    expected = np.asarray(resample_position_embedding(saved, (4, 4), (6, 6), 1))
    np.testing.assert_allclose(model.get_layer("pos_embed").get_weights()[0], expected, atol=1e-6)
    assert model(np.zeros((1, 48, 48, 3), "float32")).shape == (1, 5)


def test_features_only_model_loads_backbone():
    model = load_weights(build("torchvision_vgg", features_only=True), FIXTURES / "torchvision_vgg.safetensors")
    full = load_weights(build("torchvision_vgg"), FIXTURES / "torchvision_vgg.safetensors")
    np.testing.assert_array_equal(model.get_layer("block2_conv1").get_weights()[0], full.get_layer("block2_conv1").get_weights()[0])
