"""A checkpoint's accuracy under glass blur made three ways, on the same test images.

1. The published CIFAR-10-C code's arithmetic in numpy, one image at a time (blur with scipy's
   `gaussian_filter`, which `skimage.filters.gaussian` calls; truncate to uint8; the raster loop
   with `randint(-delta, delta)`, whose upper bound is exclusive, and its swap statement verbatim,
   which on numpy views copies instead of swapping; blur again).
2. The same loop with a real swap: what kzoo's glass blur imitated until session 24.
3. kzoo's batched `corrupt(x, "glass_blur", s)`.
Every image is stored as 8 bits before the model sees it, as the published files are.

    KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/glass_blur_fidelity.py \
        --checkpoint runs/augmix-cn-60/last.keras --data ../shared/data/cifar10-jpg.tar.gz --n 1000
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from scipy.ndimage import gaussian_filter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# CIFAR-10-C's (sigma, delta, iterations) per severity, as in kzoo.augment.corruptions.PARAMS.
CIFAR = [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)]


def reference_glass_blur(image: np.ndarray, severity: int, rng: np.random.RandomState,
                         swap: bool = False) -> np.ndarray:
    """One HxWx3 image in [0, 255] -> float [0, 255], the reference's steps in its order; `swap`
    exchanges the two pixels for real (`.copy()` of the right-hand side)."""
    sigma, delta, iterations = CIFAR[severity - 1]
    height, width = image.shape[:2]

    def blur(x):
        return gaussian_filter(x, sigma=(sigma, sigma, 0), mode="nearest", truncate=4.0)

    x = np.uint8(blur(image / 255.0) * 255)
    for _ in range(iterations):
        for h in range(height - delta, delta, -1):
            for w in range(width - delta, delta, -1):
                dx, dy = rng.randint(-delta, delta, size=(2,))
                hp, wp = h + dy, w + dx
                if swap:
                    x[h, w], x[hp, wp] = x[hp, wp].copy(), x[h, w].copy()
                else:  # the published statement: x[hp, wp] is rewritten with its own value
                    x[h, w], x[hp, wp] = x[hp, wp], x[h, w]
    return np.clip(blur(x / 255.0), 0, 1) * 255


def main(argv: list[str] | None = None) -> None:
    from kzoo import data as kdata
    from kzoo.augment.corruptions import corrupt
    from kzoo.training.api import load_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    model = load_checkpoint(args.checkpoint)
    bundle = kdata.load(args.data, "test", image_size=tuple(model.input_shape[1:3]), batch_size=250, limit=args.n)
    batches = [(np.asarray(x, "float32"), np.asarray(y).argmax(-1)) for x, y in bundle.dataset]

    def accuracy(make) -> float:
        hits = total = 0
        for index, (x, y) in enumerate(batches):
            corrupted = np.floor(np.clip(make(x, index), 0, 255))  # stored as 8 bits, as the files are
            hits += int(np.sum(np.asarray(model.predict_on_batch(corrupted)).argmax(-1) == y))
            total += len(y)
        return hits / total

    print(f"{args.checkpoint}, {sum(len(y) for _, y in batches)} test images of {args.data}")
    print(f"clean: {accuracy(lambda x, i: x):.2%}\n")
    print("| severity | published loop | loop with a real swap | kzoo batched | kzoo - published |\n"
          "| ---: | ---: | ---: | ---: | ---: |")
    for severity in range(1, 6):
        def reference(x, index, severity=severity, swap=False):
            rng = np.random.RandomState((args.seed * 1000 + index) * 10 + severity)
            return np.stack([reference_glass_blur(image, severity, rng, swap) for image in x])

        def batched(x, index, severity=severity):
            return np.asarray(corrupt(x, "glass_blur", severity, seed=(args.seed << 32) | index))

        ref, swapped, ours = accuracy(reference), accuracy(lambda x, i: reference(x, i, swap=True)), accuracy(batched)
        print(f"| {severity} | {ref:.2%} | {swapped:.2%} | {ours:.2%} | {100 * (ours - ref):+.2f} |", flush=True)


if __name__ == "__main__":
    main()
