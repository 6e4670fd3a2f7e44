"""Where a kzoo ViT training step spends its time under JAX: one process, variants alternated.

Variants (each timed `--steps` steps per repeat, round-robin over `--repeats`, median img/s):
    keras_step    model.train_on_batch (Keras' jitted train step: forward, loss, backward, AdamW)
    grad_only     jax.jit(value_and_grad) over model.stateless_call: forward+backward, no optimizer
    forward       jax.jit(model.stateless_call), inference
    *_unfused     the same with kzoo's GPU attention path switched off (plain
                  `keras.ops.dot_product_attention` on 197 tokens, which XLA does not fuse)
The gap keras_step - grad_only is the optimizer plus Keras' step bookkeeping; plain vs *_unfused
is what cuDNN's fused attention buys (kzoo pads the tokens to an even length to get it). It also prints XLA's own FLOP count for one step.

    KERAS_BACKEND=jax python benchmarks/jax_step_profile.py --model vit_base_patch16_224 \\
        --batch-size 256 --dtype mixed_bfloat16
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import kzoo  # noqa: E402
from kzoo.layers import vit_layers  # noqa: E402

_fused = vit_layers._fused_attention_on_gpu


def build(name: str, num_classes: int, fused: bool):
    vit_layers._fused_attention_on_gpu = _fused if fused else (lambda: False)
    model = kzoo.create_model(name, num_classes=num_classes)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


def variants(model, x, y):
    """name -> zero-argument callable running one synchronised step."""
    def state():  # read each call: Keras' train step donates (deletes) the previous buffers
        return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]

    def loss_fn(tv, nv, xb, yb):
        logits, _ = model.stateless_call(tv, nv, xb, training=True)
        return keras.ops.mean(keras.losses.categorical_crossentropy(yb, logits, from_logits=True))

    grad = jax.jit(jax.value_and_grad(loss_fn))
    fwd = jax.jit(lambda tv, nv, xb: model.stateless_call(tv, nv, xb, training=False)[0])
    cost = grad.lower(*state(), x, y).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    gflop = (cost or {}).get("flops", float("nan")) / 1e9 / x.shape[0]
    return {
        "keras_step": lambda: model.train_on_batch(x, y),
        "grad_only": lambda: jax.block_until_ready(grad(*state(), x, y)),
        "forward": lambda: jax.block_until_ready(fwd(*state(), x)),
    }, gflop


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--dtype", default="mixed_bfloat16")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    keras.mixed_precision.set_global_policy(args.dtype)
    entry_shape = kzoo.create_model(args.model, num_classes=10).input_shape[1:]
    rng = np.random.default_rng(0)
    x = jax.device_put(rng.uniform(0, 255, (args.batch_size, *entry_shape)).astype("float32"))
    y = jax.device_put(np.eye(1000, dtype="float32")[rng.integers(0, 1000, args.batch_size)])
    steps = {}
    for fused in (True, False):
        suffix = "" if fused else "_unfused"
        try:
            model = build(args.model, 1000, fused)
            fns, gflop = variants(model, x, y)
            for fn in fns.values():  # compile + warm up
                fn(), fn()
        except Exception as exc:  # say why, keep the other variants
            print(f"# variants{suffix}: skipped, {type(exc).__name__}: {str(exc)[:300]}", flush=True)
            continue
        print(f"# XLA cost analysis{suffix}: {gflop:.1f} GFLOP per image for forward+backward", flush=True)
        steps.update({k + suffix: v for k, v in fns.items()})
    times = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, fn in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                fn()
            times[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    print(f"device: {jax.devices()[0].device_kind}; jax {jax.__version__}, keras {keras.__version__}; "
          f"{args.model}, batch {args.batch_size}, {args.dtype}; {args.repeats} x {args.steps} steps")
    print("| variant | img/s median | min-max |\n|---|---|---|")
    for name, vals in times.items():
        print(f"| {name} | {statistics.median(vals):.0f} | {min(vals):.0f}-{max(vals):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
