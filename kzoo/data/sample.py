"""The bundled CIFAR-10 sample used by `load(None)` / `load("sample")` for the offline quick start.

It is a class-balanced, seeded subset of the CIFAR-10 JPEG copy (original JPEG bytes), built by
`scripts/make_sample.py`; CIFAR-10: Krizhevsky, "Learning Multiple Layers of Features from Tiny
Images", 2009.
"""

from __future__ import annotations

from pathlib import Path

from kzoo.errors import KzooError

SAMPLE_NAMES = ("sample", "cifar10-sample")
SAMPLE_ARCHIVE = Path(__file__).resolve().parent / "sample" / "cifar10-sample.tar.gz"


def sample_archive() -> Path:
    """Path of the bundled sample archive.

    Example:
        >>> sample_archive().name
        'cifar10-sample.tar.gz'
    """
    if not SAMPLE_ARCHIVE.is_file():
        raise KzooError(
            f"the bundled sample {SAMPLE_ARCHIVE} is missing: reinstall kzoo, or run "
            "scripts/make_sample.py from a source checkout, or point --data at a dataset"
        )
    return SAMPLE_ARCHIVE
