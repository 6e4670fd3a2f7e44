"""Class subsets and stratified fractions of a split (`kzoo.data.load(..., classes=, fraction=)`,
`--class-subset`, `--train-fraction`): the pretrain-on-some-classes / transfer-to-the-others design."""

import re

import numpy as np
import pytest

from kzoo.data import load
from kzoo.data.examples import Examples
from kzoo.errors import KzooError


def _examples(counts=(5, 7, 4, 6)):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1) * np.ones((1, 2, 2, 3), np.uint8)
    return Examples(["cat", "dog", "emu", "fox"], "toy", labels=labels, images=images)


def test_selected_classes_are_relabelled_in_the_order_given():
    ex = _examples()
    sub = ex.select_classes("3,0-1")
    assert sub.class_names == ["fox", "cat", "dog"]
    ids = sub.images[:, 0, 0, 0]
    original = ex.labels[ids]  # each kept image's old class ...
    np.testing.assert_array_equal(sub.labels, np.array([1, 2, -1, 0])[original])  # ... mapped to its new index
    assert sorted(ids.tolist()) == ids.tolist() and np.bincount(original).tolist() == [5, 7, 0, 6]
    assert ex.select_classes(["emu", 1]).class_names == ["emu", "dog"]
    assert ex.select_classes(None) is ex


@pytest.mark.parametrize("spec, message", [
    ("cat,dgo", "toy has no class 'dgo'; did you mean dog?"),
    ("0-9", "class index 4 is out of range: toy has 4 classes (0-3)"),
    ("1,dog", "class 'dog' is named twice"),
    ("3-1", "the range '3-1' is empty"),
    ("", "has no class ''"),
])
def test_bad_subsets_are_one_line(spec, message):
    with pytest.raises(KzooError, match=re.escape(message)) as error:
        _examples().select_classes(spec)
    assert "\n" not in str(error.value)


def test_fraction_is_stratified_seeded_and_in_source_order():
    ex = _examples((10, 20, 30, 1))
    part = ex.fraction(0.3, seed=0)
    assert np.bincount(part.labels).tolist() == [3, 6, 9, 1]  # round(0.3 x count), at least one
    ids = part.images[:, 0, 0, 0].tolist()
    assert ids == sorted(ids) and ids == ex.fraction(0.3, seed=0).images[:, 0, 0, 0].tolist()
    assert ids != ex.fraction(0.3, seed=1).images[:, 0, 0, 0].tolist()
    assert ex.fraction(1.0, seed=0) is ex and ex.fraction(None, seed=0) is ex
    with pytest.raises(KzooError, match=r"--train-fraction 1.5: expected a fraction in \(0, 1\]"):
        ex.fraction(1.5, seed=0)


def test_load_applies_both_to_every_split(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "four.npz"
    y_train, y_test = np.repeat(np.arange(4), 20), np.repeat(np.arange(4), 5)
    np.savez(path, x_train=rng.integers(0, 255, (80, 8, 8, 3), dtype=np.uint8), y_train=y_train,
             x_test=rng.integers(0, 255, (20, 8, 8, 3), dtype=np.uint8), y_test=y_test,
             class_names=np.array(["cat", "dog", "emu", "fox"]))
    train = load(str(path), "train", image_size=8, batch_size=4, classes="2-3", fraction=0.5, cache=False)
    test = load(str(path), "test", image_size=8, batch_size=4, classes="2-3")
    assert train.class_names == test.class_names == ["emu", "fox"] and train.num_classes == 2
    assert train.class_counts == (10, 10) and test.class_counts == (5, 5)
    labels = np.concatenate([np.argmax(y, axis=1) for _, y in test.dataset.as_numpy_iterator()])
    assert labels.tolist() == [0] * 5 + [1] * 5  # one-hot over the two kept classes
    with pytest.raises(KzooError, match="num_classes=4 does not match"):
        load(str(path), "test", classes="2-3", num_classes=4)
