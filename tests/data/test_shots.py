"""Few-shot splits (`kzoo.data.load(..., shots=K)`, `kzoo train --shots K`): K seeded images of every class."""

import numpy as np
import pytest

from kzoo.data.examples import Examples
from kzoo.errors import KzooError


def _examples(counts=(5, 7, 4)):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 3), np.uint8)
    return Examples(["a", "b", "c"], "toy", labels=labels, images=images)


def test_shots_keeps_k_per_class_seeded_and_in_source_order():
    ex = _examples()
    picked = ex.shots(3, seed=0)
    assert np.bincount(picked.labels).tolist() == [3, 3, 3]
    ids = picked.images[:, 0, 0, 0].tolist()
    assert ids == sorted(ids)  # source order kept
    assert ids == ex.shots(3, seed=0).images[:, 0, 0, 0].tolist()  # same seed, same images
    others = [tuple(ex.shots(3, seed=s).images[:, 0, 0, 0]) for s in range(1, 6)]
    assert any(o != tuple(ids) for o in others)  # another seed, other images
    assert ex.shots(None, seed=0) is ex


def test_more_shots_than_the_smallest_class_names_it():
    with pytest.raises(KzooError, match="class 'c' of toy has only 4 images; use --shots 4 or fewer"):
        _examples().shots(5, seed=0)
    with pytest.raises(KzooError, match="positive number"):
        _examples().shots(0, seed=0)
