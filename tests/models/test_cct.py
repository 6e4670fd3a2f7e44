"""Compact convolutional transformers: the paper's CIFAR model size and the sequence-pooled head."""

import numpy as np
import pytest
from model_checks import shape_only, trainable_count

import kzoo

pytestmark = pytest.mark.backend_agnostic

# One pre-norm block at width 256, MLP 512, qkv without bias: 2 LayerNorms 1,024 + qkv 196,608 +
# proj 65,792 + MLP 262,912.
BLOCK_256_PARAMS = 1_024 + 196_608 + 65_792 + 262_912


def test_cct_7_3x1_has_the_papers_size():
    with shape_only():
        model = kzoo.create_model("cct_7_3x1")
    # tokenizer conv 3*3*3*256, position embedding 256 tokens x 256, 7 blocks, final norm 512, pooling
    # score 257, head 2,570
    blocks = 7 * BLOCK_256_PARAMS
    assert trainable_count(model) == 6_912 + 65_536 + blocks + 512 + 257 + 2_570 == 3_760_139
    assert round(trainable_count(model) / 1e6, 2) == 3.76  # Hassani et al. 2021, Table 2
    assert model.get_layer("pos_embed").output.shape == (None, 256, 256)


def test_cct_airbench_tokens_come_from_the_whitened_conv_groups():
    model = kzoo.create_model("cct_airbench", num_classes=3, tokenizer_widths=(8, 16), heads=2)
    assert model.get_layer("tokens").output.shape == (None, 49, 16)  # 31 -> 15 -> 7 at 32x32
    logits = model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0)
    assert logits.shape == (2, 3) and np.isfinite(logits).all()


def test_cct_airbench_d1_is_cct_airbench_less_one_block():
    with shape_only():
        two, one = kzoo.create_model("cct_airbench"), kzoo.create_model("cct_airbench_d1")
    names = {layer.name for layer in one.layers}
    assert any(n.startswith("block_0") for n in names)
    assert not any(n.startswith("block_1") for n in names)
    assert trainable_count(two) - trainable_count(one) == BLOCK_256_PARAMS
