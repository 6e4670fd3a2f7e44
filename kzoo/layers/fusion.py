"""Layers of the fused ViT + CNN model: CAM-guided pooling and an attention gate over branches."""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from kzoo.errors import KzooError
from kzoo.layers.cam import CAMHead, display_map, first_max_index


def saliency_pool(features, saliency, epsilon: float = 1e-6):
    """Average of `features (B, h, w, C)` weighted by `saliency (B, h, w)` (>= 0): `(B, C)`, float32.

    The weights are `(s + epsilon) / sum(s + epsilon)` per image, so a uniform (or all-zero) map
    gives plain global average pooling and a peaked map pools where it peaks.

    Example:
        >>> f = keras.ops.ones((2, 4, 4, 8))
        >>> saliency_pool(f, keras.ops.ones((2, 4, 4))).shape
        (2, 8)
    """
    saliency = ops.cast(saliency, "float32") + epsilon
    weights = saliency / ops.sum(saliency, axis=(1, 2), keepdims=True)
    # Multiply-and-sum, not einsum: the LiteRT converter rejects the batched matmul TensorFlow
    # makes of this einsum when the batch is dynamic (kzoo export).
    return ops.sum(ops.cast(features, "float32") * weights[..., None], axis=(1, 2))


def _split(inputs):
    if isinstance(inputs, (list, tuple)):
        return (inputs[0], None) if len(inputs) == 1 else (inputs[0], inputs[1])
    return inputs, None


@keras.saving.register_keras_serializable(package="kzoo")
class CAMGuidedPooling(keras.layers.Layer):
    """`(B, h, w, C)` map -> `[pooled (B, C), heatmap (B, H, W)]`: pooling where the CAM looks.

    A `CAMHead` (sublayer `cam_head`: GAP + Dense over the map) gives the class activation map of
    its predicted class, `relu(sum_c w[c, k] * A[..., c])` (Zhou et al. 2016); `saliency_pool`
    then averages the map with those weights. Unlike `CAMHead`'s display map, this saliency is
    not `stop_gradient`ed: the CAM classifier learns from the model's loss through the pooling.
    `CAMGuidedPooling(n)([features, saliency])` pools with a given `(B, h, w)` map instead.
    The second output is the saliency for display: no gradient, resized to `output_size`,
    scaled to [0, 1] per image.

    Example:
        >>> pooled, heatmap = CAMGuidedPooling(2, output_size=(32, 32))(keras.ops.ones((1, 4, 4, 8)))
        >>> pooled.shape, heatmap.shape
        ((1, 8), (1, 32, 32))
    """

    def __init__(self, num_classes: int, output_size: Sequence[int] | None = None, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.output_size = None if output_size is None else tuple(int(s) for s in output_size)
        self.epsilon = float(epsilon)
        # No bias: it would only shift which class is chosen and would get no gradient.
        self.cam_head = CAMHead(num_classes, normalize=False, use_bias=False, name="cam_head")

    def build(self, input_shape):
        nested = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        features_shape = tuple(input_shape[0] if nested else input_shape)
        if len(features_shape) != 4:
            raise KzooError(
                f"{self.name}: expects a (batch, height, width, channels) map, got shape {tuple(features_shape)}"
            )
        self.cam_head.build(features_shape)

    def call(self, inputs):
        features, saliency = _split(inputs)
        if saliency is None:
            logits, _ = self.cam_head(features)
            class_index = first_max_index(ops.stop_gradient(logits))
            saliency = self.cam_head.class_activation_map(features, self.cam_head.class_weights(class_index))
        pooled = saliency_pool(features, saliency, self.epsilon)
        return pooled, display_map(ops.stop_gradient(ops.cast(saliency, "float32")), self.output_size)

    def compute_output_spec(self, inputs):
        features, _ = _split(inputs)
        batch, height, width, channels = features.shape
        size = self.output_size or (height, width)
        return (keras.KerasTensor((batch, channels), dtype="float32"),
                keras.KerasTensor((batch, *size), dtype="float32"))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "epsilon": self.epsilon,
                "output_size": None if self.output_size is None else list(self.output_size)}


@keras.saving.register_keras_serializable(package="kzoo")
class BranchGate(keras.layers.Layer):
    """n branch vectors `(B, D_i)` -> `(B, n)` per-sample weights: `softmax(Dense(concat(...)))`.

    Each row sums to 1 and says how much each branch contributes to the fused vector
    (`WeightedBranchSum`); read it with `kzoo.models.fusion.fusion_weights`.

    Example:
        >>> BranchGate()([keras.ops.ones((2, 4)), keras.ops.zeros((2, 4))]).shape
        (2, 2)
    """

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 2:
            raise KzooError(f"{self.name}: expects a list of at least two branch vectors, got {input_shape}")
        # Zero-initialised: every branch starts with weight 1/n; the gate learns from there.
        self.scores = keras.layers.Dense(len(input_shape), kernel_initializer="zeros", name="scores")
        self.scores.build((None, sum(int(s[-1]) for s in input_shape)))

    def call(self, inputs):
        scores = self.scores(ops.concatenate(list(inputs), axis=-1))
        return ops.softmax(ops.cast(scores, "float32"), axis=-1)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs[0].shape[0], len(inputs)), dtype="float32")


@keras.saving.register_keras_serializable(package="kzoo")
class WeightedBranchSum(keras.layers.Layer):
    """`[weights (B, n), x_1 .. x_n (B, D)]` -> `sum_i weights[:, i] * x_i`: `(B, D)`.

    Example:
        >>> w = keras.ops.convert_to_tensor([[0.25, 0.75]])
        >>> WeightedBranchSum()([w, keras.ops.ones((1, 3)), keras.ops.zeros((1, 3))]).shape
        (1, 3)
    """

    def call(self, inputs):
        weights, *branches = inputs
        stacked = ops.stack([ops.cast(b, self.compute_dtype) for b in branches], axis=1)
        return ops.einsum("bn,bnd->bd", ops.cast(weights, self.compute_dtype), stacked)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs[1].shape, dtype=self.compute_dtype)
