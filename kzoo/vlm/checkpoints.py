"""Load a CLIP from a folder or the Hugging Face cache: transformers, OpenCLIP or kzoo's own layout.

A CLIP folder holds the weights, their config and the tokenizer files (`vocab.json` + `merges.txt`,
or `tokenizer.json`), as the Hub repositories do:
- transformers (`openai/clip-vit-base-patch32`): `config.json` (model_type "clip"), `model.safetensors`,
  optionally `preprocessor_config.json` (mean/std);
- OpenCLIP (`laion/CLIP-ViT-B-32-laion2B-s34B-b79K`): `open_clip_config.json`, `open_clip_model.safetensors`;
- kzoo: `clip.keras` (what `kzoo.vlm.save_clip` writes, e.g. after contrastive training).
`hf-hub:owner/name` fetches the same files into the Hugging Face cache (`kzoo.weights.hub`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import keras
import numpy as np

from kzoo.errors import KzooError
from kzoo.vlm.clip import OPENAI_MEAN, OPENAI_STD, CLIPConfig, build_clip, parts
from kzoo.vlm.tokenizer import TOKENIZER_FILES, CLIPTokenizer
from kzoo.weights.layouts import CONCAT_BIAS, CONCAT_LINEAR, CONV, IDENTITY, LINEAR, Port, Transform

KERAS_FILE = "clip.keras"
KZOO_CONFIG = "kzoo_clip.json"
LAYOUT_FILES = {  # layout -> (config file, weights file)
    "open_clip": ("open_clip_config.json", "open_clip_model.safetensors"),
    "transformers": ("config.json", "model.safetensors"),
}
PICKLED = ("open_clip_pytorch_model.bin", "pytorch_model.bin")


@dataclass
class CLIPCheckpoint:
    """A loaded CLIP: the Keras model, its tokenizer, its config and where it came from."""

    model: keras.Model
    tokenizer: CLIPTokenizer
    config: CLIPConfig
    layout: str
    source: str

    @property
    def image_encoder(self) -> keras.Model:
        return parts(self.model)[0]

    @property
    def text_encoder(self) -> keras.Model:
        return parts(self.model)[1]

    def encode_text(self, texts) -> np.ndarray:
        """Projected, unnormalised `(N, embed_dim)` text features of a list of strings."""
        return self.text_encoder.predict(self.tokenizer(texts), batch_size=256, verbose=0)


def load_clip(source: str) -> CLIPCheckpoint:
    """A CLIP from a folder (any layout above) or `hf-hub:owner/name[@revision]`.

    Example:
        >>> clip = load_clip("tests/fixtures/clip/open_clip")  # doctest: +SKIP
        >>> clip.model.output_shape  # doctest: +SKIP
        (None, None)
    """
    directory = _hub_snapshot(source) if source.startswith("hf-hub:") else os.path.expanduser(source)
    if not os.path.isdir(directory):
        raise KzooError(f"--clip {source}: not a folder; expected a CLIP checkpoint folder (config, safetensors "
                        "weights and tokenizer files) or hf-hub:owner/name")
    layout = detect_layout(directory, source)
    if layout == "kzoo":
        from kzoo.training.api import load_checkpoint

        model = load_checkpoint(os.path.join(directory, KERAS_FILE))
        parts(model)
        saved = _read(directory, KZOO_CONFIG)
        config = CLIPConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()})
        tokenizer = CLIPTokenizer.from_directory(directory, context_length=config.context_length, **saved["tokenizer"])
        return CLIPCheckpoint(model, tokenizer, config, layout, source)
    config_file, weights_file = LAYOUT_FILES[layout]
    raw = _read(directory, config_file)
    pad_id, unescape = (0, True) if layout == "open_clip" else (None, False)
    tokenizer = CLIPTokenizer.from_directory(directory, pad_id=pad_id, unescape_html=unescape)
    if layout == "open_clip":
        config = open_clip_config(raw, tokenizer.end_id, source)
    else:
        config = transformers_config(raw, _read(directory, "preprocessor_config.json", required=False),
                                     tokenizer.end_id, source)
    tokenizer.context_length = config.context_length
    model = build_clip(config)
    from kzoo.weights.safetensors_io import StateDict

    with StateDict(os.path.join(directory, weights_file)) as state:
        port = Port(model, state, source, layout)
        (plan_open_clip if layout == "open_clip" else plan_transformers)(port, model, config)
        port.run()
    return CLIPCheckpoint(model, tokenizer, config, layout, source)


def save_clip(checkpoint: CLIPCheckpoint, directory: str) -> str:
    """Write `checkpoint` as a kzoo CLIP folder (`clip.keras`, its config, the tokenizer files)."""
    os.makedirs(directory, exist_ok=True)
    checkpoint.model.save(os.path.join(directory, KERAS_FILE))
    tok = checkpoint.tokenizer
    with open(os.path.join(directory, KZOO_CONFIG), "w") as f:
        json.dump({"config": {k: list(v) if isinstance(v, tuple) else v for k, v in checkpoint.config.__dict__.items()},
                   "tokenizer": {"pad_id": tok.pad_id, "unescape_html": tok.unescape_html}}, f, indent=1)
    merges = sorted(tok.ranks, key=tok.ranks.get)
    with open(os.path.join(directory, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(tok.vocab, f, ensure_ascii=False)
    with open(os.path.join(directory, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return directory


def detect_layout(directory: str, source: str | None = None) -> str:
    source = source or directory
    if os.path.isfile(os.path.join(directory, KERAS_FILE)):
        return "kzoo"
    for layout, (config_file, weights_file) in LAYOUT_FILES.items():
        if not os.path.isfile(os.path.join(directory, config_file)):
            continue
        if layout == "transformers":
            model_type = (_read(directory, config_file) or {}).get("model_type")
            if model_type != "clip":
                raise KzooError(f"--clip {source}: config.json says model_type {model_type!r}; expected a CLIP "
                                "checkpoint (model_type 'clip', e.g. openai/clip-vit-base-patch32)")
        if os.path.isfile(os.path.join(directory, weights_file)):
            return layout
        pickled = [p for p in PICKLED if os.path.isfile(os.path.join(directory, p))]
        if pickled:
            raise KzooError(f"--clip {source}: the weights are a pickle ({pickled[0]}), which kzoo never loads; "
                            f"convert them to {weights_file} (safetensors) first")
        raise KzooError(f"--clip {source}: {config_file} is there but {weights_file} is missing")
    raise KzooError(f"--clip {source}: not a CLIP checkpoint folder (no open_clip_config.json, config.json or "
                    f"{KERAS_FILE}); point it at a transformers or OpenCLIP CLIP folder")


def _read(directory: str, name: str, required: bool = True) -> dict | None:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        if required:
            raise KzooError(f"{directory}: {name} is missing")
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise KzooError(f"{path}: not a readable JSON file ({err})") from None


def _hub_snapshot(spec: str) -> str:
    """Fetch a CLIP repository's files into the HF cache; return the snapshot folder."""
    from kzoo.weights import hub

    repo, revision = hub.parse_hub_id(spec)
    config = hub.fetch(repo, LAYOUT_FILES["open_clip"][0], revision, required=False)
    layout = "open_clip" if config else "transformers"
    config_file, weights_file = LAYOUT_FILES[layout]
    if config is None:
        hub.fetch(repo, config_file, revision)
        hub.fetch(repo, "preprocessor_config.json", revision, required=False)
    weights = hub.fetch(repo, weights_file, revision)
    found = [hub.fetch(repo, name, revision, required=False) for name in TOKENIZER_FILES]
    if not all(found):
        hub.fetch(repo, "tokenizer.json", revision, required=False)
    return os.path.dirname(weights)


