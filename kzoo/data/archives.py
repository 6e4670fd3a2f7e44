"""Archive sources (.tar.gz, .tgz, .tar, .zip, ...): extract once into a cache, then reuse.

The cache folder is keyed by the archive's absolute path, size and modification time, so a
replaced archive is extracted afresh and an unchanged one costs nothing. Extraction goes to a
temporary folder renamed into place when complete: an interrupted run leaves no half tree that a
later run would trust. Entries that would land outside the folder (absolute paths, `..`) make
the whole archive refused; links and device files are skipped (image data never needs them).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from kzoo.errors import KzooError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
CACHE_ENV = "KZOO_CACHE"
_DONE = ".kzoo-extracted"


def is_archive(path: Path) -> bool:
    """Whether `path`'s name ends like an archive kzoo can read."""
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def cache_dir() -> Path:
    """kzoo's cache root: `$KZOO_CACHE`, else `$XDG_CACHE_HOME/kzoo`, else `~/.cache/kzoo`.

    Example:
        >>> os.environ["KZOO_CACHE"] = "/scratch/kzoo"; cache_dir()  # doctest: +SKIP
        PosixPath('/scratch/kzoo')
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kzoo"


def _stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def extracted_path(path: Path) -> Path:
    """Where `path` is (or will be) extracted."""
    resolved = path.resolve()
    st = resolved.stat()
    key = hashlib.sha1(f"{resolved}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "archives" / f"{_stem(path)}-{key}"


def extract(path: Path) -> Path:
    """Extract `path` once into the cache and return the folder (reused on later calls).

    Example:
        >>> extract(Path("../shared/data/cifar10-jpg.tar.gz"))  # doctest: +SKIP
        PosixPath('/root/.cache/kzoo/archives/cifar10-jpg-1f0c...')
    """
    dest = extracted_path(path)
    if (dest / _DONE).exists():
        log.debug("reusing %s extracted at %s", path, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracting %s to %s (once; later loads reuse it)", path, dest)
    try:
        if path.name.lower().endswith(".zip"):
            _extract_zip(path, tmp)
        else:
            _extract_tar(path, tmp)
        (tmp / _DONE).write_text(str(path.resolve()))
        if dest.exists():  # left by an interrupted run (no marker) or another process just won
            if (dest / _DONE).exists():
                shutil.rmtree(tmp, ignore_errors=True)
                return dest
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except KzooError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        detail = " ".join(str(err).split()) or type(err).__name__
        raise KzooError(
            f"cannot extract {path}: {detail}; check the archive is complete (copy or download it again) "
            f"and that {dest.parent} is writable (set {CACHE_ENV} to move the cache)"
        ) from None
    return dest


def _check_member(name: str, archive: Path) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(name).drive or ".." in posix.parts:
        raise KzooError(
            f"unsafe entry {name!r} in {archive}: it would be written outside the extraction folder; "
            "refusing the archive (repack it with relative paths)"
        )


def _extract_tar(path: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    skipped = 0
    # Python's "data" filter (3.11.4+) is a second guard on top of the checks above.
    filter_kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(path) as tar:
        for member in tar:  # one streaming pass: a .tar.gz is decompressed once
            _check_member(member.name, path)
            if member.isfile() or member.isdir():
                tar.extract(member, dest, set_attrs=False, **filter_kw)
            else:
                skipped += 1
    if skipped:
        log.warning("skipped %d link/device entries in %s", skipped, path)


def _extract_zip(path: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    with zipfile.ZipFile(path) as zf:
        members = zf.infolist()
        for info in members:
            _check_member(info.filename, path)
        for info in members:
            zf.extract(info, dest)
