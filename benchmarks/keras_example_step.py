"""Train-step time of the keras.io ViT example's network: kzoo's `vit_keras_example` against a
plain-Keras rebuild of the example (keras.layers.MultiHeadAttention, same sizes, 21,666,762
parameters at 10 classes), with and without XLA, with and without dropout.

One worker process per configuration (run them one after another on an idle machine):
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/keras_example_step.py kzoo jit '{}'
    ... kzoo nojit '{}' | kzoo jit '{"attn_dropout": 0, "mlp_dropout": 0, "head_dropout": 0}'
    ... plain jit | plain nojit
Batch 256 of random 72x72 images, float32, AdamW; prints the mean of 3 steps after 2 warm-up steps.
"""

import json
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402


def plain_keras_example(num_classes: int = 10) -> keras.Model:
    """The example's architecture written with Keras layers (no kzoo code)."""
    inputs = keras.Input((72, 72, 3))
    patches = layers.Lambda(lambda x: ops.reshape(ops.image.extract_patches(x, 6), (-1, 144, 108)))(inputs)
    x = layers.Dense(64)(patches)
    x = x + layers.Embedding(144, 64)(ops.arange(144))
    for _ in range(8):
        h = layers.LayerNormalization(epsilon=1e-6)(x)
        x = x + layers.MultiHeadAttention(4, 64, dropout=0.1)(h, h)
        h = layers.LayerNormalization(epsilon=1e-6)(x)
        h = layers.Dropout(0.1)(layers.Dense(128, activation="gelu")(h))
        x = x + layers.Dropout(0.1)(layers.Dense(64, activation="gelu")(h))
    x = layers.Dropout(0.5)(layers.Flatten()(layers.LayerNormalization(epsilon=1e-6)(x)))
    for units in (2048, 1024):
        x = layers.Dropout(0.5)(layers.Dense(units, activation="gelu")(x))
    return keras.Model(inputs, layers.Dense(num_classes)(x))


def main() -> None:
    which, jit = sys.argv[1], sys.argv[2] == "jit"
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    if which == "kzoo":
        import kzoo

        model = kzoo.create_model("vit_keras_example", num_classes=10, **options)
    else:
        model = plain_keras_example()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, weight_decay=1e-4),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=jit)
    x = np.random.rand(256, 72, 72, 3).astype("float32") * 255
    y = np.eye(10, dtype="float32")[np.random.randint(0, 10, 256)]
    for _ in range(2):
        model.train_on_batch(x, y)
    start, steps = time.perf_counter(), 3
    for _ in range(steps):
        model.train_on_batch(x, y)
    seconds = (time.perf_counter() - start) / steps
    print(f"{which} jit={jit} {options}: {seconds:.2f} s/step, {256 / seconds:.0f} img/s "
          f"({model.count_params():,} params)")


if __name__ == "__main__":
    main()
