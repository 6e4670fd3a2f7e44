"""TensorFlow ops that kzoo models use and tf2onnx 1.17 cannot convert, registered with tf2onnx.

- `Erfc`: TensorFlow's exact GELU (`tf.nn.gelu(approximate=False)`, used by Keras'
  `ops.gelu`) computes `0.5 * x * erfc(-x / sqrt(2))`. ONNX has `Erf` (opset 9) but no `Erfc`,
  and tf2onnx leaves the node unconverted, so ONNX Runtime refuses the file ("No Op registered
  for Erfc"). Here `erfc(x) = 1 - erf(x)`: the float32 rounding differs from TensorFlow's by
  about 1e-7 (measured in tests/export).
"""

from __future__ import annotations

import numpy as np

_REGISTERED = False


def register() -> None:
    """Register the handlers with tf2onnx (once per process)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:  # noqa: F841  (registered by the decorator)
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
            node.type = "Erf"
            ctx.insert_new_node_on_output("Sub", node.output[0], name=utils.make_name(f"{node.name}_erfc"),
                                          inputs=[one.output[0], node.output[0]])

    _REGISTERED = True
