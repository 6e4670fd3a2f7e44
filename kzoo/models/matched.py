"""A CNN and a ViT matched in parameter count, for CNN-vs-Transformer comparisons at equal size.

`matched_pair(target)` builds a VGG11-shaped CNN and a ViT whose trainable parameter counts
(torch's `parameters()`, what papers quote) are both within `tolerance` of `target`. Counts come
from closed forms that equal `build_vgg` / `build_vit`'s exactly, so the search is arithmetic and
only the two chosen networks are built. The search, per family:

- CNN: torchvision's VGG11 layout (8 convs of widths k, 2k, 4k, 4k, 8k, 8k, 8k, 8k, i.e.
  `width_multiplier = k / 64`; five 2x2 max-pools), BatchNorm after every conv, and the head
  `gap_fc`: global average pool, two ReLU Dense layers of width f with dropout, `head`. For every
  k in 1..256, f is the integer that lands nearest the target, kept in [C, 16C] (C = 8k, the last
  conv width); the k chosen is the one whose f is nearest (log scale) to 8C, VGG11's 4096 hidden
  units per 512 channels.
- ViT: timm's layout with a class token; patch size the largest divisor of both sides that is at
  most min(16, side // 8) (4 at 32 px: an 8x8 grid; 16 at 224 px); width D a multiple of 32
  (32..2048) with D / 32 heads; depth L in 1..48; the MLP width M is the integer that lands
  nearest the target, kept in [D, 4D]. The (L, D) chosen is the one nearest kzoo's CIFAR ViT
  ladder L = D / 32 (vit_cifar_tiny/small/base: 128/4, 192/6, 256/8), then M / D nearest ViT-B's 4.

Registered here:
- `matched_vgg`, `matched_vit` (family "matched"): the pair as registry builders taking
  `target_params` (default 2,000,000), matched at the classes and input shape they are built
  with, e.g. `create_model("matched_vgg", target_params=1_000_000)`. `register_matched(target)`
  adds names with the target built in (`matched_vgg_1000000`) for `kzoo.train(model=...)`.
- `vit_base_patch16_224_depth18`: the Transformer of the CNN-vs-Transformer source experiment,
  ViT-B/16 with 18 blocks instead of 12 (its last six repeated): 128,402,788 parameters at its
  100 classes (CIFAR-100), against `vgg11` at 100 classes: 129,176,036.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import keras

from kzoo.errors import KzooError
from kzoo.models.common import check_num_classes, register_variant
from kzoo.catalog import MATCHED_DEFAULT_TARGET, MATCHED_DESCRIPTIONS
from kzoo.models.vgg import VGG_CONFIGS, build_vgg, fc_classifier, vgg_head
from kzoo.models.vit import build_vit

TOLERANCE = 0.02
DEFAULT_TARGET = MATCHED_DEFAULT_TARGET
VGG_BASE_WIDTHS = range(1, 257)  # k: VGG11's first conv width (64 in torchvision)
VIT_DIMS = range(32, 2049, 32)
VIT_DEPTHS = range(1, 49)
VIT_HEAD_DIM = 32
_VGG11_WIDTHS = tuple(v for v in VGG_CONFIGS[11] if v != "M")


@vgg_head("gap_fc")
def _gap_fc_head(x, num_classes: int, dropout: float = 0.5, fc_units: int = 4096):
    # torchvision's classifier (two ReLU Dense + dropout) after a global average pool instead of
    # the 7x7 adaptive pool: on 32x32 images the last map is 1x1, which 7x7 would copy 49 times.
    # He init for the two hidden layers: torchvision's N(0, 0.01) suits fc1's 25,088 inputs, but
    # after a pool of C channels it scales the signal by about 0.01 * sqrt(C) (0.1 at C = 96) and a
    # from-scratch CNN stayed at chance for its first 300 steps (docs/decisions.md).
    return fc_classifier(keras.layers.GlobalAveragePooling2D(name="pool")(x), num_classes, dropout, fc_units,
                         hidden_init=keras.initializers.HeNormal())


def vgg_params(base_width: int, fc_units: int, num_classes: int = 10, channels: int = 3,
               batch_norm: bool = True) -> int:
    """Trainable parameters of `build_vgg(11, width_multiplier=base_width / 64, head="gap_fc")`.

    Example:
        >>> vgg_params(64, 4096, num_classes=100, batch_norm=False)  # VGG11's convs, fc on 512 features
        28512740
    """
    total, c_in = 0, channels
    for width in _VGG11_WIDTHS:
        w = width * base_width // 64
        total += 9 * c_in * w + w + (2 * w if batch_norm else 0)
        c_in = w
    total += (c_in + 1) * fc_units + (fc_units + 1) * fc_units
    return total + ((fc_units + 1) * num_classes if num_classes else 0)


def vit_params(dim: int, depth: int, mlp_dim: int, num_classes: int = 10, image_size: Sequence[int] = (32, 32),
               patch_size: int = 4, channels: int = 3) -> int:
    """Parameters of `build_vit` with a class token and qkv bias (timm's ViT), all trainable.

    Example:
        >>> vit_params(768, 12, 3072, num_classes=100, image_size=(224, 224), patch_size=16)
        85875556
    """
    tokens = (image_size[0] // patch_size) * (image_size[1] // patch_size)
    # Per block: two LayerNorms (2D each), qkv (3D^2 + 3D), proj (D^2 + D), fc1 (DM + M), fc2 (MD + D).
    block = 4 * dim * dim + 2 * dim * mlp_dim + mlp_dim + 9 * dim
    # Patch conv (p^2 c D + D), class token, position embedding (tokens + 1), final LayerNorm.
    stem = dim * (patch_size * patch_size * channels + tokens + 5)
    return depth * block + stem + ((dim + 1) * num_classes if num_classes else 0)


def patch_size_for(height: int, width: int) -> int:
    """The ViT patch size the search uses: the largest divisor of both sides <= min(16, side // 8).

    Example:
        >>> patch_size_for(32, 32), patch_size_for(224, 224), patch_size_for(100, 100)
        (4, 16, 10)
    """
    for p in range(max(1, min(16, min(height, width) // 8)), 0, -1):
        if height % p == 0 and width % p == 0:
            return p
    return 1


def _within(count: int, target: int, tolerance: float) -> bool:
    return abs(count - target) <= tolerance * target


def matched_vgg_config(target_params: int, num_classes: int = 10, input_shape: Sequence[int] = (32, 32, 3),
                       tolerance: float = TOLERANCE, batch_norm: bool = True) -> dict[str, Any] | None:
    """`build_vgg` keywords for a VGG11-shaped CNN near `target_params`, plus "params"; None if none fits.

    Example:
        >>> matched_vgg_config(2_000_000)["fc_units"]
        1089
    """
    channels = input_shape[-1]
    best, best_score = None, math.inf
    for k in VGG_BASE_WIDTHS:
        last = 8 * k
        # Count = f^2 + b f + a: solve for the hidden width f, then try the integers around it.
        a = vgg_params(k, 0, 0, channels, batch_norm) + num_classes
        if a > target_params * (1 + tolerance):
            break  # the convolutions alone overshoot; a larger k only more so
        b = last + 2 + num_classes
        root = (-b + math.sqrt(max(b * b + 4 * (target_params - a), 0))) / 2
        counts = {f: vgg_params(k, f, num_classes, channels, batch_norm) for f in (math.floor(root), math.ceil(root))}
        f = min(counts, key=lambda f: abs(counts[f] - target_params))
        if not last <= f <= 16 * last or not _within(counts[f], target_params, tolerance):
            continue
        score = abs(math.log2(f / (8 * last)))
        if score < best_score:
            best_score = score
            best = dict(depth=11, width_multiplier=k / 64, fc_units=f, head="gap_fc", batch_norm=batch_norm,
                        params=counts[f])
    return best


def matched_vit_config(target_params: int, num_classes: int = 10, input_shape: Sequence[int] = (32, 32, 3),
                       tolerance: float = TOLERANCE) -> dict[str, Any] | None:
    """`build_vit` keywords for a ViT near `target_params`, plus "params"; None if none fits.

    Example:
        >>> {k: v for k, v in matched_vit_config(2_000_000).items() if k in ("dim", "depth", "mlp_dim")}
        {'dim': 192, 'depth': 6, 'mlp_dim': 468}
    """
    height, width, channels = input_shape
    patch = patch_size_for(height, width)
    best, best_score = None, (math.inf, math.inf)
    for dim in VIT_DIMS:
        for depth in VIT_DEPTHS:
            fixed = vit_params(dim, depth, 0, num_classes, (height, width), patch, channels)
            per_unit = depth * (2 * dim + 1)  # parameters per unit of MLP width
            if fixed + per_unit * dim > target_params * (1 + tolerance):
                break  # deeper only adds more
            mlp = round((target_params - fixed) / per_unit)  # the MLP width landing nearest the target
            count = fixed + per_unit * mlp
            if not dim <= mlp <= 4 * dim or not _within(count, target_params, tolerance):
                continue
            score = (abs(math.log2(VIT_HEAD_DIM * depth / dim)), abs(math.log2(mlp / (4 * dim))))
            if score < best_score:
                best_score = score
                best = dict(patch_size=patch, dim=dim, depth=depth, heads=dim // VIT_HEAD_DIM, mlp_dim=mlp,
                            params=count)
    return best


def _shape(image_size: int | Sequence[int], channels: int = 3) -> tuple[int, int, int]:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or min(size) < 32:
        raise KzooError(f"matched_pair: image_size must be at least 32 (VGG11 pools five times by 2), got {image_size}")
    return (int(size[0]), int(size[1]), channels)


def matched_configs(target_params: int, num_classes: int = 10, image_size: int | Sequence[int] = 32,
                    tolerance: float = TOLERANCE, batch_norm: bool = True,
                    channels: int = 3) -> tuple[dict[str, Any], dict[str, Any]]:
    """(VGG, ViT) configurations within `tolerance` of `target_params`: `build_vgg` / `build_vit`
    keywords plus "params", the trainable count each gives. Raises KzooError when either misses.

    Example:
        >>> vgg, vit = matched_configs(2_000_000)
        >>> vgg["params"], vit["params"]
        (2000005, 2000578)
    """
    if isinstance(target_params, bool) or not isinstance(target_params, int) or target_params < 1:
        raise KzooError(f"matched_pair: target_params must be a positive int, got {target_params!r}")
    if not 0 < tolerance < 1:
        raise KzooError(f"matched_pair: tolerance is a fraction in (0, 1), got {tolerance}")
    check_num_classes(num_classes, "matched_pair")
    shape = _shape(image_size, channels)
    vgg = matched_vgg_config(target_params, num_classes, shape, tolerance, batch_norm)
    vit = matched_vit_config(target_params, num_classes, shape, tolerance)
    if vgg is None or vit is None:
        low, high = _reach(num_classes, shape, batch_norm)
        raise KzooError(
            f"matched_pair: no {'VGG' if vgg is None else 'ViT'} within {tolerance:.0%} of {target_params:,} "
            f"parameters ({num_classes} classes, {shape[0]}x{shape[1]} input); choose a target between {low:,} "
            f"and {high:,}"
        )
    return vgg, vit


def _reach(num_classes: int, shape: tuple[int, int, int], batch_norm: bool) -> tuple[int, int]:
    # The smallest and largest networks both searches can build (the ranges have no gaps between).
    h, w, c = shape
    p = patch_size_for(h, w)
    low = max(vgg_params(1, 8, num_classes, c, batch_norm),
              vit_params(VIT_DIMS[0], 1, VIT_DIMS[0], num_classes, (h, w), p, c))
    high = min(vgg_params(VGG_BASE_WIDTHS[-1], 128 * VGG_BASE_WIDTHS[-1], num_classes, c, batch_norm),
               vit_params(VIT_DIMS[-1], VIT_DEPTHS[-1], 4 * VIT_DIMS[-1], num_classes, (h, w), p, c))
    return low, high


def _build(kind: str, cfg: dict[str, Any], num_classes: int, input_shape: Sequence[int], **kwargs: Any) -> keras.Model:
    cfg = {k: v for k, v in cfg.items() if k != "params"}
    builder = build_vgg if kind == "vgg" else build_vit
    return builder(**cfg, num_classes=num_classes, input_shape=tuple(input_shape), **kwargs)


def build_matched_vgg(target_params: int = DEFAULT_TARGET, num_classes: int = 10,
                      input_shape: Sequence[int] = (32, 32, 3), tolerance: float = TOLERANCE,
                      batch_norm: bool = True, dropout: float = 0.5, features_only: bool = False,
                      out_indices: Sequence[int] | None = None, name: str | None = None) -> keras.Model:
    """The CNN of `matched_pair`, as a registry builder (`create_model("matched_vgg", target_params=...)`).

    Example:
        >>> trainable_params(build_matched_vgg(100_000, num_classes=10))
        100159
    """
    vgg, _ = matched_configs(target_params, num_classes, tuple(input_shape)[:2], tolerance, batch_norm,
                             tuple(input_shape)[2])
    return _build("vgg", vgg, num_classes, input_shape, dropout=dropout, features_only=features_only,
                  out_indices=out_indices, name=name or "matched_vgg")


def build_matched_vit(target_params: int = DEFAULT_TARGET, num_classes: int = 10,
                      input_shape: Sequence[int] = (32, 32, 3), tolerance: float = TOLERANCE,
                      features_only: bool = False, out_indices: Sequence[int] | None = None,
                      name: str | None = None) -> keras.Model:
    """The ViT of `matched_pair`, as a registry builder (`create_model("matched_vit", target_params=...)`).

    Example:
        >>> build_matched_vit(100_000, num_classes=10).count_params()
        100108
    """
    _, vit = matched_configs(target_params, num_classes, tuple(input_shape)[:2], tolerance, True,
                             tuple(input_shape)[2])
    return _build("vit", vit, num_classes, input_shape, features_only=features_only, out_indices=out_indices,
                  name=name or "matched_vit")


def matched_pair(target_params: int, num_classes: int = 10, image_size: int | Sequence[int] = 32, *,
                 tolerance: float = TOLERANCE, batch_norm: bool = True) -> tuple[keras.Model, keras.Model]:
    """A VGG11-shaped CNN and a ViT, each within `tolerance` of `target_params` trainable parameters.

    The search is described in this module's docstring; `matched_configs` gives the chosen
    configurations without building. Raises KzooError when the target is out of reach.

    Example:
        >>> cnn, vit = matched_pair(2_000_000, num_classes=10, image_size=32)
        >>> trainable_params(cnn), trainable_params(vit)
        (2000005, 2000578)
    """
    vgg, vit = matched_configs(target_params, num_classes, image_size, tolerance, batch_norm)
    shape = _shape(image_size)
    return (_build("vgg", vgg, num_classes, shape, name="matched_vgg"),
            _build("vit", vit, num_classes, shape, name="matched_vit"))


def trainable_params(model: keras.Model) -> int:
    """Trainable parameters (BatchNorm's moving statistics excluded, as torch's `parameters()`).

    Example:
        >>> trainable_params(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
        8
    """
    return sum(math.prod(w.shape) for w in model.trainable_weights)


_DESCRIPTIONS = {build_matched_vgg: MATCHED_DESCRIPTIONS["matched_vgg"],
                 build_matched_vit: MATCHED_DESCRIPTIONS["matched_vit"]}


def register_matched(target_params: int) -> tuple[str, str]:
    """Register (once) `matched_vgg_{target}` and `matched_vit_{target}`; return the two names.

    For APIs that take a model name, such as `kzoo.train(model=...)`; the builders match the
    target at the classes and input size the caller builds with.

    Example:
        >>> register_matched(1_000_000)
        ('matched_vgg_1000000', 'matched_vit_1000000')
    """
    from kzoo.registry import list_models

    if isinstance(target_params, bool) or not isinstance(target_params, int) or target_params < 1:
        raise KzooError(f"register_matched: target_params must be a positive int, got {target_params!r}")
    names = (f"matched_vgg_{target_params}", f"matched_vit_{target_params}")
    for name, builder in zip(names, (build_matched_vgg, build_matched_vit)):
        if not list_models(name):
            register_variant(name, builder, family="matched", input_shape=(32, 32, 3), num_classes=10,
                             description=f"{_DESCRIPTIONS[builder]} {target_params:,} parameters",
                             target_params=target_params)
    return names
