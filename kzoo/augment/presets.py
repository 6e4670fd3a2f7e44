"""Named augmentation recipes used by training (`--augment PRESET`)."""

from __future__ import annotations

from typing import Callable

from kzoo.errors import KzooError

PRESETS = ("none", "basic", "signs", "vit_example", "strong", "cutmix", "crop", "flip", "flip_translate", "augmix",
           "randaugment", "simclr")


def get_preset(
    name: str,
    *,
    num_classes: int,
    image_size: tuple[int, int],
    seed: int | None = None,
) -> Callable[[dict], dict] | None:
    """The augmentation for preset `name`, a layer mapping `{"images", "labels"}` batches, or None.

    - `none`: no augmentation (returns None).
    - `basic`: pad 4 (zeros, scaled with the image: `max(1, round(4 * H / 32))`) and crop back,
      horizontal flip.
    - `signs`: for data where a mirror image is another class (traffic signs: "keep left" vs
      "keep right", digits, text): pad-crop without flip, rotation up to about 10 degrees, zoom
      0.1, brightness and contrast jitter 0.3 (GTSRB's lighting varies far more than its pose).
    - `vit_example`: the Keras ViT example's set: horizontal flip, rotation factor 0.02, zoom
      height/width factor 0.2 (its resize is the data pipeline's and its normalisation is inside
      every kzoo model).
    - `strong`: pad-crop + flip + RandAugment(n=2, m=9) + per image either CutMix (alpha 1.0)
      or MixUp (alpha 0.8) with probability 1/2 each (timm's DeiT recipe). Labels come out
      soft; label smoothing belongs to the loss.
    - `cutmix`: pad-crop + flip, then CutMix (alpha 1.0) on every image, no other mixing: the
      CNN-vs-Transformer recipe (examples/cnn_vs_vit.py). Boxes and mixing weights are drawn
      per image, not once per batch; labels come out soft.
    - `crop` and `flip`: `basic`'s two halves alone (pad-crop; horizontal flip), for studies that
      vary the augmentation one transform at a time (`kzoo sweep --vary augment=none,crop,flip`).
    - `flip_translate`: airbench's: horizontal flip and a translation of up to 2 pixels (reflected
      edges, scaled with the image: `max(1, round(2 * H / 32))`).
    - `augmix`: pad-crop + flip, then AugMix (severity 3, width 3, depth 1-3, alpha 1): the
      paper's CIFAR data side without its Jensen-Shannon loss (that is `--augmix-jsd`, which
      makes its own AugMix views and wants a plain preset such as `basic`); labels unchanged.
    - `randaugment`: pad-crop + flip + RandAugment(n=2, m=9), no mixing: `strong` without
      CutMix/MixUp, the RandAugment row of a robustness study; labels unchanged.
    - `simclr`: SimCLR's two views (`kzoo.augment.views.simclr_views`): the batch comes out twice
      as large, [view 1; view 2] (rows B + i: image i's second view), labels duplicated; per view
      resized crop, flip, colour jitter (p 0.8), grayscale (p 0.2), and above 32x32 Gaussian blur.
      For contrastive pretraining, not for a classifier's `--augment`.

    `num_classes` is part of the signature for label-aware presets; the labels themselves must
    be one-hot (B, num_classes). `seed` seeds the layers' generators; a per-batch `seed=` on the
    call (as `kzoo.data.load` and `map_dataset` pass) overrides it.

    The result runs in a `tf.data` map (TF backend, and the JAX backend via the TF op switch in
    `kzoo.augment._backend`) and inside a training step (see `kzoo.augment.DeviceAugmentation`).

    Example:
        >>> aug = get_preset("basic", num_classes=10, image_size=(32, 32), seed=0)
        >>> aug({"images": keras.ops.zeros((2, 32, 32, 3)), "labels": keras.ops.eye(10)[:2]})["images"].shape
        (2, 32, 32, 3)
    """
    from kzoo.augment.base import Compose
    from kzoo.augment.geometric import PadCrop, RandomAffine, RandomFlip

    if name not in PRESETS:
        raise KzooError(f"unknown augmentation preset {name!r}; valid: {', '.join(PRESETS)}")
    if name == "none":
        return None
    height = int(image_size[0])
    padding = max(1, round(4 * height / 32))
    if name == "basic":
        # The flip rides in the crop's gather (PadCrop(flip=True)): same result, one pass.
        return Compose([PadCrop(padding, flip=True)], seed=seed, name="basic")
    if name == "crop":
        return Compose([PadCrop(padding, flip=False)], seed=seed, name="crop")
    if name == "flip":
        return Compose([RandomFlip("horizontal")], seed=seed, name="flip")
    if name == "simclr":
        from kzoo.augment.views import simclr_views

        return simclr_views(image_size, seed=seed)
    if name == "augmix":
        from kzoo.augment.augmix import AugMix

        return Compose([PadCrop(padding, flip=True), AugMix()], seed=seed, name="augmix")
    if name == "flip_translate":
        return Compose([PadCrop(max(1, round(2 * height / 32)), fill_mode="reflect", flip=True)], seed=seed,
                       name="flip_translate")
    if name == "signs":
        from kzoo.augment.color import ColorJitter

        return Compose(
            [PadCrop(padding, flip=False), RandomAffine(rotation=0.03, zoom_height=0.1, zoom_width=0.1),
             ColorJitter(brightness=0.3, contrast=0.3)],
            seed=seed,
            name="signs",
        )
    if name == "vit_example":
        return Compose(
            [RandomFlip("horizontal"), RandomAffine(rotation=0.02, zoom_height=0.2, zoom_width=0.2)],
            seed=seed,
            name="vit_example",
        )
    from kzoo.augment.mix import CutMix, MixUp, RandomChoice
    from kzoo.augment.randaugment import RandAugment

    if name == "cutmix":
        return Compose([PadCrop(padding, flip=True), CutMix(alpha=1.0)], seed=seed, name="cutmix")
    if name == "randaugment":
        return Compose([PadCrop(padding, flip=True), RandAugment(num_ops=2, magnitude=9)], seed=seed,
                       name="randaugment")

    return Compose(
        [
            PadCrop(padding, flip=True),
            RandAugment(num_ops=2, magnitude=9),
            RandomChoice([CutMix(alpha=1.0), MixUp(alpha=0.8)], probabilities=[0.5, 0.5]),
        ],
        seed=seed,
        name="strong",
    )
