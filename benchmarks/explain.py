"""Grad-CAM cost: heatmaps for a batch vs one forward+backward pass of the same batch.

For each model (default VGG16, ResNet-50, ViT-B/16 at 224x224, random weights) times
`kzoo.explain.grad_cam` on a batch of `--batch-size` images against a plain forward+backward
pass (gradient of the summed top logits w.r.t. the input, the same work without the graph walk
and the map arithmetic), and prints a markdown table of seconds per batch and images/s.

    KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/explain.py
    KERAS_BACKEND=jax .venv/bin/python benchmarks/explain.py --models vgg16 --batch-size 8 --repeats 2

Run it on an idle machine: the report prints the load average; rerun before quoting numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import ops  # noqa: E402

import kzoo  # noqa: E402
from kzoo.explain.cam import GradCAM, _value_and_grad  # noqa: E402

MODELS = {"vgg16": "vgg16", "resnet50": "resnet50", "vit_b16": "vit_base_patch16_224"}


def _forward_backward(model, images):
    x = ops.convert_to_tensor(images)

    def score(inputs):
        logits = model(inputs, training=False)
        logits = logits[0] if isinstance(logits, (list, tuple)) else logits
        return ops.sum(ops.max(logits, axis=-1)), None

    _, _, grad = _value_and_grad(score, x)
    return np.asarray(ops.convert_to_numpy(grad))


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
    print(f"# Grad-CAM benchmark\n\n{platform.node()} ({os.cpu_count()} CPUs), backend {keras.backend.backend()}, "
          f"keras {keras.__version__}, batch {args.batch_size} at {args.size}x{args.size}, "
          f"load average {os.getloadavg()[0]:.1f} at start, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| model | layer | forward+backward s/batch | Grad-CAM s/batch | ratio | Grad-CAM images/s |")
    print("|---|---|---|---|---|---|")
    for key in args.models.split(","):
        model = kzoo.create_model(MODELS[key.strip()], num_classes=1000, input_shape=(args.size, args.size, 3))
        cam = GradCAM(model)
        base = statistics.median(_time(lambda: _forward_backward(model, images), args.repeats))
        gc = statistics.median(_time(lambda: cam(images), args.repeats))
        print(f"| {key} | {cam.target.name} | {base:.2f} | {gc:.2f} | {gc / base:.2f} | {args.batch_size / gc:.1f} |",
              flush=True)
        keras.backend.clear_session()
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