# ------------------------------------------------------------------------- configs
def _ints(cfg: dict, defaults: dict, where: str) -> dict:
    out = {}
    for key, default in defaults.items():
        value = cfg.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise KzooError(f"{where}: {key} is {value!r}; kzoo's CLIP supports ViT towers with numeric sizes only")
        out[key] = value
    return out


def transformers_config(raw: dict, preprocessor: dict | None, end_id: int, source: str) -> CLIPConfig:
    text = _ints(raw.get("text_config") or {}, dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                 num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77), f"{source} text_config")
    vision = _ints(raw.get("vision_config") or {}, dict(image_size=224, patch_size=32, hidden_size=768,
                   intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12), f"{source} vision_config")
    acts = {(raw.get(side) or {}).get("hidden_act", "quick_gelu") for side in ("text_config", "vision_config")}
    if len(acts) != 1:
        raise KzooError(f"--clip {source}: the two towers use different activations {sorted(acts)}; kzoo expects one")
    pre = preprocessor or {}
    return CLIPConfig(
        embed_dim=int(raw.get("projection_dim", 512)), image_size=int(vision["image_size"]),
        patch_size=int(vision["patch_size"]), vision_width=int(vision["hidden_size"]),
        vision_layers=int(vision["num_hidden_layers"]), vision_heads=int(vision["num_attention_heads"]),
        vision_mlp=int(vision["intermediate_size"]), context_length=int(text["max_position_embeddings"]),
        vocab_size=int(text["vocab_size"]), text_width=int(text["hidden_size"]),
        text_layers=int(text["num_hidden_layers"]), text_heads=int(text["num_attention_heads"]),
        text_mlp=int(text["intermediate_size"]), activation=acts.pop(),
        layer_norm_epsilon=float((raw.get("vision_config") or {}).get("layer_norm_eps", 1e-5)), end_id=end_id,
        mean=tuple(pre.get("image_mean", OPENAI_MEAN)), std=tuple(pre.get("image_std", OPENAI_STD)),
    )


