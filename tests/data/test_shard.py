"""kzoo.data.load(..., shard=(i, n)): the processes of a job together see a one-process run's
batches, each its own slice, for files sharded before decoding and for cached data after the
shuffle; a split smaller than one global batch is refused in one line."""

import numpy as np
import pytest
from PIL import Image

from kzoo import data as kdata
from kzoo.errors import KzooError


def _folder(tmp_path, n=40):
    """Image i is filled with the value i (two classes), so a batch shows which images it holds."""
    for i in range(n):
        path = tmp_path / "tree" / "train" / f"c{i % 2}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4, 3), i, np.uint8)).save(path)
    return str(tmp_path / "tree")


def _ids(bundle):
    return [images[:, 0, 0, 0].astype(int).tolist() for images, _ in bundle.dataset.as_numpy_iterator()]


@pytest.mark.parametrize("cache", [False, True])  # files sharded before decoding / cached, after the shuffle
def test_shards_together_are_the_one_process_batches(tmp_path, cache):
    source = _folder(tmp_path)
    load = dict(image_size=(4, 4), batch_size=8, seed=3, cache=cache)
    whole = _ids(kdata.load(source, "train", **load))
    parts = [_ids(kdata.load(source, "train", shard=(i, 2), **load)) for i in range(2)]
    assert len(whole) == 5 and all(len(p) == 5 for p in parts)
    for batch, first, second in zip(whole, *parts):
        assert len(first) == len(second) == 4
        assert first + second == batch  # process i holds the i-th half of each global batch
    # the shuffle really shuffles (else the test would pass for any slicing of a fixed order)
    assert sum(whole, []) != sorted(sum(whole, []))


def test_a_split_smaller_than_one_global_batch_is_refused(tmp_path):
    source = _folder(tmp_path, n=10)
    with pytest.raises(KzooError, match=r"the train split \(10 images\) cannot be shared by 2 processes: it holds "
                                        r"less than one global batch of 16; lower --batch-size"):
        kdata.load(source, "train", image_size=(4, 4), batch_size=16, shard=(1, 2))
