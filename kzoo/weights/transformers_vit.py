"""Hugging Face transformers ViT state dicts (`ViTModel`, `ViTForImageClassification`) -> kzoo ViT.

transformers splits attention into `query`/`key`/`value` Linears (concatenated here into
kzoo's fused `qkv`), uses layer-norm eps 1e-12 (set on the model's LayerNormalization layers)
and has a tanh `pooler` kzoo does not use. `ViTModel` checkpoints have no `vit.` prefix and no
classifier.
"""

from __future__ import annotations

import keras

from kzoo.weights.layouts import CONCAT_BIAS, CONCAT_LINEAR, HEAD, LINEAR, Port, layer as get_layer
from kzoo.weights.resnet import add_torch_layer
from kzoo.weights.timm_vit import add_embeddings, check_plain_vit, vit_depth

HF_LAYER_NORM_EPS = 1e-12


def plan_transformers_vit(port: Port, model: keras.Model) -> None:
    check_plain_vit(port, model)
    keys = list(port.state)
    p = "vit." if any(k.startswith("vit.") for k in keys) else ""
    add_embeddings(
        port, model, f"{p}embeddings.cls_token", f"{p}embeddings.position_embeddings",
        f"{p}embeddings.patch_embeddings.projection",
    )
    legacy = any(k.startswith(f"{p}encoder.layer.") for k in keys)
    for i in range(vit_depth(model)):
        k = f"block_{i}"
        if legacy:  # the files on the Hub, transformers <= 4 and 5's save_pretrained
            b = f"{p}encoder.layer.{i}"
            qkv = [f"{b}.attention.attention.{n}" for n in ("query", "key", "value")]
            proj, fc1, fc2 = f"{b}.attention.output.dense", f"{b}.intermediate.dense", f"{b}.output.dense"
        else:  # transformers 5's in-memory names (a state_dict() saved directly)
            b = f"{p}layers.{i}"
            qkv = [f"{b}.attention.{n}_proj" for n in ("q", "k", "v")]
            proj, fc1, fc2 = f"{b}.attention.o_proj", f"{b}.mlp.fc1", f"{b}.mlp.fc2"
        add_torch_layer(port, model.get_layer(f"{k}_norm1"), f"{b}.layernorm_before")
        attn = model.get_layer(f"{k}_attn")
        port.add(attn.name, attn.qkv.kernel, [f"{q}.weight" for q in qkv], CONCAT_LINEAR)
        if attn.use_bias:
            port.add(attn.name, attn.qkv.bias, [f"{q}.bias" for q in qkv], CONCAT_BIAS)
        port.add(attn.name, attn.proj.kernel, f"{proj}.weight", LINEAR)
        port.add(attn.name, attn.proj.bias, f"{proj}.bias")
        add_torch_layer(port, model.get_layer(f"{k}_norm2"), f"{b}.layernorm_after")
        add_torch_layer(port, model.get_layer(f"{k}_mlp_fc1"), fc1)
        add_torch_layer(port, model.get_layer(f"{k}_mlp_fc2"), fc2)
    norm = get_layer(model, "norm") or get_layer(model, "fc_norm")
    if norm is not None:
        add_torch_layer(port, norm, f"{p}layernorm")
    head = get_layer(model, HEAD)
    if head is not None and "classifier.weight" in port.state:
        add_torch_layer(port, head, "classifier")
    port.head_keys = [k for k in ("classifier.weight", "classifier.bias") if k in port.state]
    port.ignored_prefixes.append(f"{p}pooler.")
    if get_layer(model, "pool") is None:  # features_only model
        port.ignored_prefixes += [f"{p}layernorm.", "classifier."]


def set_layer_norm_epsilon(model: keras.Model, epsilon: float) -> None:
    """transformers' ViT uses eps 1e-12 (kzoo/timm: 1e-6); LayerNormalization reads it in call()."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.LayerNormalization):
            layer.epsilon = float(epsilon)
