"""CutMix, MixUp, their per-image random choice, label smoothing."""

import numpy as np
import pytest

import kzoo.augment as A
from kzoo_augment_helpers import np_, one_hot, t
from kzoo.errors import KzooError


def _constant_batch(batch, size=8):
    """Image b is flat with value 10 * b + 5 and class b: a pixel tells which image it came from."""
    values = 10.0 * np.arange(batch, dtype="float32") + 5.0
    images = np.broadcast_to(values[:, None, None, None], (batch, size, size, 3)).copy()
    return images, one_hot(np.arange(batch), batch), values


@pytest.mark.parametrize("seed", range(4))
def test_cutmix_label_weights_equal_the_pasted_area_exactly(seed):
    images, labels, values = _constant_batch(16)
    out = A.CutMix(alpha=1.0)({"images": t(images), "labels": t(labels)}, seed=seed)
    x, y = np_(out["images"]), np_(out["labels"])
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-6)
    for b in range(16):
        pixel_source = np.rint((x[b, ..., 0] - 5.0) / 10.0).astype(int)
        fractions = np.bincount(pixel_source.ravel(), minlength=16) / pixel_source.size
        np.testing.assert_allclose(y[b], fractions, atol=1e-6)  # area after clipping at the border
        assert np.count_nonzero(fractions) <= 2
    assert np.count_nonzero(y.max(axis=1) < 1.0) >= 8  # most images really got a patch


def test_cutmix_boxes_are_clipped_at_the_border():
    images, labels, _ = _constant_batch(2, size=8)
    boxes = t([[6, 6, 8, 8], [0, 0, 8, 4]], "int32")  # 2x2 corner patch; left half
    x, y = A.cutmix(t(images), t(labels), t([1, 0], "int32"), boxes)
    np.testing.assert_allclose(np_(y), [[1 - 4 / 64, 4 / 64], [0.5, 0.5]], atol=1e-6)
    np.testing.assert_array_equal(np_(x)[0, 6:, 6:, 0], 15.0)


def test_mixup_mixes_pixels_and_labels_with_the_same_per_image_weight():
    images, labels, values = _constant_batch(16)
    out = A.MixUp(alpha=0.8)({"images": t(images), "labels": t(labels)}, seed=1)
    x, y = np_(out["images"]), np_(out["labels"])
    np.testing.assert_allclose(y.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(x[:, 0, 0, 0], y @ values, atol=1e-3)
    own = y[np.arange(16), np.arange(16)]
    assert len(np.unique(np.round(own, 4))) > 8  # lam differs per image


def test_random_choice_picks_per_image_with_probabilities():
    images, labels, values = _constant_batch(32)
    data = {"images": t(images), "labels": t(labels)}

    def kinds(probabilities, seed=0):
        out = A.RandomChoice([A.CutMix(), A.MixUp()], probabilities)(data, seed=seed)
        x, y = np_(out["images"]), np_(out["labels"])
        np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), y @ values, atol=1e-2)  # labels follow pixels
        flat = np.array([len(np.unique(img[..., 0])) == 1 for img in x])  # mixup/unmixed: one value
        return flat, y

    flat, _ = kinds([1.0, 0.0])
    assert (~flat).sum() >= 24  # CutMix everywhere: patches
    flat, _ = kinds([0.0, 1.0])
    assert flat.all()
    flat, _ = kinds([0.5, 0.5])
    assert 4 <= flat.sum() <= 28
    _, y = kinds([0.0, 0.0])
    np.testing.assert_array_equal(y, labels)


def test_label_smoothing_and_integer_labels():
    np.testing.assert_allclose(np_(A.smooth_labels(t([[0.0, 1.0], [0.3, 0.7]]), 0.1)),
                               [[0.05, 0.95], [0.3 * 0.9 + 0.05, 0.7 * 0.9 + 0.05]], atol=1e-6)
    out = A.LabelSmoothing(0.2)({"images": t(np.zeros((1, 2, 2, 3))), "labels": t([[1.0, 0.0, 0.0, 0.0]])})
    np.testing.assert_allclose(np_(out["labels"]), [[0.85, 0.05, 0.05, 0.05]], atol=1e-6)
    images, _, _ = _constant_batch(4)
    out = A.MixUp(num_classes=4)({"images": t(images), "labels": t([0, 1, 2, 3], "int32")}, seed=0)
    assert tuple(out["labels"].shape) == (4, 4)


def test_mixing_without_labels_is_a_kzoo_error():
    with pytest.raises(KzooError, match="labels"):
        A.CutMix()(t(np.zeros((2, 4, 4, 3))), seed=0)
    with pytest.raises(KzooError, match="probabilities"):
        A.RandomChoice([A.CutMix(), A.MixUp()], [0.8, 0.8])
