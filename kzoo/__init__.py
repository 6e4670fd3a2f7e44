"""kzoo: a Keras 3 image-classification model zoo.

Example:
    >>> import kzoo
    >>> model = kzoo.create_model("vit_cifar_tiny", num_classes=10)
    >>> kzoo.list_models("vgg1*")[:2]
    ['vgg11', 'vgg11_bn']

Importing kzoo never imports TensorFlow: only the tf.data paths (`kzoo.data`, training from
a data source) do, so models, layers, losses and augmentations run on a Keras + JAX machine.
"""

from __future__ import annotations

import importlib

from kzoo._lazy import lazy_getattr
from kzoo.errors import KzooError
from kzoo.registry import create_model, list_models

__version__ = "0.1.0"

# Public names served lazily: the module is imported on first use, so `import kzoo` stays light.
_LAZY = {
    "build_vit": "kzoo.models.vit",
    "build_vgg": "kzoo.models.vgg",
    "build_resnet": "kzoo.models.resnet",
    "build_fusion": "kzoo.models.fusion",
    "freeze_branch": "kzoo.models.fusion",
    "fusion_weights": "kzoo.models.fusion",
    "freeze": "kzoo.transfer",
    "replace_head": "kzoo.transfer",
    "train": "kzoo.training.api",
    "evaluate": "kzoo.training.api",
    "export": "kzoo.deploy.exporting",
}
_SUBMODULES = {"data", "augment", "deploy", "explain", "layers", "losses", "models", "training", "weights"}

__all__ = ["KzooError", "create_model", "list_models", *_LAZY]


_getattr = lazy_getattr(__name__, _LAZY)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"kzoo.{name}")
    return _getattr(name)
