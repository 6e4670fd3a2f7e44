"""TFDS sources against a data_dir prepared offline with TFDS's own builder machinery."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

import kzoo.data  # noqa: E402
from kzoo.data.tfds_source import _import_tfds  # noqa: E402
from kzoo.errors import KzooError  # noqa: E402
from kzoo_data_helpers import all_batches, assert_one_line  # noqa: E402

NAME = "kzoo_tiny_shapes"
CLASSES = ["circle", "square", "triangle"]


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A real prepared TFDS dataset (tfrecords + dataset_info.json), made without network.

    Grayscale images of varying size whose pixel value is the example index, so tests can
    tell examples apart; label = index % 3.
    """
    tfds = _import_tfds()

    class KzooTinyShapes(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(None, None, 1)),
                    "label": tfds.features.ClassLabel(names=CLASSES),
                }),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(0, 30), "test": self._generate_examples(100, 9)}

        def _generate_examples(self, start, count):
            for i in range(start, start + count):
                image = np.full((6 + i % 3, 5, 1), i, np.uint8)
                yield i, {"image": image, "label": i % 3}

    data_dir = tmp_path_factory.mktemp("tfds")
    KzooTinyShapes(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def _indices(bundle) -> list[int]:
    images, labels = all_batches(bundle)
    assert np.array_equal(labels.argmax(1), images[:, 0, 0, 0].astype(int) % 3)  # labels travel with images
    return sorted(images[:, 0, 0, 0].astype(int).tolist())


def test_train_and_test_splits(tfds_dir):
    train = kzoo.data.load(f"tfds:{NAME}", "train", data_dir=tfds_dir, batch_size=7, image_size=(8, 8))
    assert train.class_names == CLASSES and train.num_classes == 3 and train.num_examples == 30
    assert train.source.startswith(f"tfds:{NAME} train split")
    images, labels = next(iter(train.dataset))
    assert images.shape == (7, 8, 8, 3) and labels.shape == (7, 3)
    assert np.all(images.numpy()[..., 0] == images.numpy()[..., 2])  # grey tiled to RGB
    assert kzoo.data.available_splits(f"tfds:{NAME}", data_dir=tfds_dir) == ("train", "test")
    test = kzoo.data.load(f"tfds:{NAME}", "test", data_dir=tfds_dir, batch_size=4)
    assert test.num_examples == 9 and _indices(test) == list(range(100, 109))


def test_val_split_is_seeded_and_disjoint(tfds_dir):
    def part(split, seed):
        return _indices(kzoo.data.load(f"tfds:{NAME}", split, data_dir=tfds_dir, val_split=0.2, seed=seed, batch_size=5, drop_remainder=False))

    val, train = part("val", 0), part("train", 0)
    bundle = kzoo.data.load(f"tfds:{NAME}", "train", data_dir=tfds_dir, val_split=0.2, batch_size=5)
    assert int(bundle.dataset.cardinality()) == bundle.steps_per_epoch == 4  # known, despite the filter
    assert len(val) == 6 and len(train) == 24 and sorted(val + train) == list(range(30))
    assert part("val", 0) == val and part("val", 1) != val


def test_prepared_elsewhere_and_copied_data_dir_loads(tfds_dir, tmp_path):
    copied = tmp_path / "copied"
    shutil.copytree(tfds_dir, copied)
    x, y, names = kzoo.data.to_numpy(f"tfds:{NAME}", "test", (6, 6), data_dir=copied)
    assert x.shape == (9, 6, 6, 3) and names == CLASSES
    assert sorted(x[:, 0, 0, 0]) == list(range(100, 109)) and np.array_equal(y, x[:, 0, 0, 0] % 3)


def test_unprepared_dataset_fails_fast_offline(tmp_path):
    start = time.monotonic()
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load("tfds:cifar10", data_dir=tmp_path / "empty")
    assert time.monotonic() - start < 15  # no download attempts, no retries
    assert_one_line(excinfo, "'cifar10' is not prepared", str(tmp_path / "empty"), "--download",
                    "copy the prepared dataset to DATA_DIR", "image folder")


@pytest.mark.parametrize(
    "source, kwargs, fragments",
    [
        ("tfds:kzoo_no_such_dataset", {}, ["unknown TFDS dataset 'kzoo_no_such_dataset'", "catalog"]),
        (f"tfds:{NAME}", {"split": "val"}, ["has no validation split", "val_split=0.1"]),
        (f"tfds:{NAME}", {"num_classes": 10}, ["num_classes=10", "has 3 classes"]),
        ("tfds:", {}, ["names no dataset"]),
    ],
)
def test_bad_tfds_requests_raise_one_line(tfds_dir, source, kwargs, fragments):
    split = kwargs.pop("split", "train")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(source, split, data_dir=tfds_dir, **kwargs)
    assert_one_line(excinfo, *fragments)
