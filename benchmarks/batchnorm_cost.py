"""What one BatchNormalization costs under TensorFlow on a CPU, beside the convolution it follows
(forward + backward, training mode, graph mode without XLA): Keras' layer in float32 and under
mixed_bfloat16, against TensorFlow's fused kernel (`tf.compat.v1.nn.fused_batch_norm`) and kzoo's
`FusedBatchNormalization` (which calls it, with Keras' variables and moving averages), on a
ResNet-18 CIFAR stage-1 activation (256 x 32 x 32 x 64). The lead for kzoo's bfloat16 SimCLR gap
(docs/benchmarks.md, "SimCLR pretraining speed").

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/batchnorm_cost.py
"""

from __future__ import annotations

import os
import time

os.environ["KERAS_BACKEND"] = "tensorflow"

import sys

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kzoo.layers.batchnorm import FusedBatchNormalization  # noqa: E402


def milliseconds(layer, x, steps: int = 20, repeats: int = 3) -> float:
    """Median over `repeats` of the mean time of one forward + backward (gradient w.r.t. x)."""

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.cast(layer(x, training=True), "float32"))
        return tape.gradient(loss, x)

    step(x).numpy()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            grad = step(x)
        grad.numpy()
        times.append((time.perf_counter() - start) / steps * 1000)
    return sorted(times)[len(times) // 2]


class FusedBatchNorm(keras.layers.Layer):
    """TensorFlow's fused batch norm (scale 1, offset 0), for timing only."""

    def call(self, x, training=None):
        channels = x.shape[-1]
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, tf.ones(channels), tf.zeros(channels), is_training=True)
        return y


def main() -> None:
    x = tf.random.normal((256, 32, 32, 64))
    xb = tf.cast(x, "bfloat16")
    conv = {p: keras.layers.Conv2D(64, 3, padding="same", use_bias=False, dtype=p) for p in ("float32", "mixed_bfloat16")}
    norm = {p: keras.layers.BatchNormalization(dtype=p) for p in ("float32", "mixed_bfloat16")}
    kzoo_norm = {p: FusedBatchNormalization(dtype=p) for p in ("float32", "mixed_bfloat16")}
    rows = [("Conv2D 3x3, float32", conv["float32"], x), ("Conv2D 3x3, mixed_bfloat16", conv["mixed_bfloat16"], x),
            ("keras BatchNormalization, float32", norm["float32"], x),
            ("keras BatchNormalization, mixed_bfloat16 (bf16 input)", norm["mixed_bfloat16"], xb),
            ("tf fused_batch_norm, float32", FusedBatchNorm(), x), ("tf fused_batch_norm, bfloat16 input", FusedBatchNorm(), xb),
            ("kzoo FusedBatchNormalization, float32", kzoo_norm["float32"], x),
            ("kzoo FusedBatchNormalization, mixed_bfloat16 (bf16 input)", kzoo_norm["mixed_bfloat16"], xb)]
    print("| layer (256x32x32x64, forward + backward) | ms |\n| --- | ---: |")
    for label, layer, inputs in rows:
        print(f"| {label} | {milliseconds(layer, inputs):.1f} |")


if __name__ == "__main__":
    main()
