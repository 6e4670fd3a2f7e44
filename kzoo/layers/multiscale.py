"""Multi-scale fusion: parallel k x k convolutions (1, 3, 5, 7 by default) whose outputs are summed."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from kzoo.errors import KzooError


@keras.saving.register_keras_serializable(package="kzoo")
class MultiScaleFusion(keras.layers.Layer):
    """Sum of parallel convolutions with kernel sizes `kernel_sizes` ("same" padding).

    Each branch has its own kernel (`kernel_{k}x{k}`); the branches share one bias, since a sum
    of biases is one bias. With stride 1 the sum is computed as ONE convolution with the largest
    kernel, the smaller kernels zero-padded into its centre and added: exactly the same result
    for odd kernels and "same" padding, with 49 instead of 1+9+25+49 multiply-adds per
    input-output channel pair for the default sizes. With a stride the centred-kernel identity
    does not hold for TensorFlow's "same" padding, so the branches run separately.

    Args:
        filters: output channels of every branch (and of the sum).
        kernel_sizes: odd kernel sizes of the branches.
        strides: stride of every branch.
        use_bias: add one bias to the sum.

    Example:
        >>> layer = MultiScaleFusion(8)
        >>> layer(keras.ops.ones((2, 16, 16, 3))).shape
        (2, 16, 16, 8)
    """

    def __init__(
        self,
        filters: int,
        kernel_sizes: Sequence[int] = (1, 3, 5, 7),
        strides: int = 1,
        use_bias: bool = True,
        kernel_initializer="he_normal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(filters, bool) or not isinstance(filters, int) or filters < 1:
            raise KzooError(f"MultiScaleFusion: filters must be a positive int, got {filters!r}")
        kernel_sizes = tuple(kernel_sizes)
        if not kernel_sizes or any(
            isinstance(k, bool) or not isinstance(k, int) or k < 1 or k % 2 == 0 for k in kernel_sizes
        ):
            raise KzooError(f"MultiScaleFusion: kernel_sizes must be odd positive ints, got {kernel_sizes!r}")
        if len(set(kernel_sizes)) != len(kernel_sizes):
            raise KzooError(f"MultiScaleFusion: kernel_sizes repeat a size: {kernel_sizes!r}")
        if isinstance(strides, bool) or not isinstance(strides, int) or strides < 1:
            raise KzooError(f"MultiScaleFusion: strides must be a positive int, got {strides!r}")
        self.filters = filters
        self.kernel_sizes = kernel_sizes
        self.strides = strides
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise KzooError("MultiScaleFusion: the number of input channels must be known when the layer is built")
        self.kernels = [
            self.add_weight(
                name=f"kernel_{k}x{k}", shape=(k, k, channels, self.filters), initializer=self.kernel_initializer
            )
            for k in self.kernel_sizes
        ]
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def fused_kernel(self):
        """The one kernel (kmax, kmax, C, filters) equal to the sum of the centred branch kernels."""
        kmax = max(self.kernel_sizes)
        total = None
        for k, kernel in zip(self.kernel_sizes, self.kernels):
            p = (kmax - k) // 2
            if p:
                kernel = ops.pad(kernel, ((p, p), (p, p), (0, 0), (0, 0)))
            total = kernel if total is None else total + kernel
        return total

    def call(self, inputs):
        if self.strides == 1:
            y = ops.conv(inputs, self.fused_kernel(), padding="same")
        else:
            y = None
            for kernel in self.kernels:
                out = ops.conv(inputs, kernel, strides=self.strides, padding="same")
                y = out if y is None else y + out
        if self.bias is not None:
            y = y + self.bias
        return y

    def compute_output_shape(self, input_shape):
        def out(size):
            return None if size is None else -(-size // self.strides)

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_sizes": list(self.kernel_sizes),
            "strides": self.strides,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
