"""Training images/s of a 32x32 kzoo model (airbench94 by default) on this machine in float32 and
bfloat16, with and without XLA (TensorFlow backend): the measurement behind the race recipes'
`--mixed-precision` and `--jit-compile` choices (docs/benchmarks.md). The set-ups alternate, round
after round, and the medians are reported with the ratio to the first set-up listed.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/airbench_step.py --batch 1024 --steps 6 --rounds 3
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/airbench_step.py --model cct_airbench --steps 3
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/airbench_step.py --model cct_airbench,cct_airbench_d1 \
        --setups float32 --batch 512 --steps 3 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

import kzoo

SETUPS = {"float32": ("float32", False), "float32+xla": ("float32", True), "bfloat16": ("mixed_bfloat16", False),
          "bfloat16+xla": ("mixed_bfloat16", True)}


def build(name: str, policy: str, jit: bool) -> keras.Model:
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = kzoo.create_model(name, num_classes=10)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(keras.optimizers.SGD(0.1, momentum=0.85, nesterov=True),
                  keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), jit_compile=jit)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="airbench94", help="comma-separated kzoo model names, alternated too")
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated subset of " + ", ".join(SETUPS))
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6, help="train steps per timed fit")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch * args.steps, 32, 32, 3)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, len(x))]
    models = {f"{model} {setup}": build(model, *SETUPS[setup])
              for model in args.model.split(",") for setup in args.setups.split(",")}
    for model in models.values():  # trace/compile outside the timing
        model.fit(x[: 2 * args.batch], y[: 2 * args.batch], batch_size=args.batch, verbose=0)
    rates = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(x, y, batch_size=args.batch, verbose=0)
            rates[name].append(len(x) / (time.perf_counter() - start))
    base = statistics.median(next(iter(rates.values())))
    print(f"backend {keras.backend.backend()}, batch {args.batch}, {args.steps} steps x {args.rounds} rounds")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:30s} {median:7.0f} img/s  ({median / base:.2f}x the first)  runs: {[round(v) for v in values]}")


if __name__ == "__main__":
    main()
