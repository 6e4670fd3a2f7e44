"""`SubpixelConvTranspose2D`: a 4x4, stride-2, "same" transposed convolution computed as one 3x3
convolution and a depth-to-space shuffle.

Same weights, same outputs (to float rounding) and the same saved variables as
`keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same")`; only the arithmetic is
arranged differently. Why: XLA on a CPU runs the gradient of a transposed convolution (an
input-dilated convolution) through a slow generic path, so a DCGAN generator's backward pass took
16.7 s per batch of 64 under JAX against 0.29 s for the discriminator's ordinary convolutions
(docs/benchmarks.md). Ordinary convolutions take the fast path on every backend.

The arithmetic: output row 2m + a of a stride-2 transposed convolution with padding 1 sums input
rows m - 1 and m with kernel rows 3 and 1 (a = 0), or rows m and m + 1 with kernel rows 2 and 0
(a = 1); columns likewise. Both phases are taps of one 3x3 window around input (m, n), so a 3x3
convolution with 4 x filters outputs (the 2x2 phases, unused taps zero) followed by a
depth-to-space shuffle gives the transposed convolution exactly. Under TensorFlow, whose oneDNN
transposed convolution is twice as fast as the sub-pixel form, the layer runs Keras' own.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

# _TAPS[d, a]: the kernel row (index 4 = a zero row) that input offset d - 1 feeds into output phase a.
_TAPS = np.array([[3, 4], [1, 2], [4, 0]], dtype="int32")


@keras.saving.register_keras_serializable(package="kzoo")
class SubpixelConvTranspose2D(keras.layers.Conv2DTranspose):
    """`Conv2DTranspose(filters, kernel_size=4, strides=2, padding="same")`, channels last,
    computed as a 3x3 convolution plus a depth-to-space shuffle (see the module docstring).

    Example:
        >>> layer = SubpixelConvTranspose2D(64)
        >>> layer(np.zeros((2, 8, 8, 128), "float32")).shape
        (2, 16, 16, 64)
    """

    def __init__(self, filters: int, kernel_size: Any = 4, strides: Any = 2, padding: str = "same",
                 **kwargs: Any) -> None:
        super().__init__(filters, kernel_size, strides=strides, padding=padding, **kwargs)
        if (tuple(self.kernel_size), tuple(self.strides), self.padding, tuple(self.dilation_rate),
                self.data_format, self.output_padding) != ((4, 4), (2, 2), "same", (1, 1), "channels_last", None):
            raise ValueError("SubpixelConvTranspose2D computes kernel_size=4, strides=2, padding='same', "
                             "channels_last, no dilation or output_padding; use keras.layers.Conv2DTranspose")

    def subpixel_kernel(self) -> Any:
        """The (3, 3, in, 4 * filters) kernel of the equivalent 3x3 convolution (phases a, b major)."""
        kernel = ops.pad(ops.convert_to_tensor(self.kernel), [[0, 1], [0, 1], [0, 0], [0, 0]])  # (5, 5, out, in)
        rows = ops.take(kernel, _TAPS, axis=0)  # (dy, a, 5, out, in)
        taps = ops.take(rows, _TAPS, axis=2)  # (dy, a, dx, b, out, in)
        taps = ops.transpose(taps, (0, 2, 5, 1, 3, 4))  # (dy, dx, in, a, b, out)
        return ops.reshape(taps, (3, 3, ops.shape(kernel)[3], 4 * self.filters))

    def call(self, inputs: Any) -> Any:
        # Measured per backend (batch 64, 8x8x256 -> 16x16x128, forward + backward, 2-core CPU):
        # JAX 3,338 ms native vs 78 ms sub-pixel; TensorFlow (oneDNN) 52 ms native vs 108 ms.
        if keras.backend.backend() == "tensorflow":
            return super().call(inputs)
        return self.subpixel_call(inputs)

    def subpixel_call(self, inputs: Any) -> Any:
        """The layer's output computed as a 3x3 convolution plus a depth-to-space shuffle."""
        kernel = ops.cast(self.subpixel_kernel(), inputs.dtype)
        phases = ops.conv(inputs, kernel, strides=1, padding="same")  # (N, H, W, 2 * 2 * filters)
        n, h, w = ops.shape(phases)[0], ops.shape(phases)[1], ops.shape(phases)[2]
        phases = ops.reshape(phases, (n, h, w, 2, 2, self.filters))
        outputs = ops.reshape(ops.transpose(phases, (0, 1, 3, 2, 4, 5)), (n, 2 * h, 2 * w, self.filters))
        if self.use_bias:
            outputs = outputs + ops.cast(self.bias, outputs.dtype)
        return self.activation(outputs) if self.activation is not None else outputs
