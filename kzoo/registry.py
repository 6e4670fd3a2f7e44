"""Model registry: one name -> one builder plus its default configuration.

Variants are one-line registrations over a family builder (timm's pattern), so the
configuration of every named model is data that can be listed, documented and tested.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from kzoo.errors import KzooError

if TYPE_CHECKING:  # Keras (and with it TensorFlow) is imported only when a model is built
    import keras


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model name."""

    name: str
    builder: Callable[..., keras.Model] | str  # a callable, or "package.module:function" imported on first build
    family: str
    input_shape: tuple[int, int, int]
    config: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None  # default checkpoint, e.g. "hf-hub:timm/resnet50.tv_in1k"
    description: str = ""
    num_classes: int = 1000  # the default head: ImageNet's, or the dataset the model was made for
    keras_name: str | None = None  # passed to the builder as `name` (a variant's Keras model is named after it)

    def build_fn(self) -> Callable[..., keras.Model]:
        """The builder itself, importing its module if the entry names it by path."""
        if callable(self.builder):
            return self.builder
        module, _, attr = self.builder.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    builder: Callable[..., keras.Model] | str,
    *,
    family: str,
    input_shape: Sequence[int] = (224, 224, 3),
    pretrained: str | None = None,
    description: str = "",
    num_classes: int = 1000,
    keras_name: str | None = None,
    **config: Any,
) -> ModelEntry:
    """Register `name` as `builder(**config)`; the builder must accept
    `num_classes`, `input_shape`, `features_only` and `out_indices` (and `name` if `keras_name`
    is given). `builder` may be an import path "package.module:function", so listing models
    never imports Keras.

    Example:
        >>> register_model("resnet10", "kzoo.models.resnet:build_resnet", family="resnet",
        ...                block="basic", layers=(1, 1, 1, 1))  # doctest: +SKIP
    """
    if name in _REGISTRY:
        raise KzooError(f"model name {name!r} is registered twice")
    entry = ModelEntry(name, builder, family, tuple(input_shape), dict(config), pretrained, description, num_classes,
                       keras_name)
    _REGISTRY[name] = entry
    return entry


def _ensure_loaded() -> None:
    # Importing the catalog registers every named model exactly once, without importing Keras.
    import kzoo.catalog  # noqa: F401


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Registered model names matching a shell-style `pattern`, sorted.

    Example:
        >>> import kzoo
        >>> kzoo.list_models("resnet1*")
        ['resnet101', 'resnet152', 'resnet18']
    """
    _ensure_loaded()
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]
    if pretrained:
        names = [n for n in names if _REGISTRY[n].pretrained]
    return sorted(names)


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `name`; an unknown name raises a one-line error with close matches."""
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "run `kzoo models` to list them"
        raise KzooError(f"unknown model {name!r}: {hint}")
    return _REGISTRY[name]


def create_model(
    name: str,
    num_classes: int | None = None,
    input_shape: Sequence[int] | None = None,
    weights: str | None = None,
    features_only: bool = False,
    out_indices: Sequence[int] | None = None,
    pretrained: bool = False,
    **overrides: Any,
) -> keras.Model:
    """Build the registered model `name`.

    Args:
        name: a name from `list_models()`.
        num_classes: classifier outputs (default: the model's own, 1000 for ImageNet models);
            0 builds the network without its head.
        input_shape: (height, width, channels); defaults to the model's own.
        weights: a `.keras`, `.weights.h5` or `.safetensors` file (torchvision, timm or
            transformers layout), or `"hf-hub:owner/name"`, loaded after building.
        pretrained: load the model's default checkpoint (`list_models(pretrained=True)`).
        features_only: return the stage feature maps instead of logits.
        out_indices: which stages `features_only` returns (negative counts from the end).
        **overrides: any builder argument, e.g. `drop_path=0.1`.

    Example:
        >>> import kzoo
        >>> model = kzoo.create_model("vit_cifar_tiny", num_classes=10)
        >>> model.output_shape
        (None, 10)
    """
    entry = get_entry(name)
    config = {**entry.config, **overrides}
    if entry.keras_name is not None:
        config.setdefault("name", entry.keras_name)
    model = entry.build_fn()(
        num_classes=entry.num_classes if num_classes is None else num_classes,
        input_shape=tuple(input_shape) if input_shape is not None else entry.input_shape,
        features_only=features_only,
        out_indices=tuple(out_indices) if out_indices is not None else None,
        **config,
    )
    if pretrained and weights is None:
        from kzoo.weights import resolve_pretrained

        weights = resolve_pretrained(entry)
    if weights is not None:
        from kzoo.weights import load_weights

        load_weights(model, weights)
    return model
