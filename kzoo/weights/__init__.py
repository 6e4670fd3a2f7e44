"""Loading weights into kzoo models: Keras files, safetensors state dicts from timm / torchvision /
transformers, and `hf-hub:` repositories.

    load_weights(model, "best.keras")                      # or .weights.h5
    load_weights(model, "resnet50.safetensors")            # torchvision or timm layout, detected
    load_weights(model, "hf-hub:timm/resnet50.tv_in1k")    # downloaded into the HF cache

Pickled checkpoints (.pth/.pt/.bin/.ckpt) are refused with the command that converts them.
"""

from __future__ import annotations

import logging
import os

import keras

from kzoo.errors import KzooError
from kzoo.weights.preprocessing import (
    Preprocessing,
    apply_preprocessing,
    get_preprocessing,
    reset_compiled_functions,
    save_preprocessing,
)
from kzoo.weights.safetensors_io import PICKLE_SUFFIXES, StateDict, refuse_pickle

log = logging.getLogger("kzoo.weights")

__all__ = [
    "Preprocessing",
    "get_preprocessing",
    "load_safetensors",
    "load_weights",
    "resolve_pretrained",
    "save_preprocessing",
]

def resolve_pretrained(entry) -> str:
    """The default checkpoint of a registry entry (or model name), set where the variant is
    registered; a name without one raises a one-line `KzooError`.

    Example:
        >>> resolve_pretrained("resnet50")
        'hf-hub:timm/resnet50.tv_in1k'
    """
    if isinstance(entry, str):
        from kzoo.registry import get_entry

        entry = get_entry(entry)
    tag = entry.pretrained
    if not tag:
        from kzoo.registry import list_models

        have = ", ".join(list_models(pretrained=True)[:6])
        raise KzooError(
            f"{entry.name} has no pretrained weights; pass weights=PATH or weights='hf-hub:owner/name' "
            f"(models with defaults: {have}, ...)"
        )
    return tag


