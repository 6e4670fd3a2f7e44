"""Names of the common corruptions (Hendrycks & Dietterich 2019) and their families, with no
Keras import: the CLI lists them and the robustness figures group them without starting a backend.

Example:
    >>> len(CORRUPTIONS), HELD_OUT[0]
    (15, 'speckle_noise')
"""

from __future__ import annotations

import difflib

from kzoo.errors import KzooError

CORRUPTIONS = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
)
HELD_OUT = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
# The paper's four families; each held-out corruption joins the family it was held out from.
FAMILIES = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur", "gaussian_blur"),
    "weather": ("snow", "frost", "fog", "brightness", "spatter"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression", "saturate"),
}


def parse_corruptions(text: str) -> tuple[str, ...]:
    """`all` (the 15), `held_out`, `all+held_out`, or comma-separated names, checked.

    Example:
        >>> parse_corruptions("fog,snow")
        ('fog', 'snow')
    """
    known = CORRUPTIONS + HELD_OUT
    groups = {"all": CORRUPTIONS, "held_out": HELD_OUT, "all+held_out": known}
    if text.strip() in groups:
        return groups[text.strip()]
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"choose from {', '.join(known)}"
            raise KzooError(f"--corruptions: unknown corruption {name!r}; {hint} (or all, held_out, all+held_out)")
    if not names:
        raise KzooError("--corruptions names no corruption: give all, held_out or comma-separated names")
    return names


def parse_severities(text: str) -> tuple[int, ...]:
    """`1-5`, `3` or `1,3,5`, each from 1 to 5.

    Example:
        >>> parse_severities("2-4"), parse_severities("1,5")
        ((2, 3, 4), (1, 5))
    """
    try:
        if "-" in text:
            low, high = (int(t) for t in text.split("-", 1))
            values = tuple(range(low, high + 1))
        else:
            values = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise KzooError(f"--severities {text!r}: expected a range like 1-5 or a list like 1,3,5") from None
    if not values or any(not 1 <= v <= 5 for v in values):
        raise KzooError(f"--severities {text!r}: severities run from 1 to 5")
    return tuple(sorted(set(values)))
