"""Forward + backward time of a 4x4 stride-2 transposed convolution: Keras' Conv2DTranspose against
kzoo's SubpixelConvTranspose2D computed the sub-pixel way (issue 28), batch 64, 8x8x256 -> 16x16x128.

    TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/conv_transpose.py xla
    TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=tensorflow .venv/bin/python benchmarks/conv_transpose.py noxla
    TF_CPP_MIN_LOG_LEVEL=2 KERAS_BACKEND=jax .venv/bin/python benchmarks/conv_transpose.py xla
Prints the mean of 5 calls after one warm-up (compilation) per layer.
"""
import sys
import time
import keras, numpy as np
from kzoo.layers.upsample import SubpixelConvTranspose2D
be = keras.backend.backend()
x = np.random.default_rng(0).normal(size=(64, 8, 8, 256)).astype("float32")
for cls in (keras.layers.Conv2DTranspose, SubpixelConvTranspose2D):
    layer = cls(128, 4, strides=2, padding="same")
    layer.build(x.shape)
    if be == "jax":
        import jax
        # stateless_call runs call(): the sub-pixel form under JAX for SubpixelConvTranspose2D.
        f = jax.jit(jax.grad(lambda k, b, a: layer.stateless_call([k, b], [], a)[0].sum(), argnums=(0, 2)))
        args = (layer.kernel.value, layer.bias.value, x)
        run = lambda: jax.block_until_ready(f(*args))
    else:
        import tensorflow as tf
        @tf.function(jit_compile=sys.argv[1] == "xla")
        def g(a):
            with tf.GradientTape() as t:
                t.watch(a); loss = tf.reduce_sum(layer.subpixel_call(a) if cls is SubpixelConvTranspose2D else layer(a))
            return t.gradient(loss, [layer.kernel, a])
        run = lambda: g(tf.constant(x))
    run()
    t = time.perf_counter()
    for _ in range(5): run()
    print(be, sys.argv[1], cls.__name__, f"{(time.perf_counter()-t)/5*1000:.1f} ms fwd+bwd")
