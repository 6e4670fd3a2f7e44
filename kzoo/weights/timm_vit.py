"""timm ViT state dicts (`patch_embed.proj`, `blocks.{i}.attn.qkv`, ...) -> kzoo ViT.

kzoo's ViT keeps timm's layout (fused qkv, pre-norm blocks), so every tensor maps one-to-one;
a position embedding made for another resolution is resampled to the model's grid.
"""

from __future__ import annotations

import numpy as np
import keras

from kzoo.errors import KzooError
from kzoo.layers.position_embedding import resample_position_embedding
from kzoo.weights.layouts import HEAD, LINEAR, Port, layer as get_layer
from kzoo.weights.resnet import add_torch_layer


def vit_depth(model: keras.Model) -> int:
    return sum(1 for layer in model.layers if layer.name.startswith("block_") and layer.name.endswith("_attn"))


def pos_embed_resampler(layer):
    def resample(array: np.ndarray, target_shape: tuple) -> np.ndarray:
        return np.asarray(
            keras.ops.convert_to_numpy(
                resample_position_embedding(array, None, layer.grid_size, layer.num_prefix_tokens)
            )
        )

    return resample


def add_embeddings(port: Port, model: keras.Model, cls_key: str, pos_key: str, patch_prefix: str) -> None:
    add_torch_layer(port, model.get_layer("patch_embed"), patch_prefix)
    cls = get_layer(model, "cls_token")
    if cls is not None:
        port.add("cls_token", cls.token, cls_key)
    pos = model.get_layer("pos_embed")
    port.add("pos_embed", pos.embedding, pos_key, resample=pos_embed_resampler(pos))


def check_plain_vit(port: Port, model: keras.Model) -> None:
    if get_layer(model, "patch_whiten") is not None:
        raise KzooError(f"{port.source}: {model.name} embeds patches through a whitening layer, which "
                        f"{port.layout} checkpoints do not have: build the model with patch_whitening=False")
    extra = [l.name for l in model.layers if l.name.startswith("head_fc") and l.weights]
    if extra:
        raise KzooError(f"{port.source}: {model.name}'s hidden head layer {extra[0]!r} has no {port.layout} counterpart")


def plan_timm_vit(port: Port, model: keras.Model) -> None:
    check_plain_vit(port, model)
    add_embeddings(port, model, "cls_token", "pos_embed", "patch_embed.proj")
    for i in range(vit_depth(model)):
        p, b = f"block_{i}", f"blocks.{i}"
        add_torch_layer(port, model.get_layer(f"{p}_norm1"), f"{b}.norm1")
        attn = model.get_layer(f"{p}_attn")
        port.add(attn.name, attn.qkv.kernel, f"{b}.attn.qkv.weight", LINEAR)
        if attn.use_bias:
            port.add(attn.name, attn.qkv.bias, f"{b}.attn.qkv.bias")
        port.add(attn.name, attn.proj.kernel, f"{b}.attn.proj.weight", LINEAR)
        port.add(attn.name, attn.proj.bias, f"{b}.attn.proj.bias")
        add_torch_layer(port, model.get_layer(f"{p}_norm2"), f"{b}.norm2")
        add_torch_layer(port, model.get_layer(f"{p}_mlp_fc1"), f"{b}.mlp.fc1")
        add_torch_layer(port, model.get_layer(f"{p}_mlp_fc2"), f"{b}.mlp.fc2")
    for name in ("norm", "fc_norm"):
        norm = get_layer(model, name)
        if norm is not None:
            add_torch_layer(port, norm, name)
    if get_layer(model, "pool") is None:  # features_only model: the final norm and head are unused
        port.ignored_prefixes += ["norm.", "fc_norm.", "head."]
    head = get_layer(model, HEAD)
    if head is not None:
        add_torch_layer(port, head, "head")
    port.head_keys = ["head.weight", "head.bias"]
