"""Augmentation throughput: kzoo vs keras.layers.RandAugment, the full CIFAR-10 pipeline, 224x224,
and the cost of augmenting inside the training step.

Run (prints a markdown report; the CPU may be shared, the report says so with the load average):
    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/augment.py
    ... benchmarks/augment.py --quick          # fewer batches, one repeat: a smoke run

Method: every augmentation runs as `dataset.map(fn, num_parallel_calls=AUTOTUNE)` on batches
that are already decoded, batched and cached in memory, followed by `prefetch(AUTOTUNE)`; a
measurement iterates a fixed number of batches after a warm-up batch. kzoo and Keras alternate,
each measured `--repeats` times; the table gives the median images/s. Images are float32 in
[0, 255]; labels one-hot float32.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import kzoo.augment as A  # noqa: E402
from kzoo.augment import _rng  # noqa: E402

ARCHIVE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10-jpg.tar.gz")
AUTOTUNE = tf.data.AUTOTUNE


def load_cifar(archive: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """CIFAR-10 train split decoded once (kzoo.data when present, else tarfile + decode_jpeg)."""
    start = time.perf_counter()
    try:
        from kzoo.data import to_numpy

        images, labels, _ = to_numpy(archive, "train", (32, 32), limit=limit)
    except ImportError:
        import tarfile

        images, labels, names = [], [], {}
        with tarfile.open(archive) as tar:
            for member in tar:
                parts = member.name.split("/")
                if member.isfile() and len(parts) == 4 and parts[1] == "train":
                    label = names.setdefault(parts[2], len(names))
                    data = tar.extractfile(member).read()
                    images.append(tf.io.decode_jpeg(data, channels=3).numpy())
                    labels.append(label)
                    if limit and len(images) >= limit:
                        break
        images, labels = np.stack(images), np.array(labels)
    return images, labels, time.perf_counter() - start


def cached_batches(images: np.ndarray, labels: np.ndarray, batch: int, num_classes: int = 10):
    """Float32 (images, one-hot) batches, cached in memory and warmed up."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch, drop_remainder=True)
    ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, num_classes)), num_parallel_calls=AUTOTUNE)
    ds = ds.cache()
    for _ in ds:
        pass
    return ds


def images_per_second(ds, num_batches: int, batch: int) -> float:
    ds = ds.prefetch(AUTOTUNE)
    it = iter(ds)
    next(it)  # warm-up: tracing, thread pools
    start = time.perf_counter()
    for _ in range(num_batches):
        next(it)
    return num_batches * batch / (time.perf_counter() - start)


def over_batches(base, fn, num_batches: int):
    """`base` (cached batches) repeated for `num_batches` + 1, mapped through `fn`."""
    return base.repeat().take(num_batches + 1).map(fn, num_parallel_calls=AUTOTUNE)


def kzoo_map(layer):
    def fn(x, y):
        out = layer({"images": x, "labels": y})
        return out["images"], out["labels"]

    return fn


def keras_map(layer):
    return lambda x, y: (layer(x), y)


def compute_all_select(num_ops: int = 2, magnitude: float = 9.0):
    """RandAugment by running every op on every image and keeping one per image (one-hot select):
    the alternative to kzoo's grouped slots, measured for the design note."""
    ops = A.RANDAUGMENT_OPS
    F = A.base.KERAS_OPS

    def fn(x, y):
        key = _rng.make_key(F, 0)
        batch = x.shape[0]
        for i in range(num_ops):
            k = _rng.fold_in(F, key, i)
            choice = F.one_hot(_rng.randint(F, k, 1, (batch,), len(ops)), len(ops))
            level = F.full((batch,), magnitude / 10.0)
            sign = F.where(_rng.bernoulli(F, k, 3, (batch,), 0.5), 1.0, -1.0)
            out = 0.0
            for j, op in enumerate(ops):
                out = out + F.reshape(choice[:, j], (-1, 1, 1, 1)) * A.apply_op(x, op, level, sign)
            x = out
        return x, y

    return fn


def measure_alternating(cases: dict, repeats: int) -> dict:
    """Runs the cases in turn, `repeats` rounds; returns name -> list of images/s."""
    results = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            results[name].append(run())
    return results


