"""`Examples`: one split of one source, listed but not yet decoded.

Every source (folder, archive, arrays file, TFDS) resolves to this, and the tf.data pipeline is
built from it, so splitting, subsetting and label checks are written once.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from kzoo.errors import KzooError


@dataclass(frozen=True)
class Examples:
    """The examples of one split: exactly one of `paths`, `images` or `make_dataset` is set.

    - `paths` (+ `decoders`, "tf"/"pil" per file): image files, decoded in the pipeline;
    - `images`: a uint8 array (N, H, W, C), C in {1, 3, 4};
    - `make_dataset`: a callable returning a tf.data.Dataset of (uint8 image, int label)
      (TFDS), whose size is `count`.
    """

    class_names: list[str]
    source: str
    labels: np.ndarray | None = None
    paths: list[str] | None = None
    decoders: list[str] | None = None
    images: np.ndarray | None = None
    make_dataset: Callable[[], Any] | None = None
    count: int | None = None
    skipped: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_examples(self) -> int:
        return len(self.labels) if self.labels is not None else int(self.count or 0)

    def native_size(self, sample: int = 32) -> tuple[int, int] | None:
        """The images' own (height, width): the median over up to `sample` evenly spaced files
        (Pillow reads only their headers), the array's shape, or None for a streamed source.

        Example:
            >>> Examples(["a"], "arrays", labels=np.zeros(2), images=np.zeros((2, 64, 48, 3), "uint8")).native_size()
            (64, 48)
        """
        if self.images is not None:
            return int(self.images.shape[1]), int(self.images.shape[2])
        if not self.paths:
            return None
        from PIL import Image

        sizes = []
        for i in np.linspace(0, len(self.paths) - 1, min(sample, len(self.paths))).astype(int):
            try:
                with Image.open(self.paths[i]) as image:
                    sizes.append(image.size[::-1])  # Pillow says (width, height)
            except OSError:  # unreadable files are the pipeline's to report
                continue
        return tuple(int(v) for v in np.median(sizes, axis=0)) if sizes else None

    def take(self, indices: np.ndarray) -> "Examples":
        """The examples at `indices` (file and array sources only)."""
        indices = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            labels=self.labels[indices],
            paths=None if self.paths is None else [self.paths[i] for i in indices],
            decoders=None if self.decoders is None else [self.decoders[i] for i in indices],
            images=None if self.images is None else self.images[indices],
        )

    def shots(self, shots: int | None, seed: int) -> "Examples":
        """`shots` seeded random examples of every class, kept in source order (few-shot splits).

        Example:
            >>> ex = Examples(["a", "b"], "arrays", labels=np.array([0, 0, 1, 1, 1]), images=np.zeros((5, 2, 2, 3), "uint8"))
            >>> ex.shots(2, seed=0).labels.tolist()
            [0, 0, 1, 1]
        """
        if shots is None:
            return self
        if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
            raise KzooError(f"--shots {shots!r}: expected a positive number of images per class")
        if self.labels is None:
            raise KzooError(f"{self.source}: --shots needs a listed source (an image folder, archive or .npz), "
                            "not a streamed TFDS dataset; export it to a folder first")
        counts = np.bincount(np.asarray(self.labels, np.int64), minlength=len(self.class_names))
        smallest = int(np.argmin(counts))
        if shots > counts[smallest]:
            raise KzooError(f"--shots {shots}: class {self.class_names[smallest]!r} of {self.source} has only "
                            f"{counts[smallest]} images; use --shots {counts[smallest]} or fewer")
        rng = np.random.default_rng(seed)
        chosen = [rng.permutation(np.flatnonzero(self.labels == c))[:shots] for c in range(len(self.class_names))]
        return self.take(np.sort(np.concatenate(chosen)))

    def select_classes(self, classes: str | Sequence[str | int] | None) -> "Examples":
        """The examples of some classes only, relabelled 0..k-1 in the order given (the
        pretrain-on-some-classes, transfer-to-the-others design of transfer studies).

        `classes` is a list of class names or indices, or a string of them separated by commas,
        where "A-B" is the range of indices A to B inclusive: "0-4", "cat,dog", "0,2,5-7".

        Example:
            >>> ex = Examples(["a", "b", "c"], "arrays", labels=np.array([0, 1, 2, 2]), images=np.zeros((4, 2, 2, 3), "uint8"))
            >>> sub = ex.select_classes("c,a")
            >>> sub.class_names, sub.labels.tolist()
            (['c', 'a'], [1, 0, 0])
        """
        if classes is None:
            return self
        wanted = parse_classes(classes, self.class_names, self.source)
        if self.labels is None:
            raise KzooError(f"{self.source}: --class-subset needs a listed source (an image folder, archive or .npz), "
                            "not a streamed TFDS dataset; export it to a folder first")
        relabel = np.full(len(self.class_names), -1, np.int64)
        relabel[wanted] = np.arange(len(wanted))
        new = relabel[np.asarray(self.labels, np.int64)]
        kept = self.take(np.flatnonzero(new >= 0))
        return replace(kept, labels=new[new >= 0], class_names=[self.class_names[i] for i in wanted])

    def fraction(self, fraction: float | None, seed: int) -> "Examples":
        """A seeded, class-stratified `fraction` of the examples (round(fraction x count) of every
        class, at least one), kept in source order: the pretraining-set-size studies.

        Example:
            >>> ex = Examples(["a", "b"], "arrays", labels=np.array([0] * 10 + [1] * 20), images=np.zeros((30, 2, 2, 3), "uint8"))
            >>> np.bincount(ex.fraction(0.3, seed=0).labels).tolist()
            [3, 6]
        """
        if fraction is None or fraction == 1:
            return self
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise KzooError(f"--train-fraction {fraction!r}: expected a fraction in (0, 1] of the training images")
        if self.labels is None:
            raise KzooError(f"{self.source}: --train-fraction needs a listed source (an image folder, archive or "
                            ".npz), not a streamed TFDS dataset; export it to a folder first")
        rng = np.random.default_rng(seed)
        chosen = []
        for c in range(len(self.class_names)):
            members = np.flatnonzero(self.labels == c)
            if len(members):
                chosen.append(rng.permutation(members)[:max(1, round(fraction * len(members)))])
        return self.take(np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64))

    def limit(self, limit: int | None, seed: int) -> "Examples":
        """A seeded random subset of `limit` examples kept in source order (all classes, not
        the first class only); TFDS data is already shuffled when prepared, so it takes the head."""
        if limit is None or limit >= self.num_examples:
            return self
        if self.make_dataset is not None:
            make = self.make_dataset
            return replace(self, make_dataset=lambda: make().take(limit), count=limit)
        chosen = np.sort(np.random.default_rng(seed).permutation(self.num_examples)[:limit])
        return self.take(chosen)


def parse_classes(classes: str | Sequence[str | int], names: Sequence[str], source: str) -> list[int]:
    """Indices of the classes `classes` names (see `Examples.select_classes`), in that order.

    Example:
        >>> parse_classes("0-2,dog", ["cat", "car", "ship", "dog"], "data")
        [0, 1, 2, 3]
    """
    items = [p.strip() for p in classes.split(",")] if isinstance(classes, str) else list(classes)
    wanted: list[int] = []
    for item in items:
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            indices = [int(item)]
        elif isinstance(item, str) and item in names:  # a name wins over an index reading ("3" as a class)
            indices = [list(names).index(item)]
        elif isinstance(item, str) and item.replace("-", "", 1).isdigit():
            low, _, high = item.partition("-")
            indices = list(range(int(low), int(high or low) + 1))
            if not indices:
                raise KzooError(f"--class-subset {classes!r}: the range {item!r} is empty; write LOW-HIGH, e.g. 0-4")
        else:
            close = difflib.get_close_matches(str(item), list(names), n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"its classes are {', '.join(names[:12])}" + (
                ", ..." if len(names) > 12 else "")
            raise KzooError(f"--class-subset {classes!r}: {source} has no class {item!r}; {hint}")
        for i in indices:
            if not 0 <= i < len(names):
                raise KzooError(f"--class-subset {classes!r}: class index {i} is out of range: {source} has "
                                f"{len(names)} classes (0-{len(names) - 1})")
            if i in wanted:
                raise KzooError(f"--class-subset {classes!r}: class {names[i]!r} is named twice")
            wanted.append(i)
    if not wanted:
        raise KzooError(f"--class-subset {classes!r} names no class: expected names or indices, e.g. 0-4 or cat,dog")
    return wanted