# OpenCLIP options that change the architecture away from the standard ViT CLIP.
_OPEN_CLIP_UNSUPPORTED = {
    "vision_cfg": ("timm_model_name", "attentional_pool", "attn_pooler_queries", "global_average_pool",
                   "no_ln_pre", "final_ln_after_pool", "output_tokens", "ls_init_value", "patch_dropout"),
    "text_cfg": ("hf_model_name", "no_causal_mask", "embed_cls", "ls_init_value", "norm_kwargs", "act_kwargs"),
}


def open_clip_config(raw: dict, end_id: int, source: str) -> CLIPConfig:
    model = raw.get("model_cfg") or {}
    vision, text = model.get("vision_cfg") or {}, model.get("text_cfg") or {}
    for side, cfg in (("vision_cfg", vision), ("text_cfg", text)):
        bad = [k for k in _OPEN_CLIP_UNSUPPORTED[side] if cfg.get(k) not in (None, False, 0, 0.0)]
        if bad:
            raise KzooError(f"--clip {source}: {side}.{bad[0]} = {cfg[bad[0]]!r} is not supported; kzoo loads "
                            "OpenCLIP's standard ViT CLIPs")
    if vision.get("pool_type", "tok") != "tok" or text.get("pool_type", "argmax") not in ("argmax", "eot"):
        raise KzooError(f"--clip {source}: pool_type {vision.get('pool_type')!r}/{text.get('pool_type')!r} "
                        "is not supported; kzoo reads the class token and the end-of-text token")
    v = _ints(vision, dict(image_size=224, patch_size=16, width=768, layers=12, head_width=64, mlp_ratio=4.0),
              f"{source} vision_cfg")
    t = _ints(text, dict(context_length=77, vocab_size=49408, width=512, heads=8, layers=12, mlp_ratio=4.0),
              f"{source} text_cfg")
    pre = raw.get("preprocess_cfg") or {}
    return CLIPConfig(
        embed_dim=int(model.get("embed_dim", 512)), image_size=int(v["image_size"]), patch_size=int(v["patch_size"]),
        vision_width=int(v["width"]), vision_layers=int(v["layers"]), vision_heads=int(v["width"] // v["head_width"]),
        vision_mlp=int(v["width"] * v["mlp_ratio"]), context_length=int(t["context_length"]),
        vocab_size=int(t["vocab_size"]), text_width=int(t["width"]), text_layers=int(t["layers"]),
        text_heads=int(t["heads"]), text_mlp=int(t["width"] * t["mlp_ratio"]),
        activation="quick_gelu" if model.get("quick_gelu") else "gelu", end_id=end_id,
        mean=tuple(pre.get("mean", OPENAI_MEAN)), std=tuple(pre.get("std", OPENAI_STD)),
    )


# ------------------------------------------------------------------------- weight plans
def _leading_ones(n: int) -> Transform:
    """A torch tensor without the leading unit axes Keras keeps (class token, position embeddings)."""
    return Transform(f"unsqueeze{n}", lambda s: (1,) * n + tuple(s[0]), lambda a: a[0].reshape((1,) * n + a[0].shape))


def _plan_blocks(port: Port, tower: keras.Model, prefix: str, depth: int, names: dict) -> None:
    for i in range(depth):
        b, k = f"{prefix}{i}", f"block_{i}"
        attn = tower.get_layer(f"{k}_attn")
        port.add(f"{k}_norm1", tower.get_layer(f"{k}_norm1").gamma, f"{b}.{names['norm1']}.weight")
        port.add(f"{k}_norm1", tower.get_layer(f"{k}_norm1").beta, f"{b}.{names['norm1']}.bias")
        if "qkv" in names:  # OpenCLIP: torch's nn.MultiheadAttention keeps q, k, v in one matrix
            port.add(attn.name, attn.qkv.kernel, f"{b}.{names['qkv']}_weight", LINEAR)
            port.add(attn.name, attn.qkv.bias, f"{b}.{names['qkv']}_bias")
        else:
            qkv = [f"{b}.self_attn.{n}_proj" for n in "qkv"]
            port.add(attn.name, attn.qkv.kernel, [f"{q}.weight" for q in qkv], CONCAT_LINEAR)
            port.add(attn.name, attn.qkv.bias, [f"{q}.bias" for q in qkv], CONCAT_BIAS)
        for layer, key in ((attn.proj, names["proj"]), (tower.get_layer(f"{k}_mlp_fc1"), names["fc1"]),
                           (tower.get_layer(f"{k}_mlp_fc2"), names["fc2"])):
            port.add(attn.name, layer.kernel, f"{b}.{key}.weight", LINEAR)
            port.add(attn.name, layer.bias, f"{b}.{key}.bias")
        port.add(f"{k}_norm2", tower.get_layer(f"{k}_norm2").gamma, f"{b}.{names['norm2']}.weight")
        port.add(f"{k}_norm2", tower.get_layer(f"{k}_norm2").beta, f"{b}.{names['norm2']}.bias")


def _plan_norm(port: Port, layer, key: str) -> None:
    port.add(layer.name, layer.gamma, f"{key}.weight")
    port.add(layer.name, layer.beta, f"{key}.bias")


def _towers(model: keras.Model):
    image, text, scale = parts(model)
    return image, text.get_layer("token_embedding"), text.get_layer("text_transformer"), scale


def plan_transformers(port: Port, model: keras.Model, config: CLIPConfig) -> None:
    image, embedding, text, scale = _towers(model)
    names = dict(norm1="layer_norm1", norm2="layer_norm2", proj="self_attn.out_proj", fc1="mlp.fc1", fc2="mlp.fc2")
    v = "vision_model."
    port.add("cls_token", image.get_layer("cls_token").token, f"{v}embeddings.class_embedding", _leading_ones(2))
    port.add("patch_embed", image.get_layer("patch_embed").kernel, f"{v}embeddings.patch_embedding.weight", CONV)
    port.add("pos_embed", image.get_layer("pos_embed").embedding, f"{v}embeddings.position_embedding.weight",
             _leading_ones(1))
    _plan_norm(port, image.get_layer("norm_pre"), f"{v}pre_layrnorm")  # sic: transformers' spelling
    _plan_blocks(port, image, f"{v}encoder.layers.", config.vision_layers, names)
    _plan_norm(port, image.get_layer("norm"), f"{v}post_layernorm")
    port.add("image_projection", image.get_layer("image_projection").kernel, "visual_projection.weight", LINEAR)
    t = "text_model."
    port.add("token_embedding", embedding.embeddings, f"{t}embeddings.token_embedding.weight")
    port.add("positional_embedding", text.get_layer("positional_embedding").embedding,
             f"{t}embeddings.position_embedding.weight", _leading_ones(1))
    _plan_blocks(port, text, f"{t}encoder.layers.", config.text_layers, names)
    _plan_norm(port, text.get_layer("norm"), f"{t}final_layer_norm")
    port.add("text_projection", text.get_layer("text_projection").kernel, "text_projection.weight", LINEAR)
    port.add("logit_scale", scale.log_scale, "logit_scale", Transform("scalar", lambda s: (), lambda a: a[0].reshape(())))
    port.ignored_prefixes += [f"{v}embeddings.position_ids", f"{t}embeddings.position_ids"]


def plan_open_clip(port: Port, model: keras.Model, config: CLIPConfig) -> None:
    image, embedding, text, scale = _towers(model)
    names = dict(norm1="ln_1", norm2="ln_2", qkv="attn.in_proj", proj="attn.out_proj", fc1="mlp.c_fc", fc2="mlp.c_proj")
    port.add("cls_token", image.get_layer("cls_token").token, "visual.class_embedding", _leading_ones(2))
    port.add("patch_embed", image.get_layer("patch_embed").kernel, "visual.conv1.weight", CONV)
    port.add("pos_embed", image.get_layer("pos_embed").embedding, "visual.positional_embedding", _leading_ones(1))
    _plan_norm(port, image.get_layer("norm_pre"), "visual.ln_pre")
    _plan_blocks(port, image, "visual.transformer.resblocks.", config.vision_layers, names)
    _plan_norm(port, image.get_layer("norm"), "visual.ln_post")
    port.add("image_projection", image.get_layer("image_projection").kernel, "visual.proj", IDENTITY)  # x @ proj
    port.add("token_embedding", embedding.embeddings, "token_embedding.weight")
    port.add("positional_embedding", text.get_layer("positional_embedding").embedding, "positional_embedding",
             _leading_ones(1))
    _plan_blocks(port, text, "transformer.resblocks.", config.text_layers, names)
    _plan_norm(port, text.get_layer("norm"), "ln_final")
    port.add("text_projection", text.get_layer("text_projection").kernel, "text_projection", IDENTITY)
    port.add("logit_scale", scale.log_scale, "logit_scale", Transform("scalar", lambda s: (), lambda a: a[0].reshape(())))
    port.ignored_prefixes += ["attn_mask", "visual.attn_mask"]
