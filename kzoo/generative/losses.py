"""GAN objectives as (discriminator loss, generator loss) pairs over logits, registered by name.

| name | discriminator | generator |
|---|---|---|
| `hinge` | mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))) | -mean(D(G(z))) |
| `non_saturating` | BCE(D(x), 1) + BCE(D(G(z)), 0) | BCE(D(G(z)), 1) = mean(softplus(-D(G(z)))) |

`hinge` is SNGAN's (Miyato et al. 2018; Lim & Ye 2017); `non_saturating` is the original GAN
objective with Goodfellow et al.'s non-saturating generator loss, as DCGAN trains. Written with
`keras.ops` only, so they run under any backend and inside a jitted step.

Example:
    >>> from kzoo.generative import GAN_LOSSES
    >>> loss = GAN_LOSSES["hinge"]
    >>> float(loss.d_loss([[2.0]], [[-2.0]])), float(loss.g_loss([[0.5]]))  # doctest: +SKIP
    (0.0, -0.5)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from keras import ops


class GanLoss(NamedTuple):
    """The two halves of a GAN objective: `d_loss(real_logits, fake_logits)` and `g_loss(fake_logits)`."""

    d_loss: Callable[[Any, Any], Any]
    g_loss: Callable[[Any], Any]


def hinge_d_loss(real_logits: Any, fake_logits: Any) -> Any:
    """mean(relu(1 - real)) + mean(relu(1 + fake)).

    Example:
        >>> float(hinge_d_loss([[0.5]], [[0.5]]))  # doctest: +SKIP
        2.0
    """
    real, fake = ops.cast(real_logits, "float32"), ops.cast(fake_logits, "float32")
    return ops.mean(ops.relu(1.0 - real)) + ops.mean(ops.relu(1.0 + fake))


def hinge_g_loss(fake_logits: Any) -> Any:
    """-mean(fake).

    Example:
        >>> float(hinge_g_loss([[0.5], [1.5]]))  # doctest: +SKIP
        -1.0
    """
    return -ops.mean(ops.cast(fake_logits, "float32"))


def non_saturating_d_loss(real_logits: Any, fake_logits: Any) -> Any:
    """Binary cross-entropy from logits, real labelled 1 and fake 0: mean(softplus(-real)) + mean(softplus(fake)).

    Example:
        >>> round(float(non_saturating_d_loss([[0.0]], [[0.0]])), 4)  # doctest: +SKIP
        1.3863
    """
    real, fake = ops.cast(real_logits, "float32"), ops.cast(fake_logits, "float32")
    return ops.mean(ops.softplus(-real)) + ops.mean(ops.softplus(fake))


def non_saturating_g_loss(fake_logits: Any) -> Any:
    """mean(softplus(-fake)): -log D(G(z)), which keeps its gradient when D rejects the fakes.

    Example:
        >>> round(float(non_saturating_g_loss([[0.0]])), 4)  # doctest: +SKIP
        0.6931
    """
    return ops.mean(ops.softplus(-ops.cast(fake_logits, "float32")))


GAN_LOSSES: dict[str, GanLoss] = {
    "hinge": GanLoss(hinge_d_loss, hinge_g_loss),
    "non_saturating": GanLoss(non_saturating_d_loss, non_saturating_g_loss),
}
