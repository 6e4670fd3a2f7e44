"""Optimizers of `kzoo train`: Keras' own (AdamW, Nesterov SGD, LAMB, Lion) with kzoo's parameter
groups (no weight decay on biases, norms, position embeddings and class tokens), gradient-norm
clipping, weight EMA, layer-wise learning-rate decay and a learning-rate multiplier for normalization
offsets (airbench trains BatchNorm biases 64x faster).
"""

from __future__ import annotations

import re
from typing import Any

import keras

from kzoo.errors import KzooError

# Variables that get no weight decay: biases, norm scales/offsets, position embeddings, class tokens.
NO_DECAY_NAMES = ("pos_embed", "position", "cls_token", "class_token")
_BLOCK = re.compile(r"(?:^|/)block_(\d+)_")
_STEM = ("patch_whiten", "patch_embed", "cls_token", "pos_embed", "class_token", "position")


def no_decay_variables(model: keras.Model) -> list:
    """Trainable variables that weight decay must leave alone: 0-d/1-d ones and embeddings/tokens."""
    return [v for v in model.trainable_variables
            if len(v.shape) <= 1 or any(n in v.path for n in NO_DECAY_NAMES)]


def norm_offsets(model: keras.Model) -> list[str]:
    """Paths of the trainable offsets (beta) of the model's BatchNormalization layers, nested models
    included (airbench's 64x rate is for BatchNorm biases; transformer LayerNorms keep the base rate).

    Example:
        >>> import kzoo
        >>> norm_offsets(kzoo.create_model("airbench94"))[:2]
        ['stage1_bn1/beta', 'stage1_bn2/beta']
    """
    return [layer.beta.path for layer in _all_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization) and layer.center and layer.beta.trainable]


def _all_layers(model: keras.Model) -> list:
    return [inner for layer in model.layers
            for inner in (_all_layers(layer) if isinstance(layer, keras.Model) else [layer])]


def layer_scales(model: keras.Model, decay: float) -> dict[str, float]:
    """Learning-rate multiplier of each trainable variable for layer-wise decay (BEiT/MAE fine-tuning):
    the stem (patch embedding, tokens, position embedding) is layer 0, block i is layer i + 1 and
    everything after the last block (final norm, head) layer depth + 1 with multiplier 1.

    Example:
        >>> import kzoo
        >>> scales = layer_scales(kzoo.create_model("vit_cifar_tiny"), 0.5)
        >>> scales["head/kernel"], scales["block_3_mlp_fc2/kernel"], scales["patch_embed/kernel"]
        (1.0, 0.5, 0.03125)
    """
    ids = {}
    for v in model.trainable_variables:
        match = _BLOCK.search(v.path)
        ids[v.path] = int(match.group(1)) + 1 if match else (0 if v.path.split("/")[0] in _STEM else None)
    depth = max((i for i in ids.values() if i), default=0)
    if depth == 0:
        raise KzooError(f"--layer-decay needs a transformer with block_N layers (a ViT); {model.name} has none")
    top = depth + 1
    return {path: float(decay ** (top - (top if i is None else i))) for path, i in ids.items()}


def _layer_decayed(base: type) -> type:
    """`base` optimizer whose update (and decoupled weight decay) of each variable is scaled by that
    variable's `lr_scales` entry. Adam-type updates ignore a gradient's scale, so the multiplier must
    act on the step, not on the gradient."""

    class LayerDecayed(base):
        def __init__(self, *args, lr_scales: dict[str, float] | None = None, **kwargs):
            super().__init__(*args, **kwargs)
            self.lr_scales = dict(lr_scales or {})

        def build(self, var_list):
            # Indexed like the optimizer's own slots, so the lookup works for every backend's variables.
            self._scale_list = [self.lr_scales.get(v.path, 1.0) for v in var_list]
            super().build(var_list)

        def update_step(self, gradient, variable, learning_rate):
            scale = self._scale_list[self._get_variable_index(variable)]
            if self.weight_decay is not None and self._use_weight_decay(variable):
                wd = keras.ops.cast(self.weight_decay, variable.dtype)
                lr = keras.ops.cast(learning_rate, variable.dtype)
                self.assign(variable, variable - variable * wd * lr * scale)
            return super().update_step(gradient, variable, learning_rate * scale)

        def _apply_weight_decay(self, variables):
            pass  # applied per variable, with its scale, in update_step

        def get_config(self):
            return {**super().get_config(), "lr_scales": self.lr_scales}

    LayerDecayed.__name__ = LayerDecayed.__qualname__ = f"LayerDecay{base.__name__}"
    return keras.saving.register_keras_serializable(package="kzoo")(LayerDecayed)


_BASES = {"adamw": keras.optimizers.AdamW, "sgd": keras.optimizers.SGD, "lamb": keras.optimizers.Lamb,
          "lion": keras.optimizers.Lion}
_LAYER_DECAYED = {name: _layer_decayed(cls) for name, cls in _BASES.items()}


def make_optimizer(cfg, learning_rate: Any, model: keras.Model) -> keras.optimizers.Optimizer:
    """The optimizer a `TrainConfig` asks for, with kzoo's parameter groups.

    Example:
        >>> import kzoo
        >>> from kzoo.training.config import TrainConfig
        >>> opt = make_optimizer(TrainConfig(optimizer="lion", ema=0.999, clip_norm=1.0), 1e-4,
        ...                      kzoo.create_model("vit_cifar_tiny"))
        >>> type(opt).__name__, opt.use_ema, opt.global_clipnorm
        ('Lion', True, 1.0)
    """
    kwargs: dict[str, Any] = {"weight_decay": cfg.weight_decay or None, "global_clipnorm": cfg.clip_norm}
    if cfg.ema:
        kwargs.update(use_ema=True, ema_momentum=cfg.ema)
    if cfg.optimizer == "sgd":
        kwargs.update(momentum=cfg.momentum, nesterov=True)
    elif cfg.optimizer == "adamw":
        kwargs["weight_decay"] = cfg.weight_decay  # AdamW's own default is 0.004, not None
    cls = _BASES[cfg.optimizer]
    scales = layer_scales(model, cfg.layer_decay) if cfg.layer_decay else {}
    if cfg.norm_bias_lr:
        scales.update({path: scales.get(path, 1.0) * cfg.norm_bias_lr for path in norm_offsets(model)})
    if scales:
        cls, kwargs["lr_scales"] = _LAYER_DECAYED[cfg.optimizer], scales
    opt = cls(learning_rate, **kwargs)
    if cfg.weight_decay:
        opt.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return opt