def load_weights(model: keras.Model, path, *, preprocessing: bool = True) -> keras.Model:
    """Load weights into `model` in place and return it.

    Args:
        model: a kzoo model.
        path: a `.keras` / `.weights.h5` file, a `.safetensors` state dict (timm, torchvision or
            transformers layout, detected from its key names) or `hf-hub:owner/name[@revision]`.
        preprocessing: for hub checkpoints (or a local `.safetensors` with a `config.json` /
            `preprocessor_config.json` beside it), write the checkpoint's mean/std,
            interpolation and crop fraction into the model's `ImageNormalization` config (saved
            with the model; `kzoo.weights.get_preprocessing(model)` reads it back).

    A mismatching file raises a one-line `KzooError` naming the first layer and both shapes; a
    checkpoint with another class count loads everything but the head (a logged warning).

    Example:
        >>> model = kzoo.create_model("resnet18_cifar", num_classes=10)
        >>> kzoo.weights.load_weights(model, "runs/r18/best.keras")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if path.startswith("hf-hub:"):
        from kzoo.weights.hub import fetch_checkpoint

        weights, config, preprocessor = fetch_checkpoint(path)
        return load_safetensors(model, weights, config=config, preprocessor_config=preprocessor,
                                preprocessing=preprocessing, source=path)
    if path.lower().endswith(PICKLE_SUFFIXES):
        raise refuse_pickle(path)
    if not os.path.exists(path):
        raise KzooError(f"weights file not found: {path}")
    if path.endswith(".safetensors"):
        config, preprocessor = _sibling_configs(path)
        return load_safetensors(model, path, config=config, preprocessor_config=preprocessor,
                                preprocessing=preprocessing)
    if path.endswith(".keras"):
        return _load_keras_file(model, path)
    if path.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except ValueError as err:
            raise KzooError(f"{path} does not match {model.name}: {_first_line(err)}") from None
        return model
    raise KzooError(
        f"unsupported weights file {path}: expected .keras, .weights.h5, .safetensors or hf-hub:owner/name"
    )


def load_safetensors(
    model: keras.Model,
    path: str,
    config: dict | None = None,
    preprocessor_config: dict | None = None,
    preprocessing: bool = True,
    source: str | None = None,
) -> keras.Model:
    """Port a timm / torchvision / transformers state dict stored as safetensors into `model`.

    Returns the model; `model.kzoo_weights_info` says which layout was read and whether the
    head was loaded.
    """
    from kzoo.weights.layouts import LAYOUT_FAMILY, Port, detect_layout, model_family

    source = source or path
    with StateDict(path) as state:
        layout = detect_layout(list(state), source)
        family = model_family(model)
        if LAYOUT_FAMILY[layout] != family:
            raise KzooError(
                f"{source} is a {layout.replace('_', ' ')} checkpoint but {model.name} is a {family} model; "
                f"create a {LAYOUT_FAMILY[layout]} model for it"
            )
        port = Port(model, state, source, layout)
        if layout == "timm_vit":
            from kzoo.weights.timm_vit import plan_timm_vit

            plan_timm_vit(port, model)
        elif layout == "transformers_vit":
            from kzoo.weights.transformers_vit import plan_transformers_vit

            plan_transformers_vit(port, model)
        elif layout == "resnet":
            from kzoo.weights.resnet import plan_resnet

            plan_resnet(port, model)
        else:
            from kzoo.weights.vgg import plan_vgg

            plan_vgg(port, model, timm=layout == "timm_vgg")
        info = port.run()
    if layout == "transformers_vit":
        from kzoo.weights.transformers_vit import HF_LAYER_NORM_EPS, set_layer_norm_epsilon

        set_layer_norm_epsilon(model, (config or {}).get("layer_norm_eps", HF_LAYER_NORM_EPS))
        reset_compiled_functions(model)
    if preprocessing:
        pre = _preprocessing_for(layout, config, preprocessor_config)
        if pre is not None:
            apply_preprocessing(model, pre)
    model.kzoo_weights_info = {**info, "source": source}
    return model


def _preprocessing_for(layout: str, config, preprocessor_config) -> Preprocessing | None:
    from kzoo.weights import preprocessing as pp

    if layout == "transformers_vit":
        if config is None and preprocessor_config is None:
            return None
        return pp.from_transformers_config(preprocessor_config, config)
    return pp.from_timm_config(config) if config else None


def _sibling_configs(path: str) -> tuple[dict | None, dict | None]:
    """config.json / preprocessor_config.json in the same folder (a downloaded repository)."""
    from kzoo.weights.hub import read_json

    folder = os.path.dirname(os.path.abspath(path))
    found = [os.path.join(folder, n) for n in ("config.json", "preprocessor_config.json")]
    return tuple(read_json(p) if os.path.exists(p) else None for p in found)  # type: ignore[return-value]


def _load_keras_file(model: keras.Model, path: str) -> keras.Model:
    """Copy a `.keras` model's weights into `model`, layer by layer in order; the classifier heads
    (layers named `head`) are matched apart, so an encoder (no head, e.g. `kzoo pretrain`'s
    encoder.keras) loads into a classifier whose head starts fresh, a classifier loads into a
    headless backbone, and a checkpoint with another class count loads all but its head."""
    from kzoo.models.common import HEAD_NAME

    source = keras.saving.load_model(path, compile=False, safe_mode=True)
    (body, head), (src_body, src_head) = (_split_head(m, HEAD_NAME) for m in (model, source))
    mismatch = _first_mismatch(body, src_body)
    if mismatch:
        raise KzooError(f"{path} does not match {model.name}: {mismatch}")
    for variable, value in zip(body, src_body):
        variable.assign(keras.ops.convert_to_numpy(value))
    if head and src_head and [tuple(v.shape) for v in head] == [tuple(v.shape) for v in src_head]:
        for variable, value in zip(head, src_head):
            variable.assign(keras.ops.convert_to_numpy(value))
    elif head:
        log.warning("%s: loaded every layer but the head (%s); the head starts from scratch", path,
                    "the file has none" if not src_head else
                    f"{src_head[0].shape[-1]} classes in the file, {head[0].shape[-1]} in the model")
    return model


def _split_head(model: keras.Model, head_name: str) -> tuple[list, list]:
    body, head = [], []
    for layer in model.layers:
        (head if layer.name == head_name else body).extend(layer.weights)
    return body, head


def _first_mismatch(body: list, src_body: list) -> str | None:
    for i, (variable, value) in enumerate(zip(body, src_body)):
        if tuple(variable.shape) != tuple(value.shape):
            return f"weight {i} ({variable.path}) has shape {tuple(variable.shape)} in the model, {tuple(value.shape)} in the file"
    if len(body) != len(src_body):
        return f"the model has {len(body)} weights before its head, the file {len(src_body)}"
    return None


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
