"""ViT layers: attention against a reference, fused-kernel use, stochastic depth, tokens, positions."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from kzoo.errors import KzooError
from kzoo.layers import (
    ClassToken,
    DropPath,
    MultiHeadSelfAttention,
    PositionEmbedding,
    SequencePooling,
    TokenPooling,
    TokensToGrid,
    resample_position_embedding,
)
from kzoo.layers.vit_layers import even_length_attention


def _np(x):
    return ops.convert_to_numpy(x)


def _reference_attention(x, qkv_w, qkv_b, proj_w, proj_b, heads, head_dim):
    # timm's Attention.forward, in numpy.
    b, n, _ = x.shape
    qkv = (x @ qkv_w + qkv_b).reshape(b, n, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    logits = q @ k.transpose(0, 1, 3, 2) * head_dim**-0.5
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = (probs @ v).transpose(0, 2, 1, 3).reshape(b, n, heads * head_dim)
    return out @ proj_w + proj_b


@pytest.mark.parametrize("heads, head_dim", [(2, None), (4, 8)])
def test_attention_matches_timm_reference(heads, head_dim):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 16)).astype("float32")
    layer = MultiHeadSelfAttention(heads, head_dim)
    layer(x)
    weights = [rng.normal(scale=0.3, size=w.shape).astype("float32") for w in layer.get_weights()]
    layer.set_weights(weights)
    expected = _reference_attention(x, *weights, heads, head_dim or 16 // heads)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-4, atol=1e-5)


def test_attention_path_depends_on_the_device(monkeypatch):
    from kzoo.layers import vit_layers

    calls = []
    original = keras.ops.dot_product_attention

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(keras.ops, "dot_product_attention", spy)
    x = np.random.default_rng(0).normal(size=(1, 4, 8)).astype("float32")
    layer = MultiHeadSelfAttention(2, attn_dropout=0.5)
    # CPU: heads-first batched matmuls (1.6-1.9x faster there), never dot_product_attention.
    plain = _np(layer(x, training=False))
    dropped = _np(layer(x, training=True))
    assert calls == []
    assert not np.allclose(plain, dropped)  # attention dropout is active in training
    # GPU: the backend's fused kernel, except when attention dropout needs the probabilities.
    monkeypatch.setattr(vit_layers, "_fused_attention_on_gpu", lambda: True)
    np.testing.assert_allclose(_np(layer(x, training=False)), plain, rtol=1e-5, atol=1e-6)
    assert len(calls) == 1
    layer(x, training=True)
    assert len(calls) == 1


@pytest.mark.parametrize("length", [5, 6])
def test_even_length_attention_is_exact(length):
    # The GPU training path pads odd token counts (ViT's 197) for cuDNN and masks the pad key.
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(2, length, 3, 8)).astype("float32") for _ in range(3))
    out = even_length_attention(q, k, v, scale=0.35)
    assert tuple(out.shape) == (2, length, 3, 8)
    np.testing.assert_allclose(
        _np(out), _np(ops.dot_product_attention(q, k, v, scale=0.35)), rtol=1e-5, atol=1e-6
    )


def test_attention_takes_the_padded_path_only_in_training_on_gpu(monkeypatch):
    from kzoo.layers import vit_layers

    calls = []
    monkeypatch.setattr(vit_layers, "_fused_attention_on_gpu", lambda: True)
    monkeypatch.setattr(
        vit_layers, "even_length_attention",
        lambda *a, **kw: calls.append(kw) or vit_layers.ops.dot_product_attention(*a[:3], scale=a[3]),
    )
    x = np.ones((1, 5, 8), "float32")
    layer = MultiHeadSelfAttention(2)
    layer(x, training=False)
    assert calls == []
    layer(x, training=True)
    assert calls == [{"flash_attention": True}]


def test_attention_inner_width_can_differ_from_dim():
    # Keras MultiHeadAttention(num_heads=4, key_dim=64) on width 64: same parameter count.
    x = keras.Input((9, 64))
    ours = MultiHeadSelfAttention(4, head_dim=64)
    ours(x)
    keras_mha = keras.layers.MultiHeadAttention(num_heads=4, key_dim=64)
    keras_mha(x, x)
    assert ours.qkv.kernel.shape == (64, 768) and ours.proj.kernel.shape == (256, 64)
    assert ours.count_params() == keras_mha.count_params()


def test_drop_path_drops_whole_samples_and_rescales():
    x = np.ones((64, 3, 4), "float32")
    layer = DropPath(0.5, seed=1)
    np.testing.assert_array_equal(_np(layer(x)), x)
    np.testing.assert_array_equal(_np(layer(x, training=False)), x)
    out = _np(layer(x, training=True))
    per_sample = out.reshape(64, -1)
    assert set(np.unique(per_sample)) <= {0.0, 2.0}
    assert np.all(per_sample.min(1) == per_sample.max(1)), "a sample was only partly dropped"
    assert 0 < (per_sample[:, 0] == 0).sum() < 64
    np.testing.assert_array_equal(_np(DropPath(0.0)(x, training=True)), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_class_token_and_pooling_and_grid():
    tokens = np.arange(2 * 7 * 3, dtype="float32").reshape(2, 7, 3)
    with_cls = ClassToken()(tokens)
    assert with_cls.shape == (2, 8, 3)
    np.testing.assert_array_equal(_np(with_cls)[:, 1:], tokens)

    np.testing.assert_array_equal(_np(TokenPooling("cls")(tokens)), tokens[:, 0])
    np.testing.assert_allclose(_np(TokenPooling("gap", 1)(tokens)), tokens[:, 1:].mean(1))
    np.testing.assert_array_equal(_np(TokenPooling("flatten")(tokens)), tokens.reshape(2, 21))
    with pytest.raises(KzooError, match="unknown pool"):
        TokenPooling("max")

    grid = _np(TokensToGrid((2, 3), num_prefix_tokens=1)(tokens))
    assert grid.shape == (2, 2, 3, 3)
    # Row-major: patch token r * W + c sits at grid[r, c] (timm / Conv2D patch order).
    np.testing.assert_array_equal(grid[:, 1, 2], tokens[:, 1 + 1 * 3 + 2])


def test_resample_keeps_prefix_and_resizes_the_grid():
    rng = np.random.default_rng(0)
    posemb = rng.normal(size=(1, 1 + 14 * 14, 8)).astype("float32")
    same = resample_position_embedding(posemb, (14, 14), (14, 14), 1)
    np.testing.assert_array_equal(_np(same), posemb)
    bigger = _np(resample_position_embedding(posemb, None, (24, 24), 1))
    assert bigger.shape == (1, 1 + 24 * 24, 8)
    np.testing.assert_array_equal(bigger[:, 0], posemb[:, 0])
    wide = _np(resample_position_embedding(posemb, (14, 14), (10, 16), 1))
    assert wide.shape == (1, 1 + 160, 8)
    # A constant grid stays constant under resizing (no shift, no edge darkening).
    flat = np.concatenate([np.zeros((1, 1, 8)), np.ones((1, 196, 8))], 1).astype("float32")
    np.testing.assert_allclose(_np(resample_position_embedding(flat, (14, 14), (10, 16), 1))[:, 1:], 1.0, atol=1e-5)
    with pytest.raises(KzooError, match="not a square grid"):
        resample_position_embedding(posemb[:, :-1], None, (4, 4), 1)


def test_position_embedding_loads_another_grid():
    source = PositionEmbedding((4, 6), num_prefix_tokens=1)
    source(np.zeros((1, 25, 8), "float32"))
    store = {}
    source.save_own_variables(store)
    assert tuple(store["grid"]) == (4, 6)

    target = PositionEmbedding((6, 6), num_prefix_tokens=1)
    target(np.zeros((1, 37, 8), "float32"))
    target.load_own_variables(store)
    expected = resample_position_embedding(_np(source.embedding), (4, 6), (6, 6), 1)
    np.testing.assert_allclose(_np(target.embedding), _np(expected), rtol=1e-6)

    same = PositionEmbedding((4, 6), num_prefix_tokens=1)
    same(np.zeros((1, 25, 8), "float32"))
    same.load_own_variables(store)
    np.testing.assert_array_equal(_np(same.embedding), _np(source.embedding))

    narrow = PositionEmbedding((6, 6), num_prefix_tokens=1)
    narrow(np.zeros((1, 37, 4), "float32"))
    with pytest.raises(KzooError, match="width differs"):
        narrow.load_own_variables(store)


def test_sequence_pooling_is_a_softmax_weighted_sum_of_the_tokens():
    x = np.random.default_rng(1).normal(size=(2, 5, 4)).astype("float32")
    layer = SequencePooling()
    layer(x)
    kernel, bias = np.array([[1.0], [-2.0], [0.5], [0.0]], "float32"), np.array([0.3], "float32")
    layer.set_weights([kernel, bias])
    scores = x @ kernel + bias  # (2, 5, 1)
    weights = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(_np(layer(x)), (weights * x).sum(axis=1), rtol=1e-5, atol=1e-6)
    layer.set_weights([np.zeros_like(kernel), bias])  # equal scores: the plain mean of the tokens
    np.testing.assert_allclose(_np(layer(x)), x.mean(axis=1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "layer, x",
    [
        (DropPath(0.1, seed=3), np.zeros((2, 3, 4), "float32")),
        (ClassToken(), np.zeros((2, 3, 4), "float32")),
        (
            MultiHeadSelfAttention(2, head_dim=3, output_dim=4, attn_dropout=0.1, use_bias=False),
            np.zeros((2, 3, 4), "float32"),
        ),
        (PositionEmbedding((1, 3), num_prefix_tokens=0), np.zeros((2, 3, 4), "float32")),
        (TokenPooling("gap", 1), np.zeros((2, 3, 4), "float32")),
        (TokensToGrid((1, 2), 1), np.zeros((2, 3, 4), "float32")),
        (SequencePooling(), np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")),
    ],
)
def test_layers_serialize(layer, x):
    layer(x)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"].startswith("kzoo>")
    clone = keras.saving.deserialize_keras_object(config)
    assert clone.get_config() == layer.get_config()
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(_np(clone(x)), _np(layer(x)))
