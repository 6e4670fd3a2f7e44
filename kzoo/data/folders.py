"""Image-folder sources: `<root>/<split>/<class>/<image>` or `<root>/<class>/<image>`.

The root may sit under single wrapper folders (an archive's `cifar10/`), which are descended
automatically. Labels are class-folder indices in sorted order (numeric order when every class
name is a number), shared by all splits so train and test agree.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from kzoo.data.examples import Examples
from kzoo.data.images import IMAGE_EXTENSIONS, is_hidden, list_images, warn_skipped
from kzoo.data.splits import GroupBy, resolve_groups, split_indices
from kzoo.errors import KzooError

log = logging.getLogger(__name__)

# Folder names accepted for each split, first match wins.
SPLIT_DIRS = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
CLASS_NAMES_FILE = "classes.txt"
_LAYOUT_HINT = "expected <root>/<class>/<image> or <root>/{train,val,test}/<class>/<image>"


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not is_hidden(p.name))


def _split_dirs(path: Path) -> dict[str, Path]:
    names = {p.name.lower(): p for p in _subdirs(path)}
    found = {}
    for split, aliases in SPLIT_DIRS.items():
        for alias in aliases:
            if alias in names:
                found[split] = names[alias]
                break
    return found


def _has_images(path: Path) -> bool:
    return any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir())


def find_layout(path: Path) -> tuple[Path, dict[str, Path]]:
    """The dataset root under `path` and its split folders ({} for a `<class>/*` tree).

    Example:
        >>> find_layout(Path("cifar10-extracted"))  # doctest: +SKIP
        (PosixPath('cifar10-extracted/cifar10'), {'train': ..., 'test': ...})
    """
    root = path
    for _ in range(8):  # wrapper folders: an archive's top folder, a dataset's version folder
        splits = _split_dirs(root)
        if splits:
            return root, splits
        subdirs = _subdirs(root)
        if len(subdirs) == 1 and not _has_images(root):
            root = subdirs[0]
            continue
        break
    return root, {}


def _sorted_classes(names: set[str]) -> list[str]:
    if names and all(n.isdigit() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _read_class_names(root: Path, folders: list[str]) -> list[str]:
    """Display names from `classes.txt` (lines `<folder> <name>`, GTSRB's format), else folders."""
    candidate = root / CLASS_NAMES_FILE
    if not candidate.is_file():
        return list(folders)
    table: dict[str, str] = {}
    for line in candidate.read_text(encoding="utf-8", errors="replace").splitlines():
        key, _, name = line.strip().partition("\t") if "\t" in line else line.strip().partition(" ")
        if key and name.strip():
            table[key.strip()] = name.strip()
    names = [table.get(f, table.get(str(int(f)) if f.isdigit() else f, f)) for f in folders]
    log.info("class names read from %s", candidate)
    return names


def _list_split(base: Path, folders: list[str]) -> tuple[list[str], list[str], list[int], list[str]]:
    paths: list[str] = []
    decoders: list[str] = []
    labels: list[int] = []
    bad: list[str] = []
    for label, folder in enumerate(folders):
        class_dir = base / folder
        if not class_dir.is_dir():
            continue  # this class has no folder in this split (e.g. a test set missing a class)
        class_paths, class_decoders, class_bad = list_images(class_dir)
        bad += class_bad
        if not class_paths:
            skipped = f" ({len(class_bad)} unreadable file(s) skipped)" if class_bad else ""
            raise KzooError(
                f"class folder {class_dir} has no images{skipped}: expected .jpg/.png/.bmp/.gif files; "
                "add images or remove the folder"
            )
        paths += class_paths
        decoders += class_decoders
        labels += [label] * len(class_paths)
    stray = [p for p in base.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    if stray:
        log.warning("ignored %d image(s) directly in %s: images must be in <class>/ folders", len(stray), base)
    return paths, decoders, labels, bad


def folder_examples(
    path: Path,
    split: str,
    *,
    val_split: float | None = None,
    seed: int = 0,
    group_by: GroupBy = "auto",
    source: str | None = None,
) -> Examples:
    """List one split of an image-folder tree.

    Example:
        >>> ex = folder_examples(Path("real_vs_fake"), "val", val_split=0.2)  # doctest: +SKIP
        >>> ex.class_names
        ['fake', 'real']
    """
    root, splits = find_layout(path)
    class_parents = list(splits.values()) if splits else [root]
    folders = _sorted_classes({d.name for parent in class_parents for d in _subdirs(parent)})
    if not folders:
        if root != path and _has_images(root):  # descended into a lone folder that holds the images
            raise KzooError(f"{path} holds one class folder ({root.name}) and a classifier needs at least two: "
                            f"{_LAYOUT_HINT}")
        raise KzooError(f"no class folders in {path}: {_LAYOUT_HINT}")
    layout = f"{root}/{{{','.join(sorted(p.name for p in splits.values()))}}}/<class>" if splits else f"{root}/<class>"

    if split == "test" or (split == "val" and val_split is None):
        if split not in splits:
            fix = "pass val_split=0.1 to hold out part of train" if split == "val" else "evaluate on split='val' instead"
            raise KzooError(
                f"no {split}/ folder in {root} (layout {layout}): expected {root}/{split}/<class>/<image>; {fix}"
            )
        base = splits[split]
    elif splits:
        if "train" not in splits:
            raise KzooError(f"no train/ folder in {root} (layout {layout}): expected {root}/train/<class>/<image>")
        base = splits["train"]
    else:
        base = root

    paths, decoders, labels, bad = _list_split(base, folders)
    if not paths:
        raise KzooError(f"no images in {base}: {_LAYOUT_HINT}")
    warn_skipped(bad, str(base))
    examples = Examples(
        class_names=_read_class_names(root, folders),
        source=source or f"image folder {layout}",
        labels=np.asarray(labels, dtype=np.int64),
        paths=paths,
        decoders=decoders,
        skipped=tuple(bad),
    )
    if split == "test" or val_split is None:
        return examples

    if group_by == "auto":
        group_by = "gtsrb_tracks" if root.name.lower().startswith("gtsrb") else None
        if group_by:
            log.info("GTSRB tree: validation split keeps each 30-frame track together (group_by='gtsrb_tracks')")
    groups = resolve_groups(group_by, paths, labels)
    train_idx, val_idx = split_indices(labels, val_split, seed, groups)
    chosen = val_idx if split == "val" else train_idx
    if len(chosen) == 0:
        raise KzooError(
            f"val_split={val_split} leaves the {split} split of {base} empty ({len(labels)} images): "
            "use a fraction that keeps images on both sides"
        )
    return examples.take(chosen)
