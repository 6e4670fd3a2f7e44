"""Corruption throughput: every Hendrycks & Dietterich corruption at severities 1-5 on N images,
under the current Keras backend (`kzoo.augment.corruptions.corrupt`, batched).

Run (prints a markdown report; the CPU may be shared, the report gives the load average):
    KERAS_BACKEND=jax TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/corruptions.py --n 1000
    KERAS_BACKEND=tensorflow ... benchmarks/corruptions.py --n 200 --corruptions all --json kzoo.json
    ... benchmarks/corruptions.py --images /tmp/cifar10-test.npy    # the peer's exact pixels

Images: the first N CIFAR-10 test images of `../shared/data/cifar10-jpg.tar.gz` in the order
benchmarks/corruptions_peer.py (imagecorruptions, one image per call) uses (class name, then
file name), or of `--images FILE.npy` (an (M, H, W, 3) uint8 array, e.g. the peer's
`--save-images`); `--random` uses uniform noise of `--size` pixels instead.

Method: N images as float32 in batches of `--batch-size` (the last may be smaller). Each
(corruption, severity) is called once on the first batch, untimed: that compiles it (`jax.jit`
inside `corrupt` under JAX, a `tf.function` here under TensorFlow); the compile time is
reported separately. Then all batches run, each with its own seed. The table gives images/s per
corruption as the median over the severities (and the min-max), the seconds summed over
severities, and the total over everything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np

from kzoo.augment.corruptions import CORRUPTIONS, HELD_OUT, corrupt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ARCHIVE = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))


def block(x) -> np.ndarray:
    """Waits for the result (JAX dispatches asynchronously) by bringing it to the host."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def make_fn(name: str, severity: int):
    """The callable that is timed: `corrupt` itself under JAX (it jits), a tf.function under TF."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(lambda x, seed: corrupt(x, name, severity, seed=seed))
    return lambda x, seed: corrupt(x, name, severity, seed=seed)


def load_images(args) -> np.ndarray:
    """(N, H, W, 3) float32 in [0, 255]: the peer's CIFAR-10 test order, a .npy file, or noise."""
    if args.random:
        return np.random.RandomState(0).uniform(0, 255, (args.n, args.size, args.size, 3)).astype("float32")
    if args.images:
        images = np.load(args.images)
    else:
        import io
        import tarfile

        from PIL import Image

        members = {}
        with tarfile.open(args.data, "r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 4 and parts[1] == "test":
                    members[(parts[2], parts[3])] = tar.extractfile(member).read()
        keys = sorted(members)[:args.n]
        images = np.stack([np.asarray(Image.open(io.BytesIO(members[k])).convert("RGB")) for k in keys])
    if len(images) < args.n:
        raise SystemExit(f"--n {args.n} but only {len(images)} images")
    return images[:args.n].astype("float32")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="images per (corruption, severity)")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--data", default=DEFAULT_ARCHIVE, help="CIFAR-10 JPEG archive (its test split)")
    parser.add_argument("--images", default="", help="an (M, H, W, 3) uint8 .npy to use instead of --data")
    parser.add_argument("--random", action="store_true", help="uniform noise images instead of CIFAR-10")
    parser.add_argument("--size", type=int, default=32, help="height and width of --random images")
    parser.add_argument("--corruptions", default="common",
                        help="comma-separated names, or 'common' (the 15), 'held-out' (the 4), 'all' (19)")
    parser.add_argument("--severities", default="1,2,3,4,5", help="comma-separated, in 1-5")
    parser.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    groups = {"common": CORRUPTIONS, "held-out": HELD_OUT, "all": CORRUPTIONS + HELD_OUT}
    names = list(groups.get(args.corruptions, [n.strip() for n in args.corruptions.split(",") if n.strip()]))
    severities = [int(v) for v in args.severities.split(",") if v.strip()]
    start = time.perf_counter()
    images = load_images(args)
    load_s = time.perf_counter() - start
    batches = [keras.ops.convert_to_tensor(images[i:i + args.batch_size]) for i in range(0, len(images), args.batch_size)]
    load_before = os.getloadavg()

    rows, total_s, total_compile = [], 0.0, 0.0
    for name in names:
        rates, seconds, compile_s = [], 0.0, 0.0
        for severity in severities:
            fn = make_fn(name, severity)
            begin = time.perf_counter()
            block(fn(batches[0], keras.ops.convert_to_tensor(0)))
            compile_s += time.perf_counter() - begin
            begin = time.perf_counter()
            for i, batch in enumerate(batches):
                block(fn(batch, keras.ops.convert_to_tensor(i + 1)))
            elapsed = time.perf_counter() - begin
            rates.append(len(images) / elapsed)
            seconds += elapsed
        rows.append({"corruption": name, "images_per_s": statistics.median(rates), "min": min(rates),
                     "max": max(rates), "seconds": seconds, "compile_seconds": compile_s})
        total_s += seconds
        total_compile += compile_s
        print(f"  {name}: {statistics.median(rates):,.0f} images/s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    size = f"{images.shape[1]}x{images.shape[2]}"
    print(f"# kzoo corruption throughput ({keras.backend.backend()}, {size}, batches of {args.batch_size})\n")
    print(f"{datetime.datetime.now():%Y-%m-%d %H:%M}, {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after.")
    source = "uniform noise" if args.random else (args.images or args.data)
    print(f"Command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`")
    print(f"{len(images):,} images from {source} (loaded in {load_s:.1f} s, not counted), "
          f"severities {','.join(map(str, severities))}.\n")
    print("| corruption | images/s (median) | min-max | seconds | first calls (compile) s |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['corruption']} | {row['images_per_s']:,.0f} | {row['min']:,.0f}-{row['max']:,.0f} "
              f"| {row['seconds']:.2f} | {row['compile_seconds']:.2f} |")
    done = len(rows) * len(severities) * len(images)
    print(f"| **total** | {done / total_s:,.0f} | | {total_s:.2f} | {total_compile:.2f} |\n")
    print(f"Total: {total_s:.1f} s for {done:,} corrupted images ({len(rows)} corruptions x {len(severities)} "
          f"severities x {len(images):,} images), plus {total_compile:.1f} s of first calls.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"backend": keras.backend.backend(), "images": len(images), "size": size,
                       "batch_size": args.batch_size, "severities": severities, "rows": rows,
                       "total_seconds": total_s, "compile_seconds": total_compile}, f, indent=1)


if __name__ == "__main__":
    main()
