"""Corruption throughput of the `imagecorruptions` package: the peer of benchmarks/corruptions.py.

`imagecorruptions` (bethgelab, PyPI 1.1.2, Dec 2020) is the usual NumPy/OpenCV/scikit-image
implementation of the Hendrycks & Dietterich (2019) common corruptions: one image at a time,
`corrupt(image, corruption_name=name, severity=s)` on an HxWx3 uint8 array. This script times it
on the CIFAR-10 test images so that kzoo's batched `kzoo.augment.corruptions.corrupt`
(benchmarks/corruptions.py) can be compared on exactly the same images in the same run.
It needs no kzoo and no Keras, and runs under its own venv.

The venv (the released package does not run on current libraries; its code is not patched):
    python3.11 -m venv /tmp/corrupt-peer
    /tmp/corrupt-peer/bin/pip install imagecorruptions==1.1.2 scikit-image==0.19.3 "numpy<2" \
        "opencv-python<4.12" "setuptools<82"
scikit-image 0.19.3 has no Python 3.11 wheel, so this builds it from its sdist (about 10 min on
2 shared cores; pip caches the wheel). Python 3.10 takes wheels only and resolves the rest itself:
    /root/.pyenv/versions/3.10.13/bin/python -m venv /tmp/corrupt-peer310
    /tmp/corrupt-peer310/bin/pip install imagecorruptions==1.1.2 scikit-image==0.19.3 "numpy<2"
Checked (pip freeze, Dec 2026): imagecorruptions 1.1.2, scikit-image 0.19.3, numpy 1.26.4,
opencv-python 4.11.0.86, setuptools 65.5.0, PyWavelets 1.9.0 / 1.8.0, then scipy 1.17.1,
pillow 13.0.0 (3.11) or scipy 1.15.3, pillow 12.3.0 (3.10); all 19 corruptions x 5 severities
run on 32x32 uint8 images.
Why the pins:
- scikit-image 0.19.3 is the last release whose `skimage.filters.gaussian` accepts the
  `multichannel=True` that gaussian_blur, glass_blur and spatter pass (0.20 removed it: TypeError;
  0.19 only warns).
- numpy < 2 (1.26.4): fog uses `np.float_`, removed in NumPy 2.0 (AttributeError).
- opencv-python < 4.12: 4.12 and later require numpy >= 2.
- setuptools < 82: the package imports `pkg_resources` at load, which setuptools 82 removed; the
  venv's own 65.5.0 is fine.
- scipy: current releases still have `scipy.ndimage.interpolation` (DeprecationWarning only).

Note: the package always uses the ImageNet-C parameters (e.g. gaussian_noise sigma 0.08-0.38,
glass_blur up to 3 iterations of +-4 px swaps), also at 32x32, whereas kzoo uses the CIFAR-10-C
ones at this size; and frost crops its full-size frost pictures without shrinking them.
At 32x32, spatter severity 1 turns about 2% of CIFAR-10 test images all black (an empty liquid
layer gives 0/0 = NaN, cast to uint8 0; RuntimeWarning "invalid value encountered in divide").

Run (prints a markdown table; the CPU may be shared, the report gives the load average):
    /tmp/corrupt-peer/bin/python benchmarks/corruptions_peer.py                 # 10,000 x 15 x 5
    /tmp/corrupt-peer/bin/python benchmarks/corruptions_peer.py --n 50 --severities 3
    /tmp/corrupt-peer/bin/python benchmarks/corruptions_peer.py --n 0 --save-images /tmp/cifar10-test.npy
    /tmp/corrupt-peer/bin/python benchmarks/corruptions_peer.py --images /tmp/cifar10-test.npy --json peer.json

Images: the CIFAR-10 test split of `../shared/data/cifar10-jpg.tar.gz` (relative to the repo),
`cifar10/test/<class>/NNNN.jpg`, decoded with Pillow to uint8 RGB, ordered by class name then
file name; the first N of that order (or of `--images FILE.npy`, an (M, H, W, 3) uint8 array).
`--save-images PATH` writes the decoded (M, 32, 32, 3) uint8 test images (all 10,000, whatever
N is) so that benchmarks/corruptions.py can load exactly the same pixels.

Method: for each corruption and severity, `imagecorruptions.corrupt` is called on each image in
turn (after one untimed warm-up call, which loads e.g. frost's pictures); numpy's global RNG is
seeded once per (corruption, severity). The table gives images/s per corruption as the median
over the chosen severities (and the min-max), the seconds per corruption summed over severities,
and the total seconds of corrupting (decoding excluded).
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import platform
import statistics
import sys
import tarfile
import time
import warnings

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ARCHIVE = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))
COMMON = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
          "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
          "jpeg_compression")
HELD_OUT = ("speckle_noise", "gaussian_blur", "spatter", "saturate")


def load_archive(path: str, split: str = "test") -> np.ndarray:
    """All images of `<root>/<split>/<class>/<file>` in a tar archive, as (M, H, W, 3) uint8."""
    members = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[1] == split:
                members[(parts[2], parts[3])] = tar.extractfile(member).read()
    if not members:
        raise SystemExit(f"no {split}/<class>/<image> files in {path}")
    images = [np.asarray(Image.open(io.BytesIO(members[key])).convert("RGB")) for key in sorted(members)]
    return np.stack(images).astype(np.uint8)


def parse_list(text: str, allowed: tuple, what: str) -> list:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        raise SystemExit(f"unknown {what}: {', '.join(map(str, bad))} (choose from {', '.join(map(str, allowed))})")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="images per (corruption, severity); 0 corrupts none")
    parser.add_argument("--data", default=DEFAULT_ARCHIVE, help="CIFAR-10 JPEG archive (test split is used)")
    parser.add_argument("--images", default="", help="an (M, H, W, 3) uint8 .npy file to use instead of --data")
    parser.add_argument("--save-images", default="", help="write the decoded test images to this .npy")
    parser.add_argument("--corruptions", default="common",
                        help="comma-separated names, or 'common' (the 15), 'held-out' (the 4), 'all' (19)")
    parser.add_argument("--severities", default="1,2,3,4,5", help="comma-separated, in 1-5")
    parser.add_argument("--seed", type=int, default=0, help="numpy global seed (added to an index per run)")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    groups = {"common": COMMON, "held-out": HELD_OUT, "all": COMMON + HELD_OUT}
    names = list(groups[args.corruptions]) if args.corruptions in groups else \
        parse_list(args.corruptions, COMMON + HELD_OUT, "corruption")
    severities = [int(s) for s in parse_list(args.severities, ("1", "2", "3", "4", "5"), "severity")]

    start = time.perf_counter()
    source = args.images or args.data
    images = np.load(args.images) if args.images else load_archive(args.data)
    load_s = time.perf_counter() - start
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise SystemExit(f"expected (M, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    if args.save_images:
        np.save(args.save_images, images)
        print(f"saved {images.shape} uint8 to {args.save_images}", file=sys.stderr)
    if args.n > len(images):
        raise SystemExit(f"--n {args.n} but only {len(images)} images in {source}")
    images = images[:args.n]
    if args.n == 0:
        return

    # Imported here so that --save-images works without the package; its import warnings
    # (scipy's deprecated namespace) are listed with the rest.
    caught: dict[str, int] = {}

    def record(message, category, filename, lineno, file=None, line=None):
        key = f"{category.__name__}: {str(message).splitlines()[0][:160]} ({os.path.basename(filename)}:{lineno})"
        caught[key] = caught.get(key, 0) + 1

    warnings.showwarning = record
    warnings.simplefilter("default")
    import imagecorruptions
    from imagecorruptions import corrupt

    versions = {}
    for module in ("imagecorruptions", "numpy", "scipy", "skimage", "cv2", "PIL"):
        try:
            mod = __import__(module)
            versions[module] = getattr(mod, "__version__", "?")
        except ImportError:
            versions[module] = "missing"
    versions["imagecorruptions"] = _dist_version("imagecorruptions") or versions["imagecorruptions"]
    del imagecorruptions

    load_before = os.getloadavg()
    rows, failures, total_s = [], [], 0.0
    for index, name in enumerate(names):
        rates, seconds = [], 0.0
        for severity in severities:
            np.random.seed(args.seed + 10 * index + severity)
            try:
                corrupt(images[0], corruption_name=name, severity=severity)  # warm-up, untimed
                begin = time.perf_counter()
                for image in images:
                    corrupt(image, corruption_name=name, severity=severity)
                elapsed = time.perf_counter() - begin
            except Exception as error:  # noqa: BLE001 - reported, not fatal: the package is old
                failures.append({"corruption": name, "severity": severity,
                                 "error": f"{type(error).__name__}: {error}"})
                continue
            rates.append(len(images) / elapsed)
            seconds += elapsed
        total_s += seconds
        row = {"corruption": name, "images_per_s": statistics.median(rates) if rates else None,
               "min": min(rates) if rates else None, "max": max(rates) if rates else None,
               "seconds": seconds, "severities_ok": len(rates)}
        rows.append(row)
        shown = f"{row['images_per_s']:,.0f} images/s" if rates else "failed"
        print(f"  {name}: {shown}", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    print(f"# imagecorruptions throughput ({images.shape[1]}x{images.shape[2]}, one image per call)\n")
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.")
    print("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
    print(f"Command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`")
    print(f"{len(images):,} images from {source} (read in {load_s:.1f} s, not counted), "
          f"severities {','.join(map(str, severities))}.\n")
    print("| corruption | images/s (median) | min-max | seconds |")
    print("|---|---:|---:|---:|")
    for row in rows:
        if row["images_per_s"] is None:
            print(f"| {row['corruption']} | failed | | |")
        else:
            print(f"| {row['corruption']} | {row['images_per_s']:,.0f} | {row['min']:,.0f}-{row['max']:,.0f} "
                  f"| {row['seconds']:.2f} |")
    done = sum(r["severities_ok"] for r in rows) * len(images)
    print(f"| **total** | {done / total_s if total_s else 0:,.0f} | | {total_s:.2f} |\n")
    print(f"Total: {total_s:.1f} s for {done:,} corrupted images "
          f"({len(names)} corruptions x {len(severities)} severities x {len(images):,} images).")
    if failures:
        print("\nFailures:")
        for failure in failures:
            print(f"- {failure['corruption']} severity {failure['severity']}: {failure['error']}")
    if caught:
        print("\nWarnings (each shown once per place):")
        for key in caught:
            print(f"- {key}")

    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"implementation": "imagecorruptions", "versions": versions, "python": platform.python_version(),
                       "n": len(images), "source": source, "severities": severities, "rows": rows,
                       "total_seconds": total_s, "images_corrupted": done, "failures": failures,
                       "warnings": caught, "load_average": [load_before[0], load_after[0]],
                       "date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node()},
                      handle, indent=2)


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
