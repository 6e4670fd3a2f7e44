"""ViT builder: timm layout, the Keras example, pools, options, resolution changes."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from model_checks import fit_one_step, images, one_hot, shape_only

import kzoo
from kzoo.errors import KzooError
from kzoo.layers import MultiHeadSelfAttention, PositionEmbedding, adapt_whitening, resample_position_embedding
from kzoo.models.vit import ViTConfig, build_vit

TINY = dict(dim=16, depth=1, heads=2, mlp_dim=32)


def test_vit_cifar_tiny_is_timms_network():
    # timm VisionTransformer(img_size=32, patch_size=4, embed_dim=128, depth=4, num_heads=2,
    # mlp_ratio=2, num_classes=10) has 546,186 parameters.
    model = build_vit(image_size=32, patch_size=4, dim=128, depth=4, heads=2, mlp_dim=256, num_classes=10, pool="cls")
    assert model.count_params() == 546_186
    assert kzoo.create_model("vit_cifar_tiny", num_classes=10).count_params() == 546_186
    names = [layer.name for layer in model.layers]
    assert names[:6] == ["images", "normalization", "patch_embed", "patch_tokens", "cls_token", "pos_embed"]
    assert names[-3:] == ["norm", "pool", "head"]
    assert model.get_layer("pos_embed").embedding.shape == (1, 65, 128)
    attn = model.get_layer("block_0_attn")
    assert attn.qkv.kernel.shape == (128, 384) and attn.qkv.bias is not None
    assert model.get_layer("block_0_norm1").epsilon == 1e-6
    fc1 = model.get_layer("block_0_mlp_fc1")
    # Exact erf GELU: gelu(1) = 0.841345, the tanh approximation gives 0.841192.
    assert float(keras.ops.convert_to_numpy(fc1.activation(keras.ops.ones(())))) == pytest.approx(0.841345, abs=1e-6)
    assert model.get_layer("block_0_mlp_fc2").activation is keras.activations.linear


def test_whitened_patch_embedding_is_linear_in_whitened_patches():
    model = kzoo.create_model("vit_cifar_tiny_whiten", num_classes=10)
    # vit_cifar_tiny's 546,186 with the 48x128 patch kernel replaced by 96x128 over +-whitened patches,
    # plus the whitening's 96 trainable offsets; its 4x4x3x96 filters are frozen.
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 546_186 + 48 * 128 + 96
    assert model.get_layer("patch_whiten").strides == 4
    assert model.get_layer("patch_whiten").output.shape == (None, 8, 8, 96)
    rng = np.random.default_rng(0)
    pixels = np.clip(rng.normal(120, 60, (64, 32, 32, 1)) + rng.normal(0, 10, (64, 32, 32, 3)), 0, 255)
    assert adapt_whitening(model, pixels) == 1
    # the channels' shared intensity makes the raw patches strongly correlated; the tokens' inputs are not
    tokens_in = keras.Model(model.inputs, model.get_layer("patch_whiten").output).predict(pixels, verbose=0)
    flat = tokens_in[..., :48].reshape(-1, 48) - keras.ops.convert_to_numpy(model.get_layer("patch_whiten").bias)[:48]
    np.testing.assert_allclose(flat.T @ flat / len(flat), np.eye(48), atol=0.1)


def test_pooled_whitened_vit_has_no_class_token():
    model = kzoo.create_model("vit_cifar_tiny_whiten_gap", num_classes=10)
    names = [layer.name for layer in model.layers]
    assert "cls_token" not in names and names[-3:] == ["pool", "fc_norm", "head"]
    assert model.get_layer("pos_embed").embedding.shape == (1, 64, 128)
    # vit_cifar_tiny_whiten's count less the class token and its position embedding (2 x 128)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 546_186 + 48 * 128 + 96 - 2 * 128
    tokens = keras.Model(model.inputs, model.get_layer("block_3").output)
    pooled = keras.Model(model.inputs, model.get_layer("pool").output)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(pooled.predict(images, verbose=0), tokens.predict(images, verbose=0).mean(1), atol=1e-5)


def test_keras_example_vit():
    with shape_only():
        model = kzoo.create_model("vit_keras_example", num_classes=100)
    names = [layer.name for layer in model.layers]
    assert model.input_shape == (None, 72, 72, 3)
    assert "cls_token" not in names
    assert model.get_layer("pos_embed").embedding.shape == (1, 144, 64)
    attn = model.get_layer("block_0_attn")
    assert (attn.num_heads, attn.head_dim, attn.attn_dropout) == (4, 64, 0.1)
    assert attn.qkv.kernel.shape == (64, 768) and attn.proj.kernel.shape == (256, 64)
    assert sum(isinstance(layer, MultiHeadSelfAttention) for layer in model.layers) == 8
    assert model.get_layer("block_7_mlp_fc2").activation is keras.activations.gelu
    assert model.get_layer("block_7_mlp_drop2").rate == 0.1
    assert "block_0_proj_drop" not in names and "pos_drop" not in names
    assert names[-8:] == ["norm", "pool", "head_drop1", "head_fc1", "head_drop2", "head_fc2", "head_drop", "head"]
    assert [model.get_layer(n).units for n in ("head_fc1", "head_fc2", "head")] == [2048, 1024, 100]
    assert all(model.get_layer(n).rate == 0.5 for n in ("head_drop1", "head_drop2", "head_drop"))
    assert model.get_layer("head_fc1").activation is keras.activations.gelu
    assert model.get_layer("pool").output.shape == (None, 144 * 64)
    # The keras.io example's parameter count (its adapted Normalization layer aside).
    assert model.count_params() == 21_759_012


@pytest.mark.parametrize("pool", ["cls", "gap", "flatten"])
def test_pools(pool):
    model = build_vit(image_size=(16, 32), patch_size=8, pool=pool, num_classes=3, **TINY)
    assert model.predict(images(2, (16, 32, 3)), verbose=0).shape == (2, 3)
    names = [layer.name for layer in model.layers]
    if pool == "gap":
        assert names.index("fc_norm") > names.index("pool") and "norm" not in names
    else:
        assert names.index("norm") < names.index("pool")
    if pool == "flatten":
        assert model.get_layer("pool").output.shape == (None, 9 * 16)


def test_no_head_and_options():
    model = build_vit(image_size=32, patch_size=8, num_classes=0, **TINY)
    assert model.output_shape == (None, 16)
    model = build_vit(image_size=32, patch_size=8, num_classes=4, drop_path=0.2, dropout=0.1, **{**TINY, "depth": 3})
    names = [layer.name for layer in model.layers]
    assert "block_0_drop_path1" not in names  # the schedule starts at 0
    assert model.get_layer("block_1_drop_path1").rate == pytest.approx(0.1)
    assert model.get_layer("block_2_drop_path2").rate == pytest.approx(0.2)
    assert {"pos_drop", "block_0_proj_drop", "block_0_mlp_drop1", "head_drop"} <= set(names)


def test_trains_with_every_regulariser():
    # Stochastic depth and attention dropout inside a compiled train step (JAX threads the seeds).
    model = build_vit(
        image_size=32, patch_size=8, num_classes=3, drop_path=0.5, attn_dropout=0.1, dropout=0.1, **{**TINY, "depth": 2}
    )
    fit_one_step(model, images(4), one_hot([0, 1, 2, 0], 3))


def test_user_errors():
    with pytest.raises(KzooError, match="divisible by patch size"):
        build_vit(image_size=30, patch_size=8, **TINY)
    with pytest.raises(KzooError, match="class_token"):
        build_vit(image_size=32, patch_size=8, class_token=False, pool="cls", **TINY)
    with pytest.raises(KzooError, match="unknown option"):
        build_vit(image_size=32, patch_size=8, mlp_ratio=4, **TINY)
    with pytest.raises(KzooError, match="not divisible by 3 heads"):
        ViTConfig(dim=16, heads=3)


def _tiny_vit(image_size):
    return build_vit(image_size=image_size, patch_size=16, num_classes=5, **TINY)


@pytest.mark.parametrize("target", [(384, 384), (160, 256)])
def test_load_weights_from_another_resolution(target, tmp_path):
    source = _tiny_vit(224)
    path = tmp_path / "vit224.weights.h5"
    source.save_weights(path)
    model = _tiny_vit(target)
    model.load_weights(path)

    grid = (target[0] // 16, target[1] // 16)
    expected = resample_position_embedding(source.get_layer("pos_embed").embedding, (14, 14), grid, 1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.get_layer("pos_embed").embedding),
        keras.ops.convert_to_numpy(expected),
        rtol=1e-6,
    )
    for layer in ("patch_embed", "cls_token", "block_0_attn", "head"):
        for a, b in zip(source.get_layer(layer).get_weights(), model.get_layer(layer).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert model.predict(images(1, (*target, 3)), verbose=0).shape == (1, 5)


def test_load_weights_from_a_non_square_grid(tmp_path):
    source = _tiny_vit((160, 256))
    path = tmp_path / "vit160x256.weights.h5"
    source.save_weights(path)
    model = _tiny_vit(224)
    model.load_weights(path)
    expected = resample_position_embedding(source.get_layer("pos_embed").embedding, (10, 16), (14, 14), 1)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model.get_layer("pos_embed").embedding),
        keras.ops.convert_to_numpy(expected),
        rtol=1e-6,
    )


def test_features_are_patch_grids():
    model = build_vit(
        image_size=(32, 64), patch_size=8, features_only=True, out_indices=(0, -1), **{**TINY, "depth": 3}
    )
    assert model.output_shape == [(None, 4, 8, 16), (None, 4, 8, 16)]
    assert {"block_0_grid", "block_2_grid"} <= {layer.name for layer in model.layers}
    maps = model.predict(images(2, (32, 64, 3)), verbose=0)
    assert [m.shape for m in maps] == [(2, 4, 8, 16), (2, 4, 8, 16)]
    assert isinstance(model.get_layer("pos_embed"), PositionEmbedding)
