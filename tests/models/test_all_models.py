"""One shared check for every registered model (keras-hub's run_backbone_test pattern).

Each name is built twice: at its registered size without materialising weights (structure and
conventions), and at a tiny size (same family options, small widths/depths, 32x32 input,
3 classes) that must save/load exactly, train a step in float32 and mixed_bfloat16, and
return its stage feature maps. Names whose tiny networks are identical (resnet50/101/152
with one block in each of two stages, the timm ViT sizes) run the heavy part once per distinct network.

A family added by another module gets the structure check automatically; the tiny check
needs an entry in TINY (its builder must accept keywords that shrink it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from model_checks import fit_one_step, images, one_hot, shape_only
from tiny_models import TINY

import kzoo
from kzoo.layers import ImageNormalization, PatchWhitening
from kzoo.models.common import STAGE_OUTPUT
from kzoo.registry import get_entry

TINY_INPUT = (32, 32, 3)
NUM_CLASSES = 3

# Families whose tiny fit/save/bf16 checks live in their own module (their builders need
# different shrinking and, for CAM models, a two-output loss).
OWN_CHECKS = {"odresnet": "tests/models/test_odconv_nets.py", "vgg_cam": "tests/explain/test_cam_head.py"}


def tiny_overrides(name: str) -> dict:
    entry = get_entry(name)
    if entry.family in OWN_CHECKS:
        pytest.skip(f"family {entry.family!r} is checked in {OWN_CHECKS[entry.family]}")
    if entry.family not in TINY:
        pytest.skip(f"family {entry.family!r} has no tiny configuration: add one to TINY in {__file__}")
    overrides = dict(TINY[entry.family])
    if entry.family == "vit":
        if entry.config.get("head_dim"):
            overrides["head_dim"] = 8
        if entry.config.get("head_hidden_units"):
            overrides["head_hidden_units"] = (16, 8)
    return overrides


def _network_key(name: str) -> str:
    # Two names with the same builder and the same effective keywords build the same network.
    entry = get_entry(name)
    builder = entry.build_fn()
    config = {**entry.config, **tiny_overrides(name)}
    return f"{builder.__module__}.{builder.__name__}:{sorted(config.items())!r}"


_FULLY_CHECKED: dict[str, str] = {}


@pytest.mark.parametrize("name", kzoo.list_models())
def test_registered_size_structure(name):
    entry = get_entry(name)
    with shape_only():
        model = kzoo.create_model(name)
        features = kzoo.create_model(name, features_only=True)
    assert model.input_shape == (None, *entry.input_shape)
    # Logits come first (a CAM model adds a heatmap output after them), float32 always.
    logits = model.outputs[0]
    assert tuple(logits.shape) == (None, entry.num_classes) and logits.dtype == "float32"
    names = [layer.name for layer in model.layers]
    if "head" in names:
        head = model.get_layer("head")
        assert isinstance(head, keras.layers.Dense) and head.dtype_policy.name == "float32"
    # A fused model's branches are sub-models: the input and stage conventions hold in each.
    branches = [layer for layer in model.layers if isinstance(layer, keras.Model)] or [model]
    for branch in branches:
        assert isinstance(branch.layers[1], ImageNormalization), f"{name}/{branch.name}: no normalization"
        stages = [layer.name for layer in branch.layers if STAGE_OUTPUT.match(layer.name)]
        assert stages, f"{name}/{branch.name}: no stage outputs named stage{{k}} / block_{{i}}"
    assert features.outputs and all(len(t.shape) == 4 for t in features.outputs)
    # torch pads symmetrically: a strided window > 1 must pad explicitly, never "same".
    for layer in [inner for branch in branches for inner in branch.layers]:
        strides = getattr(layer, "strides", None)
        window = getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)
        if strides and window and np.max(strides) > 1 and np.max(window) > 1:
            padding = getattr(layer, "padding", "valid")  # PatchWhitening is always valid
            assert padding != "same", f"{name}: {layer.name} pads 'same' with stride {layer.strides}"


@pytest.mark.parametrize("name", kzoo.list_models())
def test_tiny_build_save_train_features(name, tmp_path):
    overrides = tiny_overrides(name)
    x = images(2, TINY_INPUT)
    y = one_hot([0, 2], NUM_CLASSES)

    model = kzoo.create_model(name, num_classes=NUM_CLASSES, input_shape=TINY_INPUT, **overrides)
    assert model.output_shape == (None, NUM_CLASSES) and model.output.dtype == "float32"
    key = _network_key(name)
    if key in _FULLY_CHECKED:
        return  # the same network was run, saved, trained and cut into features for another name
    _FULLY_CHECKED[key] = name

    # predict (one compiled forward) rather than eager calls: far cheaper under JAX on CPU.
    logits = model.predict(x, verbose=0)
    assert logits.shape == (2, NUM_CLASSES) and logits.dtype == np.float32
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), logits)

    fit_one_step(model, x, y)

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = kzoo.create_model(name, num_classes=NUM_CLASSES, input_shape=TINY_INPUT, **overrides)
        assert mixed.output.dtype == "float32"
        fit_one_step(mixed, x, y)
    finally:
        keras.mixed_precision.set_global_policy("float32")

    features = kzoo.create_model(
        name, num_classes=NUM_CLASSES, input_shape=TINY_INPUT, features_only=True, **overrides
    )
    # Shapes only: the maps are cut from the graph that just ran; running them again would
    # only add a compile (test_features / test_vit run feature models for real).
    shapes = [tuple(t.shape) for t in features.outputs]
    assert shapes
    if any(isinstance(layer, PatchWhitening) and layer.strides == 1 for layer in model.layers):
        # airbench's 2x2 whitening stem has no padding (as in the reference): maps are 15, 7, 3 at 32.
        assert all(s[1] == s[2] and s[1] in (15, 7, 3) for s in shapes), shapes
        return
    for shape in shapes:
        assert len(shape) == 4 and TINY_INPUT[0] % shape[1] == 0 and TINY_INPUT[1] % shape[2] == 0


_NO_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc, sys

    class BlockTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"{name} is blocked for this test")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())

    import keras
    import numpy as np
    import kzoo

    assert keras.backend.backend() == "jax", keras.backend.backend()
    model = kzoo.create_model("vit_cifar_tiny", num_classes=10)
    model.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    x = np.random.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[[0, 1, 2, 3]]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)
    print("ok")
    """
)


def test_models_train_under_jax_without_tensorflow():
    if keras.backend.backend() != "jax":
        pytest.skip("runs in the JAX pass (KERAS_BACKEND=jax)")
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", _NO_TENSORFLOW], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]
