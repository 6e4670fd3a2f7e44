"""`.npz` sources and `to_numpy`."""

from __future__ import annotations

import numpy as np
import pytest

import kzoo.data
from kzoo.errors import KzooError
from kzoo_data_helpers import all_batches, assert_one_line


def _npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_uint8_arrays_with_splits_and_class_names(tmp_path):
    x = np.stack([np.full((6, 6, 3), 10 * i, np.uint8) for i in range(12)])
    y = np.arange(12) % 3
    path = _npz(tmp_path, x=x, y=y, x_test=x[:3], y_test=y[:3].reshape(3, 1), class_names=np.array(["a", "b", "c"]))
    train = kzoo.data.load(path, "train", batch_size=4, image_size=(6, 6), shuffle=False)
    assert train.class_names == ["a", "b", "c"] and train.num_examples == 12 and train.files is None
    images, labels = all_batches(train)
    assert np.array_equal(images[:, 0, 0, 0], np.arange(12) * 10.0) and np.array_equal(labels.argmax(1), y)
    assert kzoo.data.load(path, "test").num_examples == 3
    assert kzoo.data.available_splits(path) == ("train", "test")
    val = kzoo.data.load(path, "val", val_split=0.25, batch_size=None)
    assert val.num_examples == 3 and sorted(int(l.numpy().argmax()) for _, l in val.dataset) == [0, 1, 2]


def test_float_grayscale_arrays_are_scaled_converted_and_resized(tmp_path):
    x = np.full((4, 5, 5), 0.5, np.float32)  # (N, H, W) grayscale in [0, 1]
    path = _npz(tmp_path, x=x, y=np.array([0, 1, 0, 1]))
    bundle = kzoo.data.load(path, "train", image_size=(8, 8), batch_size=None)
    image, _ = next(iter(bundle.dataset))
    assert image.shape == (8, 8, 3) and np.allclose(image.numpy(), 128.0)
    rgba = _npz(tmp_path, "rgba.npz", x=np.full((2, 4, 4, 4), 7, np.uint8), y=np.array([0, 1]))
    image, _ = next(iter(kzoo.data.load(rgba, image_size=(4, 4), batch_size=None).dataset))
    assert image.shape == (4, 4, 3)


def test_to_numpy_matches_the_pipeline(make_tree):
    root = make_tree({"test/a": 5, "test/b": 7})
    x, y, names = kzoo.data.to_numpy(root, "test", (8, 8))
    assert x.shape == (12, 8, 8, 3) and x.dtype == np.uint8 and y.dtype == np.int64 and names == ["a", "b"]
    assert list(y) == [0] * 5 + [1] * 7
    subset_x, subset_y, _ = kzoo.data.to_numpy(root, "test", (8, 8), limit=6)
    assert len(subset_x) == 6 and set(subset_y) == {0, 1}  # a random subset, not the first class
    images, labels = all_batches(kzoo.data.load(root, "test", image_size=(8, 8), batch_size=5))
    assert np.array_equal(images, x.astype(np.float32)) and np.array_equal(labels.argmax(1), y)


@pytest.mark.parametrize(
    "arrays, kwargs, fragments",
    [
        ({"x": np.zeros((3, 4, 4, 3), np.uint8), "y": np.array([0, 5, 1])}, {"num_classes": 3},
         ["y[1] = 5", "expected 0..2"]),
        ({"x": np.zeros((3, 4, 4, 3), np.uint8), "y": np.array([0, -1, 1])}, {}, ["y[1] = -1", "not a class id"]),
        ({"x": np.zeros((3, 4, 4, 3), np.uint8), "y": np.array([0, 1])}, {}, ["2 labels for 3 images"]),
        ({"x": np.zeros((3, 4, 4, 3), np.uint8), "y": np.array([0.0, 1.0, 1.0])}, {}, ["integer class ids"]),
        ({"x": np.zeros((3, 4, 4, 2), np.uint8), "y": np.array([0, 1, 1])}, {}, ["shape (3, 4, 4, 2)"]),
        ({"images": np.zeros((3, 4, 4, 3), np.uint8)}, {}, ["no arrays x, y", "found: images"]),
        ({"x": np.zeros((3, 4, 4, 3), np.uint8), "y": np.array([0, 1, 1])}, {"split": "test"}, ["no arrays x_test, y_test"]),
        ({"x": np.zeros((3, 4, 4, 3), np.uint8), "y": np.array([0, 1, 1]), "class_names": np.array(["a", "b"])},
         {"num_classes": 3}, ["num_classes=3", "2 classes"]),
    ],
)
def test_bad_arrays_raise_one_line(tmp_path, arrays, kwargs, fragments):
    path = _npz(tmp_path, **arrays)
    split = kwargs.pop("split", "train")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(path, split, **kwargs)
    assert_one_line(excinfo, *fragments)


def test_num_classes_without_class_names_is_authoritative(tmp_path):
    # Unnamed arrays may lack the last classes (a subset): num_classes sets the one-hot width.
    path = _npz(tmp_path, x=np.zeros((3, 4, 4, 3), np.uint8), y=np.array([0, 1, 1]))
    bundle = kzoo.data.load(path, num_classes=5, batch_size=3, image_size=(4, 4))
    assert bundle.num_classes == 5 and bundle.class_names == ["0", "1", "2", "3", "4"]
    assert next(iter(bundle.dataset))[1].shape == (3, 5)


def test_pickled_arrays_are_refused(tmp_path):
    path = _npz(tmp_path, x=np.zeros((2, 4, 4, 3), np.uint8), y=np.array([0, 1]), class_names=np.array(["a", None], dtype=object))
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(path)
    assert_one_line(excinfo, "allow_pickle=False", "str array")
    not_npz = tmp_path / "junk.npz"
    not_npz.write_bytes(b"junk")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(not_npz)
    assert_one_line(excinfo, "cannot read", "junk.npz")
