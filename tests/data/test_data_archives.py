"""Archive sources: formats, extract-once caching, safe extraction, damaged archives."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zipfile

import pytest

import kzoo.data
from kzoo.data import archives
from kzoo.errors import KzooError
from kzoo_data_helpers import all_batches, assert_one_line


@pytest.fixture
def tree(make_tree):
    return make_tree({"pets/train/cat": 3, "pets/train/dog": 2, "pets/test/cat": 1, "pets/test/dog": 1}, root="src")


def _pack(tree, out, fmt):
    if fmt == "zip":
        with zipfile.ZipFile(out, "w") as zf:
            for path in sorted(tree.rglob("*")):
                zf.write(path, path.relative_to(tree))
    else:
        mode = {"tar.gz": "w:gz", "tgz": "w:gz", "tar": "w", "tar.xz": "w:xz"}[fmt]
        with tarfile.open(out, mode) as tar:
            tar.add(tree / "pets", arcname="pets")
    return out


@pytest.mark.parametrize("fmt", ["tar.gz", "tgz", "tar", "zip", "tar.xz"])
def test_archive_loads_like_the_folder(tree, tmp_path, isolated_cache, fmt):
    archive = _pack(tree, tmp_path / f"pets.{fmt}", fmt)
    bundle = kzoo.data.load(archive, "train", batch_size=2, image_size=(8, 8))
    assert bundle.class_names == ["cat", "dog"] and bundle.num_examples == 5
    assert f"archive {archive}" in bundle.source
    assert all(f.startswith(str(isolated_cache / "archives")) for f in bundle.files)
    assert len(all_batches(bundle)[0]) == 4  # drop_remainder on train: 2 full batches
    assert kzoo.data.load(archive, "test").num_examples == 2


def test_extracted_once_then_reused_and_refreshed_when_changed(tree, tmp_path, monkeypatch):
    archive = _pack(tree, tmp_path / "pets.tar.gz", "tar.gz")
    first = archives.extract(archive)
    calls = []
    monkeypatch.setattr(archives, "_extract_tar", lambda *a: calls.append(a))
    assert archives.extract(archive) == first and not calls  # reused, not extracted again
    monkeypatch.undo()
    monkeypatch.setenv("KZOO_CACHE", str(tmp_path / "elsewhere"))
    os.utime(archive, (1_000_000, 1_000_000))  # a changed archive gets a fresh folder
    second = archives.extract(archive)
    assert second != first and str(second).startswith(str(tmp_path / "elsewhere"))


def test_interrupted_extraction_is_not_trusted(tree, tmp_path):
    archive = _pack(tree, tmp_path / "pets.tar.gz", "tar.gz")
    dest = archives.extracted_path(archive)
    (dest / "pets" / "train" / "cat").mkdir(parents=True)  # half a tree, no completion marker
    assert kzoo.data.load(archive, "train").num_examples == 5


def _evil_tar(path, name):
    with tarfile.open(path, "w:gz") as tar:
        data = b"x"
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("name", ["../escape.png", "/abs/escape.png", "a/../../escape.png"])
def test_path_traversal_is_refused(tmp_path, isolated_cache, name):
    archive = _evil_tar(tmp_path / "evil.tar.gz", name)
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(archive)
    assert_one_line(excinfo, "unsafe entry", "evil.tar.gz", "refusing")
    assert not (tmp_path / "escape.png").exists() and not list(isolated_cache.rglob("escape.png"))
    assert not list((isolated_cache / "archives").iterdir())  # temporary folder cleaned up


def test_zip_traversal_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escape.png", b"x")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(archive)
    assert_one_line(excinfo, "unsafe entry '../escape.png'")


def test_links_are_skipped(tree, tmp_path):
    os.symlink("/etc/passwd", tree / "pets" / "train" / "cat" / "link.png")
    archive = _pack(tree, tmp_path / "pets.tar", "tar")
    extracted = archives.extract(archive)
    assert not list(extracted.rglob("link.png"))
    assert kzoo.data.load(archive, "train").num_examples == 5


def test_damaged_archive_is_one_line(tree, tmp_path):
    good = _pack(tree, tmp_path / "pets.tar.gz", "tar.gz").read_bytes()
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(good[: len(good) // 2])
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(damaged)
    assert_one_line(excinfo, "cannot extract", "damaged.tar.gz", "copy or download it again")
    not_zip = tmp_path / "fake.zip"
    shutil.copy(damaged, not_zip)
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(not_zip)
    assert_one_line(excinfo, "cannot extract", "fake.zip")