def jitted_augmentation_ms(aug, x, y, repeats: int) -> float:
    """The augmentation alone, compiled as it is inside a compiled train step (XLA)."""
    if keras.backend.backend() == "jax":
        import jax

        fn = jax.jit(lambda x, y, s: aug({"images": x, "labels": y}, seed=s)["images"])
        seed = np.array([0, 1], np.uint32)
        run = lambda: fn(x, y, seed).block_until_ready()  # noqa: E731
    else:
        fn = tf.function(lambda x, y, s: aug({"images": x, "labels": y}, seed=s)["images"], jit_compile=True)
        seed = tf.constant([0, 1])
        run = lambda: fn(x, y, seed).numpy()  # noqa: E731
    run()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(10):
            run()
        samples.append((time.perf_counter() - start) / 10 * 1000)
    return statistics.median(samples)


def device_cost(images, labels, batch: int, steps: int, repeats: int, model_name: str):
    """Train-step time with and without the strong preset inside the step, alternating."""
    from kzoo import create_model

    x = images[: batch * steps].astype("float32")
    y = np.eye(10, dtype="float32")[labels[: batch * steps]]
    aug = A.get_preset("strong", num_classes=10, image_size=(32, 32), seed=0)
    trainers = {}
    for placement in ("none", "device"):
        model = create_model(model_name, num_classes=10, input_shape=(32, 32, 3))
        trainer = model if placement == "none" else A.DeviceAugmentation(model, aug)
        trainer.compile(optimizer="adamw", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
        trainer.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)  # compile the step
        trainers[placement] = trainer
    samples = {"none": [], "device": []}
    for _ in range(repeats):
        for placement, trainer in trainers.items():
            start = time.perf_counter()
            trainer.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
            samples[placement].append((time.perf_counter() - start) / steps * 1000)
    alone = jitted_augmentation_ms(aug, x[:batch], y[:batch], repeats)
    return model_name, statistics.median(samples["none"]), statistics.median(samples["device"]), alone


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=ARCHIVE)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="few batches, one repeat")
    parser.add_argument("--skip-device", action="store_true")
    parser.add_argument("--device-only", action="store_true", help="only the train-step placement cost")
    parser.add_argument("--device-model", default="vit_cifar_tiny")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else max(3, args.repeats)
    scale = 0.25 if args.quick else 1.0

    def n(batches: int) -> int:
        return max(2, int(batches * scale))

    lines = []
    load_before = os.getloadavg()
    images, labels, decode_s = load_cifar(args.archive, 5000 if args.quick else None)
    cifar = f"CIFAR-10 (JPEG copy) train, {len(images)} images"
    if args.device_only:
        print(_device_table([device_cost(images, labels, 128, n(12), repeats, args.device_model)], os.getloadavg()))
        return

    # -- 1. RandAugment(n=2, m=9), 32x32, batch 128: kzoo vs Keras, alternating.
    base = cached_batches(images[:128 * 16], labels[:128 * 16], 128)
    kz = A.RandAugment(num_ops=2, magnitude=9, seed=0)
    kz_all = compute_all_select()
    kr = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=0)
    ra = measure_alternating(
        {
            "kzoo.augment.RandAugment(num_ops=2, magnitude=9)": lambda: images_per_second(
                over_batches(base, kzoo_map(kz), n(200)), n(200), 128),
            "keras.layers.RandAugment(num_ops=2, factor=0.9)": lambda: images_per_second(
                over_batches(base, keras_map(kr), n(24)), n(24), 128),
            "RandAugment as compute-all-ops + one-hot select (design alternative)": lambda: images_per_second(
                over_batches(base, compute_all_select(), n(40)), n(40), 128),
        },
        repeats,
    )
    del kz_all

    # -- 2. Full pipeline: archive decoded once and cached, then shuffle, batch, pad-crop + flip
    #       + RandAugment + CutMix/MixUp (the `strong` preset), seeded per batch.
    pipe = {}
    for preset in ("none", "basic", "strong"):
        aug = A.get_preset(preset, num_classes=10, image_size=(32, 32), seed=0)
        ds = tf.data.Dataset.from_tensor_slices((images, labels)).cache().shuffle(10_000, seed=0)
        ds = ds.batch(128, drop_remainder=True)
        ds = ds.map(lambda x, y: (tf.cast(x, tf.float32), tf.one_hot(y, 10)), num_parallel_calls=AUTOTUNE)
        ds = A.map_dataset(ds, aug, seed=0).repeat()
        batches = len(images) // 128
        for _ in ds.take(batches):  # first epoch fills the cache
            pass
        pipe[preset] = [images_per_second(ds, n(batches), 128) for _ in range(repeats)]

    # -- 3. 224x224, batch 64.
    big = (tf.image.resize(images[: 64 * 4].astype("float32"), (224, 224)).numpy())
    base224 = cached_batches(big, labels[: 64 * 4], 64)
    del big
    kr224 = keras.layers.RandAugment(value_range=(0, 255), num_ops=2, factor=0.9, seed=0)
    strong224 = A.get_preset("strong", num_classes=10, image_size=(224, 224), seed=0)
    rrc = A.Compose([A.RandomResizedCrop(), A.RandomFlip(), A.RandAugment(num_ops=2, magnitude=9)], seed=0)
    big_results = measure_alternating(
        {
            "kzoo RandAugment(2, 9)": lambda: images_per_second(
                over_batches(base224, kzoo_map(A.RandAugment(num_ops=2, magnitude=9, seed=0)), n(24)), n(24), 64),
            "keras RandAugment(2, 0.9)": lambda: images_per_second(
                over_batches(base224, keras_map(kr224), n(6)), n(6), 64),
            "kzoo strong preset": lambda: images_per_second(over_batches(base224, kzoo_map(strong224), n(16)), n(16), 64),
            "kzoo RandomResizedCrop + flip + RandAugment(2, 9)": lambda: images_per_second(
                over_batches(base224, kzoo_map(rrc), n(16)), n(16), 64),
        },
        repeats,
    )

    # -- 4. Device placement: augmentation inside the train step.
    device_rows = [] if args.skip_device else [device_cost(images, labels, 128, n(12), repeats, args.device_model)]
    load_after = os.getloadavg()

    med = statistics.median
    speedup = med(ra["kzoo.augment.RandAugment(num_ops=2, magnitude=9)"]) / med(
        ra["keras.layers.RandAugment(num_ops=2, factor=0.9)"])
    lines += [
        "### Augmentation throughput (`benchmarks/augment.py`)",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, {platform.system()} "
        f"{platform.release()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        "(the cores were shared with other jobs: absolute numbers are pessimistic, ratios measured "
        "in the same run are the comparable figures)",
        f"- software: Python {platform.python_version()}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
        f"backend {keras.backend.backend()}",
        f"- command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`",
        f"- data: {cifar}, decoded once in {decode_s:.1f} s; float32 pixels in [0, 255], one-hot float32 labels",
        f"- method: tf.data map (AUTOTUNE) over cached batches, prefetch; median of {repeats} repeat(s), "
        "kzoo and Keras alternating",
        "",
        "| case | batch | images/s (median) | runs |",
        "|---|---|---|---|",
    ]
    for name, values in ra.items():
        lines.append(f"| 32x32 {name} | 128 | {med(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |")
    for preset, values in pipe.items():
        label = {"none": "full pipeline, no augmentation (ceiling)", "basic": "full pipeline, `basic` (pad-crop + flip)",
                 "strong": "full pipeline, `strong` (pad-crop + flip + RandAugment(2, 9) + CutMix/MixUp)"}[preset]
        lines.append(f"| 32x32 {label} | 128 | {med(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |")
    for name, values in big_results.items():
        lines.append(f"| 224x224 {name} | 64 | {med(values):,.0f} | {', '.join(f'{v:,.0f}' for v in values)} |")
    lines += ["", f"kzoo RandAugment vs keras.layers.RandAugment (32x32, same run): **{speedup:.1f}x**."]
    speedup224 = med(big_results["kzoo RandAugment(2, 9)"]) / med(big_results["keras RandAugment(2, 0.9)"])
    lines += [f"At 224x224: **{speedup224:.1f}x**."]
    if device_rows:
        lines += ["", _device_table(device_rows, load_after)]
    print("\n".join(lines))


def _device_table(rows, load) -> str:
    lines = [
        "Device placement (`kzoo.augment.DeviceAugmentation`: the `strong` preset inside the compiled "
        f"train step; batch 128, 32x32, backend {keras.backend.backend()}, CPU, load average {load[0]:.1f}):",
        "",
        "| model | step, no augmentation (ms) | step, augmentation in the step (ms) | share of step | "
        "augmentation alone, compiled (ms) |",
        "|---|---|---|---|---|",
    ]
    for name, plain, device, alone in rows:
        lines.append(f"| {name} | {plain:.0f} | {device:.0f} | {(device - plain) / device:.0%} | {alone:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
