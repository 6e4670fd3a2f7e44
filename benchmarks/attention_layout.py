"""Training step time of one self-attention layer on this CPU (TensorFlow, no XLA): kzoo's
`MultiHeadSelfAttention` (heads moved first, batched matmuls) against the same layer computing
attention with `keras.ops.dot_product_attention` on the (B, N, heads, head_dim) layout (kzoo's code
until session 5) and against `keras.layers.MultiHeadAttention`. Same sizes, same weights for the
two kzoo variants (their outputs are compared), alternated round after round; medians.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/attention_layout.py --tokens 49 --dim 256 --heads 4
    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/attention_layout.py --policy mixed_bfloat16
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
from keras import ops

from kzoo.layers.vit_layers import MultiHeadSelfAttention


class TokenMajorAttention(MultiHeadSelfAttention):
    """The peer: identical weights, attention on (B, N, heads, head_dim) through dot_product_attention."""

    def call(self, tokens, training=None):
        batch, length = ops.shape(tokens)[0], ops.shape(tokens)[1]
        qkv = ops.reshape(self.qkv(tokens), (batch, length, 3, self.num_heads, self.head_dim))
        out = ops.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], scale=self.head_dim**-0.5)
        return self.proj(ops.reshape(out, (batch, length, self.num_heads * self.head_dim)))


def wrap(layer: keras.layers.Layer, tokens: int, dim: int) -> keras.Model:
    inputs = keras.Input((tokens, dim))
    x = layer(inputs) if not isinstance(layer, keras.layers.MultiHeadAttention) else layer(inputs, inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, dtype="float32")(x))
    model.compile(keras.optimizers.SGD(0.01), keras.losses.CategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--tokens", type=int, default=49)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--policy", default="float32")
    args = parser.parse_args()
    keras.mixed_precision.set_global_policy(args.policy)
    head_dim = args.dim // args.heads
    models = {
        "kzoo (heads first)": wrap(MultiHeadSelfAttention(args.heads, use_bias=False), args.tokens, args.dim),
        "dot_product_attention (B,N,h,d)": wrap(TokenMajorAttention(args.heads, use_bias=False), args.tokens, args.dim),
        "keras MultiHeadAttention": wrap(keras.layers.MultiHeadAttention(args.heads, head_dim, use_bias=False),
                                         args.tokens, args.dim),
    }
    kzoo_model, peer = list(models.values())[:2]
    peer.set_weights(kzoo_model.get_weights())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.tokens, args.dim)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, args.batch)]
    diff = np.abs(kzoo_model.predict(x[:64], verbose=0) - peer.predict(x[:64], verbose=0)).max()
    for model in models.values():
        model.train_on_batch(x, y)  # trace outside the timing
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["kzoo (heads first)"])
    print(f"batch {args.batch} x {args.tokens} tokens x {args.dim} ({args.heads} heads), {args.policy}, "
          f"{args.rounds} rounds; max |kzoo - peer| logits {diff:.1e}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:34s} {1000 * median:6.0f} ms/step  ({median / base:.2f}x kzoo)  "
              f"rounds: {[round(1000 * v) for v in values]}")


if __name__ == "__main__":
    main()
