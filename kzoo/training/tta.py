"""Test-time augmentation: average a model's logits over flipped and shifted views of each batch.

Views are made on the host in numpy (the batch is already there for `predict_on_batch`), so TTA
works the same under every backend and never changes the model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kzoo.errors import KzooError

TTA_MODES = ("flip", "translate")


def parse_tta(text: str | Sequence[str] | None) -> list[str]:
    """`"flip,translate"` -> `["flip", "translate"]`; empty or "none" -> `[]`.

    Example:
        >>> parse_tta("translate, flip")
        ['flip', 'translate']
    """
    if text is None:
        return []
    parts = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    parts = [p for p in parts if p != "none"]
    bad = [p for p in parts if p not in TTA_MODES]
    if bad:
        raise KzooError(f"--tta {bad[0]!r} is not supported: use flip, translate or flip,translate")
    return [m for m in TTA_MODES if m in parts]


def shift_pixels(height: int) -> int:
    """Translation of the `translate` views: 1 pixel at 32x32 (airbench's), 1/32 of the side."""
    return max(1, round(height / 32))


def tta_views(images: np.ndarray, modes: Sequence[str]) -> list[np.ndarray]:
    """The batch itself first, then its mirror (`flip`) and, for `translate`, each of those shifted
    by `shift_pixels` diagonally both ways (edges reflected, so no black borders).

    Example:
        >>> len(tta_views(np.zeros((2, 32, 32, 3)), ["flip", "translate"]))
        6
    """
    bases = [images] + ([images[:, :, ::-1]] if "flip" in modes else [])
    if "translate" not in modes:
        return bases
    s = shift_pixels(images.shape[1])
    views = list(bases)
    for base in bases:
        padded = np.pad(base, ((0, 0), (s, s), (s, s), (0, 0)), mode="reflect")
        h, w = base.shape[1:3]
        views.append(padded[:, :h, :w])  # content moves down-right by s
        views.append(padded[:, 2 * s:2 * s + h, 2 * s:2 * s + w])  # and up-left
    return views


def tta_weights(modes: Sequence[str]) -> np.ndarray:
    """Weights of `tta_views`' logits in the average: the unshifted views share one half and the
    shifted ones the other (airbench's level-2 TTA); without `translate` all views weigh the same.

    Example:
        >>> tta_weights(["flip", "translate"]).round(3).tolist()
        [0.25, 0.25, 0.125, 0.125, 0.125, 0.125]
    """
    bases = 2 if "flip" in modes else 1
    if "translate" not in modes:
        return np.full(bases, 1.0 / bases)
    return np.array([0.5 / bases] * bases + [0.5 / (2 * bases)] * (2 * bases))
