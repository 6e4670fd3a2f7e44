"""Bad inputs fail with one line saying what, where, and what to do."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from kzoo.errors import KzooError
from kzoo.weights import load_weights
from tests.weights.conftest import FIXTURES, build


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def test_other_architecture_names_layer_and_both_shapes():
    # A bottleneck checkpoint into a basic-block ResNet of the same depth.
    with pytest.raises(KzooError) as err:
        load_weights(build("torchvision_resnet", block="bottleneck", layers=(1, 2, 1, 1)), FIXTURES / "torchvision_resnet.safetensors")
    message = one_line(err)
    assert "layer" in message and "expects" in message and "gives" in message


def test_shape_mismatch_message_is_exact():
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit", dim=64, heads=2, mlp_dim=64), FIXTURES / "timm_vit.safetensors")
    message = one_line(err)
    assert "layer 'patch_embed'" in message and "(8, 8, 3, 64)" in message and "(32, 3, 8, 8)" in message


@pytest.mark.parametrize("fixture", ["timm_vit", "transformers_vit"])
def test_whitened_patch_embedding_has_no_checkpoint_counterpart(fixture):
    with pytest.raises(KzooError) as err:
        load_weights(build(fixture, patch_whitening=True), FIXTURES / f"{fixture}.safetensors")
    assert "whitening layer" in one_line(err) and "patch_whitening=False" in one_line(err)


def test_deeper_checkpoint_leftover_tensors():
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit", depth=1), FIXTURES / "timm_vit.safetensors")
    assert "blocks.1." in one_line(err)


def test_family_mismatch():
    with pytest.raises(KzooError) as err:
        load_weights(build("torchvision_vgg"), FIXTURES / "timm_vit.safetensors")
    assert "timm vit checkpoint" in one_line(err) and "vgg model" in one_line(err)


def test_model_untouched_after_a_failed_load(tmp_path):
    """Shapes are checked for the whole plan before anything is assigned."""
    state = load_file(FIXTURES / "torchvision_resnet.safetensors")
    state["layer4.0.conv2.weight"] = np.zeros((32, 32, 1, 1), np.float32)  # late layer, wrong kernel
    save_file(state, tmp_path / "bad.safetensors")
    model = build("torchvision_resnet")
    before = model.get_layer("conv1").get_weights()[0].copy()
    with pytest.raises(KzooError) as err:
        load_weights(model, tmp_path / "bad.safetensors")
    assert "layer4_0_conv2" in one_line(err) and "(3, 3, 32, 32)" in one_line(err) and "(1, 1, 32, 32)" in one_line(err)
    np.testing.assert_array_equal(model.get_layer("conv1").get_weights()[0], before)


def test_truncated_file(tmp_path):
    data = (FIXTURES / "timm_vit.safetensors").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit"), path)
    assert "truncated" in one_line(err)


def test_corrupt_file(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all" + b"\x00" * 64)
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit"), path)
    assert "corrupt" in one_line(err)
    path.write_bytes(b"abc")
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit"), path)
    one_line(err)


@pytest.mark.parametrize("suffix", [".pth", ".pt", ".bin", ".ckpt"])
def test_pickle_refused_with_conversion_command(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit"), path)
    message = one_line(err)
    assert "never" in message and "save_file(torch.load(" in message and "weights_only=True" in message


def test_unrecognised_layout(tmp_path):
    save_file({"foo.weight": np.zeros((2, 2), np.float32)}, tmp_path / "x.safetensors")
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit"), tmp_path / "x.safetensors")
    assert "unrecognised" in one_line(err)


def test_missing_file():
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit"), "/nonexistent/model.safetensors")
    assert "not found" in one_line(err)
