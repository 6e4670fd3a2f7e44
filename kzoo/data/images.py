"""Finding image files and checking them cheaply before tf.data decodes them.

Every candidate file is sniffed by its first bytes and its tail (about 1 KB read per file), so
empty files, HTML pages saved as `.jpg` and truncated downloads are found when the data is
listed, named in one warning, and skipped, instead of failing an epoch half-way with a tf error
that does not say which file broke. Formats TensorFlow cannot decode correctly (palette or
compressed BMP, PPM/PGM, TIFF, WebP) are marked for a PIL decode inside the pipeline.
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Iterable, Literal

log = logging.getLogger(__name__)

# Decoded by tf.io.decode_image (sniffed by content, so a JPEG named .png still works).
TF_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
# Decoded by PIL in the pipeline: the original GTSRB release ships .ppm, scans come as .tif.
PIL_EXTENSIONS = {".ppm", ".pgm", ".pbm", ".pnm", ".tif", ".tiff", ".webp"}
IMAGE_EXTENSIONS = TF_EXTENSIONS | PIL_EXTENSIONS

Decoder = Literal["tf", "pil"]

_TAIL = 1024  # a JPEG's end-of-image marker or a PNG's IEND chunk sits in the last bytes


def is_hidden(name: str) -> bool:
    """Dot files, macOS resource forks and archive junk folders are never data."""
    return name.startswith(".") or name == "__MACOSX"


def sniff(path: str | os.PathLike) -> Decoder | None:
    """How to decode `path`: "tf", "pil", or None when it is not a readable, complete image.

    Example:
        >>> sniff("cat.jpg")  # doctest: +SKIP
        'tf'
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - _TAIL))
            tail = f.read()
    except OSError:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return "tf" if b"\xff\xd9" in tail else None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "tf" if b"IEND" in tail else None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "tf" if b";" in tail[-16:] else None
    if head[:2] == b"BM" and len(head) >= 34:
        declared_size, = struct.unpack_from("<I", head, 2)
        if size < declared_size:
            return None
        header_size, = struct.unpack_from("<I", head, 14)
        if header_size >= 40:
            bits, compression = struct.unpack_from("<HI", head, 28)
            # tf.io.decode_bmp reads palette indices as grey levels and cannot do RLE: use PIL.
            return "pil" if bits <= 8 or compression not in (0, 3) else "tf"
        return "pil"
    return _pil_sniff(path)


def _pil_sniff(path: str | os.PathLike) -> Decoder | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.verify()
    except Exception:  # PIL raises many types for "not an image"; all mean the same here
        return None
    return "pil"


def list_images(folder: Path) -> tuple[list[str], list[Decoder], list[str]]:
    """All image files under `folder` (recursive, sorted) as (paths, decoders, bad files).

    Files whose extension is not an image's are ignored; files with an image extension that do
    not sniff as a complete image are returned in the third list.

    Example:
        >>> paths, decoders, bad = list_images(Path("data/train/cat"))  # doctest: +SKIP
    """
    paths: list[str] = []
    decoders: list[Decoder] = []
    bad: list[str] = []
    for path in _walk(folder):
        if Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        decoder = sniff(path)
        if decoder is None:
            bad.append(path)
        else:
            paths.append(path)
            decoders.append(decoder)
    return paths, decoders, bad


def _walk(folder: Path) -> Iterable[str]:
    # Sorted walk: file order (and so the seeded split) must not depend on the filesystem.
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        for name in sorted(files):
            if not is_hidden(name):
                yield os.path.join(root, name)


def warn_skipped(bad: list[str], where: str) -> None:
    """One warning naming the skipped files (the first ten, then a count)."""
    if not bad:
        return
    shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
    log.warning(
        "skipped %d unreadable or truncated image file(s) in %s: %s", len(bad), where, shown
    )


def pil_decode_rgb(path: bytes) -> "np.ndarray":  # noqa: F821 (numpy imported lazily)
    """Decode one file with PIL as uint8 RGB (first frame; alpha dropped); used via tf.numpy_function."""
    import numpy as np
    from PIL import Image

    with Image.open(path.decode() if isinstance(path, bytes) else path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)
