"""Image-folder sources: layouts, class names, colour conversion, corrupt files, bad input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

import kzoo.data
from kzoo.errors import KzooError
from kzoo_data_helpers import all_batches, assert_one_line, class_color, solid, write_image


def test_split_dirs_give_sorted_classes_and_labels_matching_pixels(make_tree):
    root = make_tree({"train/dog": 3, "train/cat": 5, "test/dog": 2, "test/cat": 2})
    train = kzoo.data.load(root, "train", batch_size=4, image_size=(8, 8))
    assert train.class_names == ["cat", "dog"] and train.num_classes == 2 and train.num_examples == 8
    assert train.drop_remainder and train.steps_per_epoch == 2
    x, y = all_batches(train)
    assert x.shape == (8, 8, 8, 3) and x.dtype == np.float32 and y.shape == (8, 2) and y.dtype == np.float32
    for image, one_hot in zip(x, y):
        assert one_hot.sum() == 1.0
        assert image[0, 0, 0] == class_color(int(one_hot.argmax()))[0]

    test = kzoo.data.load(root, "test", batch_size=3, image_size=(8, 8))
    assert test.num_examples == 4 and not test.drop_remainder and test.steps_per_epoch == 2
    x, y = all_batches(test)
    assert len(x) == 4 and list(y.argmax(1)) == [0, 0, 1, 1]  # unshuffled: source order
    assert [p.split("/")[-2] for p in test.files] == ["cat", "cat", "dog", "dog"]


def test_class_folders_with_val_split_and_real_fake_tree(make_tree):
    root = make_tree({"real": 10, "fake": 10}, root="aigc")
    train = kzoo.data.load(root, "train", val_split=0.2, batch_size=4)
    val = kzoo.data.load(root, "val", val_split=0.2, batch_size=4)
    assert train.class_names == ["fake", "real"] and train.num_examples == 16 and val.num_examples == 4
    assert not set(train.files) & set(val.files)
    assert sorted(all_batches(val)[1].argmax(1)) == [0, 0, 1, 1]  # stratified: 2 per class
    everything = kzoo.data.load(root, "train")
    assert everything.num_examples == 20


def test_images_are_resized_and_nested_top_folder_is_found(make_tree):
    root = make_tree({"ds/train/a": 2, "ds/train/b": 2}, root="wrapper", size=(20, 12))
    bundle = kzoo.data.load(root, "train", image_size=(16, 16), batch_size=None)
    image, label = next(iter(bundle.dataset))
    assert image.shape == (16, 16, 3) and label.shape == (2,)


def test_numeric_class_names_sort_numerically_and_classes_txt_names(tmp_path):
    for cls in ["2", "10", "1"]:
        write_image(tmp_path / "d" / "train" / cls / "0.png", solid((int(cls), 0, 0)))
    (tmp_path / "d" / "classes.txt").write_text("1\tone\n2\ttwo\n10\tten\n")
    bundle = kzoo.data.load(tmp_path / "d", "train", batch_size=None)
    assert bundle.class_names == ["one", "two", "ten"]
    labels = {int(y.numpy().argmax()): int(x.numpy()[0, 0, 0]) for x, y in bundle.dataset}
    assert labels == {0: 1, 1: 2, 2: 10}


def test_grayscale_rgba_cmyk_palette_gif_bmp_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    cases = {
        "gray.png": "L", "gray.jpg": "L", "rgba.png": "RGBA", "cmyk.jpg": "CMYK", "palette.png": "P",
        "palette.bmp": "P", "rgb.bmp": None, "anim.gif": "P", "la.png": "LA", "tiff.tif": None,
    }
    for name, mode in cases.items():
        write_image(tmp_path / "d" / "x" / name, pixels, mode, **({"quality": 95} if name.endswith("jpg") else {}))
    write_image(tmp_path / "d" / "y" / "plain.png", pixels)
    bundle = kzoo.data.load(tmp_path / "d", "train", image_size=(16, 16), batch_size=None, shuffle=False)
    assert bundle.num_examples == len(cases) + 1 and not bundle.skipped
    decoded = {path.split("/")[-1]: x.numpy() for path, (x, _) in zip(bundle.files, bundle.dataset)}
    for name, image in decoded.items():
        assert image.shape == (16, 16, 3), name
        reference = np.asarray(Image.open(tmp_path / "d" / ("y" if name == "plain.png" else "x") / name).convert("RGB"))
        tolerance = 4.0 if name.endswith(".jpg") else 0.0  # JPEG decoders differ slightly
        assert np.abs(image - reference).mean() <= tolerance, name


def test_corrupt_files_are_skipped_with_one_warning_naming_them(make_tree, caplog):
    root = make_tree({"a": 3, "b": 3})
    (root / "a" / "empty.jpg").write_bytes(b"")
    (root / "a" / "html.png").write_bytes(b"<html>404 not found</html>")
    good = (root / "b" / "00000.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "b" / "notes.txt").write_text("not an image, and not an image name: ignored silently")
    with caplog.at_level(logging.WARNING, logger="kzoo.data"):
        bundle = kzoo.data.load(root, "train", batch_size=2)
    assert bundle.num_examples == 6
    assert sorted(p.split("/")[-1] for p in bundle.skipped) == ["empty.jpg", "html.png", "truncated.png"]
    warnings = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(warnings) == 1 and "skipped 3 " in warnings[0]
    assert all(name in warnings[0] for name in ("empty.jpg", "html.png", "truncated.png"))
    assert len(all_batches(bundle)[0]) == 6  # the pipeline never sees the bad files


def test_damaged_file_that_passes_the_sniff_is_dropped_by_the_pipeline(make_tree):
    root = make_tree({"a": 2, "b": 2})
    good = (root / "a" / "00000.png").read_bytes()
    # Valid PNG header and IEND tail, garbage in between: found only when decoding.
    (root / "a" / "damaged.png").write_bytes(good[:16] + b"\x00" * 40 + good[-12:])
    bundle = kzoo.data.load(root, "train", batch_size=None, shuffle=False)
    assert bundle.num_examples == 5 and int(bundle.dataset.cardinality()) == 5
    images = [x.numpy() for x, _ in bundle.dataset]
    assert len(images) == 5 and np.array_equal(images[-1], images[0])  # size kept by wrapping round
    x, _, _ = kzoo.data.to_numpy(root, "train", (8, 8))
    assert len(x) == 4  # arrays for evaluation hold only the decodable images


@pytest.mark.parametrize(
    "spec, split, kwargs, fragments",
    [
        ({"train/a": 2, "train/b": 2}, "test", {}, ["no test/ folder", "split='val'"]),
        ({"train/a": 2, "train/b": 2}, "val", {}, ["no val/ folder", "val_split=0.1"]),
        ({"a": 2, "b": 2}, "test", {}, ["no test/ folder"]),
        ({"train/a": 2, "train/b": 2}, "train", {"num_classes": 3}, ["num_classes=3", "has 2 classes", "num_classes=2"]),
        ({"train/a": 2, "train/b": 2}, "bogus", {}, ["split='bogus'", "train, val, test"]),
        ({"train/a": 2, "train/b": 2}, "train", {"image_size": (0, 32)}, ["image_size=(0, 32)"]),
        ({"train/a": 2, "train/b": 2}, "train", {"batch_size": 0}, ["batch_size=0"]),
        ({"train/a": 2, "train/b": 2}, "train", {"group_by": "bogus", "val_split": 0.5}, ["group_by='bogus'"]),
    ],
)
def test_bad_requests_raise_one_line(make_tree, spec, split, kwargs, fragments):
    root = make_tree(spec)
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(root, split, **kwargs)
    assert_one_line(excinfo, *fragments)


@pytest.mark.parametrize("value", [0, 1, 1.0, -0.1, 1.5, True, "0.1"])
def test_val_split_outside_open_interval_is_refused(make_tree, value):
    root = make_tree({"a": 2, "b": 2})
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(root, "train", val_split=value)
    assert_one_line(excinfo, f"val_split={value!r}", "between 0 and 1")


def test_empty_class_folder_missing_path_no_images(tmp_path, make_tree):
    root = make_tree({"a": 2, "b": 2})
    (root / "c").mkdir()
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(root)
    assert_one_line(excinfo, "class folder", "/c has no images", "remove the folder")

    (root / "c" / "broken.jpg").write_bytes(b"nope")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(root)
    assert_one_line(excinfo, "/c has no images (1 unreadable file(s) skipped)")

    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(tmp_path / "does-not-exist")
    assert_one_line(excinfo, "does-not-exist", "not found", "check the path")

    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load("cifar10")
    assert_one_line(excinfo, "not found", "tfds:cifar10")

    (tmp_path / "nothing" / "sub").mkdir(parents=True)
    (tmp_path / "nothing" / "readme.txt").write_text("x")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(tmp_path / "nothing")
    assert_one_line(excinfo, "no class folders")

    (tmp_path / "notes.csv").write_text("a,b")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.load(tmp_path / "notes.csv")
    assert_one_line(excinfo, ".csv file", "image folder")


def test_sniff_routes_formats_and_catches_truncation(tmp_path):
    from kzoo.data.images import sniff

    pixels = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    expected = {"a.jpg": "tf", "a.png": "tf", "a.gif": "tf", "rgb.bmp": "tf", "pal.bmp": "pil", "a.tif": "pil", "a.webp": "pil"}
    for name in expected:
        write_image(tmp_path / name, pixels, "P" if name in ("pal.bmp", "a.gif") else None)
    assert {name: sniff(tmp_path / name) for name in expected} == expected
    for name in ("a.jpg", "a.png", "rgb.bmp"):
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut-{name}").write_bytes(data[: len(data) - 20])
        assert sniff(tmp_path / f"cut-{name}") is None, name
    (tmp_path / "a.jpg.png").write_bytes((tmp_path / "a.jpg").read_bytes())  # misnamed: sniffed by content
    assert sniff(tmp_path / "a.jpg.png") == "tf"


def test_available_splits(make_tree, tmp_path, sample_cache):
    assert kzoo.data.available_splits(make_tree({"train/a": 1, "test/a": 1, "val/a": 1}, root="s")) == ("train", "val", "test")
    assert kzoo.data.available_splits(make_tree({"a": 1, "b": 1}, root="c")) == ("train",)
    assert kzoo.data.available_splits(None) == kzoo.data.available_splits("sample") == ("train", "test")
    with pytest.raises(KzooError) as excinfo:
        kzoo.data.available_splits(tmp_path / "missing")
    assert_one_line(excinfo, "not found")
