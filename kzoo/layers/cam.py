"""CAM head: global average pooling + Dense whose second output is the class activation map."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from kzoo.errors import KzooError


def display_map(cam, output_size: Sequence[int] | None = None, normalize: bool = True):
    """`(B, h, w)` map -> resized to `output_size` (bilinear) and scaled per image to [0, 1].

    Example:
        >>> display_map(keras.ops.ones((1, 4, 4)), (8, 8)).shape
        (1, 8, 8)
    """
    if output_size is not None:
        cam = ops.image.resize(cam[..., None], tuple(output_size), interpolation="bilinear")[..., 0]
    if normalize:
        low = ops.min(cam, axis=(1, 2), keepdims=True)
        high = ops.max(cam, axis=(1, 2), keepdims=True)
        cam = (cam - low) / ops.maximum(high - low, 1e-7)
    return cam


def first_max_index(logits):
    """`argmax(logits, axis=-1)` (the first index of the maximum), `(B,)` int32.

    Computed as the argmax of an integer mask because Keras' TensorFlow argmax of floats tests
    the sign bit of zeros with Bitcast and BitwiseAnd, which tf2onnx cannot convert (kzoo export).

    Example:
        >>> int(first_max_index(keras.ops.convert_to_tensor([[1.0, 3.0, 3.0]]))[0])
        1
    """
    is_max = ops.greater_equal(logits, ops.max(logits, axis=-1, keepdims=True))
    return ops.cast(ops.argmax(ops.cast(is_max, "int32"), axis=-1), "int32")


@keras.saving.register_keras_serializable(package="kzoo")
class CAMHead(keras.layers.Layer):
    """`(B, h, w, C)` feature map -> `[logits (B, classes), heatmap (B, H, W)]` in one pass.

    The logits are `Dense(GAP(features))` (float32, as every kzoo classifier); the heatmap is the
    class activation map (Zhou et al. 2016) of the predicted class, or of `class_index` when the
    layer is called as `CAMHead(n)([features, class_index])`: `relu(sum_c w[c, k] * A[..., c])`,
    scaled per image to [0, 1] (`normalize=True`) and resized to `output_size` if given. The
    heatmap is `stop_gradient`ed and carries no loss: `compile(loss=[ce, None])`, `fit(x, (y, None))`.

    `class_activation_map(features, class_weights)` is the reusable part: the map for any
    `(B, C)` channel weights, e.g. a fused model's saliency that weights a feature map before
    pooling (`saliency = head.class_activation_map(features, head.class_weights(idx))`).

    Args:
        num_classes: classifier outputs.
        output_size: (H, W) to resize the heatmap to (bilinear), e.g. the input size; None keeps
            the feature-map resolution.
        normalize: scale each heatmap to [0, 1] (else the raw relu'd map).
        use_bias, kernel_initializer: of the classifier `Dense` (named `head`).

    Example:
        >>> head = CAMHead(10, output_size=(32, 32))
        >>> logits, heatmap = head(keras.ops.ones((2, 4, 4, 8)))
        >>> logits.shape, heatmap.shape
        ((2, 10), (2, 32, 32))
    """

    def __init__(
        self,
        num_classes: int,
        output_size: Sequence[int] | None = None,
        normalize: bool = True,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise KzooError(f"CAMHead: num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.output_size = None if output_size is None else tuple(int(s) for s in output_size)
        self.normalize = bool(normalize)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.classifier = keras.layers.Dense(
            num_classes, use_bias=use_bias, kernel_initializer=self.kernel_initializer, dtype="float32", name="head"
        )

    def build(self, input_shape):
        features_shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) else input_shape
        if len(features_shape) != 4:
            raise KzooError(f"{self.name}: expects a (batch, height, width, channels) feature map, got shape {tuple(features_shape)}")
        self.classifier.build((features_shape[0], features_shape[-1]))

    def class_weights(self, class_index):
        """`(B,)` class indices -> `(B, C)` rows of the classifier kernel."""
        return ops.take(ops.transpose(ops.cast(self.classifier.kernel, "float32")), ops.cast(class_index, "int32"), axis=0)

    def class_activation_map(self, features, class_weights):
        """`relu(sum_c class_weights[b, c] * features[b, :, :, c])`: `(B, h, w)`, float32, unscaled."""
        features = ops.cast(features, "float32")
        # Multiply-and-sum rather than einsum: TensorFlow lowers this einsum to a batched matmul
        # that the LiteRT converter rejects with a dynamic batch (kzoo export).
        weights = ops.cast(class_weights, "float32")[:, None, None, :]
        return ops.relu(ops.sum(features * weights, axis=-1))

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
            features, class_index = inputs[0], None
        elif isinstance(inputs, (list, tuple)):
            features, class_index = inputs
        else:
            features, class_index = inputs, None
        pooled = ops.mean(ops.cast(features, "float32"), axis=(1, 2))
        logits = self.classifier(pooled)
        if class_index is None:
            class_index = first_max_index(ops.stop_gradient(logits))
        else:
            class_index = ops.reshape(class_index, (-1,))
        # The map is an explanation, not a training signal: no gradient flows back through it.
        cam = ops.stop_gradient(self.class_activation_map(features, self.class_weights(class_index)))
        return logits, display_map(cam, self.output_size, self.normalize)

    def compute_output_shape(self, input_shape):
        features_shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) else input_shape
        size = self.output_size or tuple(features_shape[1:3])
        return (features_shape[0], self.num_classes), (features_shape[0], *size)

    def compute_output_spec(self, inputs):
        features = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        logits_shape, cam_shape = self.compute_output_shape(tuple(features.shape))
        return (
            keras.KerasTensor(logits_shape, dtype="float32"),
            keras.KerasTensor(cam_shape, dtype="float32"),
        )

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "output_size": None if self.output_size is None else list(self.output_size),
            "normalize": self.normalize,
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
