"""BatchNormalization that uses TensorFlow's fused kernel where it can (docs/benchmarks.md).

Keras 3's BatchNormalization computes the moments and the normalisation as separate ops on a
float32 copy of its input; under TensorFlow on a CPU that costs more than the 3x3 convolution
before it (1.2x in float32, 2.6x in bfloat16), where TensorFlow's fused kernel takes a third of the
time and reads bfloat16 directly. Every other backend, and every case the fused kernel does not
cover, runs Keras' own code.
"""

from __future__ import annotations

import keras
from keras import ops

# cuDNN's floor for epsilon (TensorFlow's Python wrapper even raises anything below 1.001e-5 to
# that): layers with a smaller one (airbench's 1e-12) keep Keras' path, so every layer computes
# exactly the function its config says, on every device.
_MIN_FUSED_EPSILON = 1e-5


@keras.saving.register_keras_serializable(package="kzoo")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` with the same variables, config and results, whose
    TensorFlow path for 4-D channels-last input runs the fused kernel (`FusedBatchNormV3`).

    Fused only when: the backend is TensorFlow, the input is 4-D with the channel axis last,
    `training` is a Python bool, no mask, no renorm, not synchronized, epsilon >= 1e-5.
    Otherwise (JAX, for one) it is Keras' layer, line for line.

    Example:
        >>> layer = FusedBatchNormalization(momentum=0.9, epsilon=1e-5)
        >>> layer(keras.ops.ones((2, 4, 4, 3)), training=True).shape
        (2, 4, 4, 3)
    """

    def _fusable(self, inputs, training, mask) -> bool:
        return (
            keras.backend.backend() == "tensorflow"
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and isinstance(training, (bool, type(None)))
            and mask is None
            and not self.renorm
            and not getattr(self, "synchronized", False)
            and self.epsilon >= _MIN_FUSED_EPSILON
            and keras.backend.standardize_dtype(inputs.dtype) in ("float32", "bfloat16", "float16")
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = ops.cast(self.gamma, "float32") if self.scale else ops.ones((channels,), "float32")
        offset = ops.cast(self.beta, "float32") if self.center else ops.zeros((channels,), "float32")
        fit = bool(training and self.trainable)
        empty = ops.zeros((0,), "float32")
        # The raw op, not tf.compat.v1.nn.fused_batch_norm, whose wrapper changes epsilon = 1e-5.
        outputs, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset,
            mean=empty if fit else ops.cast(self.moving_mean, "float32"),
            variance=empty if fit else ops.cast(self.moving_variance, "float32"),
            epsilon=self.epsilon, exponential_avg_factor=1.0, data_format="NHWC", is_training=fit)
        if fit:
            # The kernel returns the unbiased (n - 1) batch variance; Keras keeps the biased one.
            count = ops.cast(ops.prod(ops.shape(inputs)[:-1]), "float32")
            variance = variance * (count - 1.0) / ops.maximum(count, 1.0)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(outputs, self.compute_dtype)
