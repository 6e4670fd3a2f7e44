"""Grad-CAM cost: heatmaps for a batch vs one forward+backward pass of the same batch.

For each model (default VGG16, ResNet-50, ViT-B/16 at 224x224, random weights, float32) times
`kzoo.explain.GradCAM` on a batch of `--batch-size` images against a forward pass and a plain
forward+backward pass (gradient of the summed top logits w.r.t. the input: the whole backward
through every layer, without weight gradients), and prints a markdown table of seconds per batch
(median of `--repeats`, after one warm-up call that includes any compilation) and images/s.
Under JAX the reference passes are jitted like Grad-CAM's own pass (weights as arguments).

    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/explain.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/explain.py --models vgg16 --batch-size 8 --repeats 2

Run it on an idle machine: the report prints the load average; rerun before quoting numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import kzoo  # noqa: E402
from kzoo.explain.cam import GradCAM, _value_and_grad  # noqa: E402

MODELS = {"vgg16": "vgg16", "resnet50": "resnet50", "vit_b16": "vit_base_patch16_224"}


def _logits(outputs):
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def _reference_passes(model):
    """(forward, forward+backward) callables on a numpy batch, each returning numpy."""
    if keras.backend.backend() == "jax":
        import jax

        def score(trainable, non_trainable, x):
            logits, _ = model.stateless_call(trainable, non_trainable, x, training=False)
            return ops.sum(ops.max(_logits(logits), axis=-1))

        forward = jax.jit(lambda t, n, x: _logits(model.stateless_call(t, n, x, training=False)[0]))
        backward = jax.jit(jax.grad(score, argnums=2))
        weights = lambda: ([v.value for v in model.trainable_variables],  # noqa: E731
                           [v.value for v in model.non_trainable_variables])
        return (lambda x: np.asarray(forward(*weights(), x)), lambda x: np.asarray(backward(*weights(), x)))

    def forward(images):
        return np.asarray(ops.convert_to_numpy(_logits(model(ops.convert_to_tensor(images), training=False))))

    def forward_backward(images):
        def score(inputs):
            return ops.sum(ops.max(_logits(model(inputs, training=False)), axis=-1)), None

        _, _, grad = _value_and_grad(score, ops.convert_to_tensor(images))
        return np.asarray(ops.convert_to_numpy(grad))

    return forward, forward_backward


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _time(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated: {', '.join(MODELS)}")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    images = np.random.default_rng(0).uniform(0, 255, (args.batch_size, args.size, args.size, 3)).astype("float32")
    command = " ".join(["KERAS_BACKEND=" + keras.backend.backend(), ".venv/bin/python", *sys.argv])
    print(f"# Grad-CAM benchmark\n\n`{command}`\n\n{platform.node()} ({os.cpu_count()} CPUs, "
          f"{_cpu_name()}), backend {keras.backend.backend()}, keras {keras.__version__}, "
          f"float32, batch {args.batch_size} at {args.size}x{args.size}, median of {args.repeats} after 1 warm-up, "
          f"load average {os.getloadavg()[0]:.1f} at start, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| model | layer | forward s | forward+backward s | Grad-CAM s | Grad-CAM / fwd+bwd | Grad-CAM images/s |")
    print("|---|---|---|---|---|---|---|")
    for key in args.models.split(","):
        model = kzoo.create_model(MODELS[key.strip()], num_classes=1000, input_shape=(args.size, args.size, 3))
        cam = GradCAM(model)
        forward, forward_backward = _reference_passes(model)
        fwd = statistics.median(_time(lambda: forward(images), args.repeats))
        base = statistics.median(_time(lambda: forward_backward(images), args.repeats))
        gc = statistics.median(_time(lambda: cam(images), args.repeats))
        print(f"| {key} | {cam.target.name} | {fwd:.2f} | {base:.2f} | {gc:.2f} | {gc / base:.2f} | "
              f"{args.batch_size / gc:.1f} |", flush=True)
        del model, cam, forward, forward_backward
        keras.backend.clear_session()
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
