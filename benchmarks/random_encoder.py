"""The floor of the linear protocol (docs/selfsup.md): a registered model's backbone with random
weights, its whitening stem (if any) fitted as `kzoo pretrain` fits it (the first 5,000 of 10,000
plain training images), saved as an encoder.keras for `kzoo probe`.

    python benchmarks/random_encoder.py --model airbench94_w512 --data ../shared/data/cifar10-jpg.tar.gz \\
        --out runs/simclr-w512-floor
    kzoo probe --encoder runs/simclr-w512-floor/encoder.keras --data ../shared/data/cifar10-jpg.tar.gz
"""

from __future__ import annotations

import argparse
import os

import keras

from kzoo import data as kdata
from kzoo.registry import create_model, get_entry
from kzoo.training.fitting import fit_whitening_stem


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="registered model name")
    p.add_argument("--data", required=True, help="data source (its train split fits the stem)")
    p.add_argument("--out", required=True, help="folder for encoder.keras")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    size = get_entry(args.model).input_shape[:2]
    plain = kdata.load(args.data, "train", batch_size=256, limit=10000, shuffle=False, image_size=size, seed=args.seed)
    backbone = create_model(args.model, num_classes=0, input_shape=(*size, 3))
    fit_whitening_stem(backbone, plain.dataset)
    os.makedirs(args.out, exist_ok=True)
    backbone.save(os.path.join(args.out, "encoder.keras"))


if __name__ == "__main__":
    main()
