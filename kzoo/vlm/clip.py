"""CLIP (Radford et al. 2021) in Keras: a ViT image encoder, a causal text transformer, one logit scale.

Both towers reuse kzoo's ViT blocks (`kzoo.models.vit`), so the layout is the ViT's: fused qkv,
pre-norm blocks. The text side is split in two models so CoOp can feed it learned embeddings:
`token_embedding` (ids -> vectors) and `text_transformer` ([vectors, end-of-text index] ->
projected feature). Every model takes [0, 255] pixels and int32 token ids.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
from keras import ops

from kzoo.errors import KzooError
from kzoo.layers import PositionEmbedding
from kzoo.models.vit import ViTConfig, _block, vit_from_config

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_LOGIT_SCALE = 100.0  # CLIP clamps exp(logit_scale) here while training


@dataclass(frozen=True)
class CLIPConfig:
    """A CLIP's architecture; the defaults are OpenAI's ViT-B/32.

    Example:
        >>> CLIPConfig(image_size=32, patch_size=8, vision_width=32, vision_layers=1, vision_heads=2,
        ...            vision_mlp=64).image_size
        32
    """

    embed_dim: int = 512
    image_size: int = 224
    patch_size: int = 32
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    vision_mlp: int = 3072
    context_length: int = 77
    vocab_size: int = 49408
    text_width: int = 512
    text_layers: int = 12
    text_heads: int = 8
    text_mlp: int = 2048
    activation: str = "quick_gelu"  # OpenAI's checkpoints; OpenCLIP's own models use "gelu"
    layer_norm_epsilon: float = 1e-5
    end_id: int = 49407  # <|endoftext|>: the text feature is read at its first position
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD

    def __post_init__(self):
        for field in ("embed_dim", "image_size", "patch_size", "vision_width", "vision_layers", "vision_heads",
                      "context_length", "vocab_size", "text_width", "text_layers", "text_heads"):
            if int(getattr(self, field)) < 1:
                raise KzooError(f"CLIP config: {field} must be >= 1, got {getattr(self, field)}")
        if not 0 <= self.end_id < self.vocab_size:
            raise KzooError(f"CLIP config: end_id {self.end_id} is outside the vocabulary (size {self.vocab_size})")

    def replace(self, **changes) -> "CLIPConfig":
        return dataclasses.replace(self, **changes)

    def tower(self, side: str) -> ViTConfig:
        """The `ViTConfig` of the image (`side="vision"`) or text tower."""
        common = dict(layer_norm_epsilon=self.layer_norm_epsilon, mlp_activation=self.activation)
        if side == "vision":
            return ViTConfig(image_size=self.image_size, patch_size=self.patch_size, dim=self.vision_width,
                             depth=self.vision_layers, heads=self.vision_heads, mlp_dim=self.vision_mlp,
                             mean=self.mean, std=self.std, patch_bias=False, pre_norm=True, **common)
        # Image fields are unused by the text blocks: a 1x1 "image" keeps ViTConfig's checks quiet.
        return ViTConfig(image_size=1, patch_size=1, dim=self.text_width, depth=self.text_layers,
                         heads=self.text_heads, mlp_dim=self.text_mlp, causal=True, **common)


@keras.saving.register_keras_serializable(package="kzoo")
class EndOfTextIndex(keras.layers.Layer):
    """`(B, L)` token ids -> `(B,)` position of the first `end_id` (where CLIP reads the text feature)."""

    def __init__(self, end_id: int, **kwargs):
        super().__init__(**kwargs)
        self.end_id = int(end_id)

    def call(self, token_ids):
        return ops.argmax(ops.cast(ops.equal(token_ids, self.end_id), "int32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape[:1]

    def get_config(self):
        return {**super().get_config(), "end_id": self.end_id}


@keras.saving.register_keras_serializable(package="kzoo")
class TakeToken(keras.layers.Layer):
    """`[(B, L, D) tokens, (B,) index]` -> `(B, D)`: each row's token at its index."""

    def call(self, inputs):
        tokens, index = inputs
        index = ops.reshape(ops.cast(index, "int32"), (-1, 1, 1))
        return ops.squeeze(ops.take_along_axis(tokens, index, axis=1), axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[0][-1])


@keras.saving.register_keras_serializable(package="kzoo")
class ContrastiveLogits(keras.layers.Layer):
    """`[(N, E) image features, (M, E) text features]` -> `(N, M)` scaled cosine similarities.

    The scale is `exp(log_scale)` (CLIP's `logit_scale`), learned, capped at 100 as CLIP does.
    """

    def __init__(self, initial_scale: float = 1 / 0.07, **kwargs):
        super().__init__(**kwargs)
        self.initial_scale = float(initial_scale)

    def build(self, input_shape):
        import math

        self.log_scale = self.add_weight(shape=(), initializer=keras.initializers.Constant(math.log(self.initial_scale)),
                                         name="log_scale")

    def scale(self):
        return ops.minimum(ops.exp(self.log_scale), MAX_LOGIT_SCALE)

    def call(self, inputs):
        images, texts = (normalize(t) for t in inputs)
        return ops.cast(self.scale(), images.dtype) * ops.matmul(images, ops.transpose(texts))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], input_shape[1][0])

    def get_config(self):
        return {**super().get_config(), "initial_scale": self.initial_scale}


def normalize(features):
    """Unit L2 norm along the last axis, computed in float32."""
    features = ops.cast(features, "float32")
    return features / ops.sqrt(ops.maximum(ops.sum(features * features, axis=-1, keepdims=True), 1e-12))


def build_image_encoder(config: CLIPConfig) -> keras.Model:
    """[0, 255] images -> `(B, embed_dim)` projected (unnormalised) features."""
    tower = vit_from_config(config.tower("vision"), num_classes=0, name="image_encoder")
    norm = tower.get_layer("normalization")
    norm.interpolation, norm.crop_mode = "bicubic", "center"  # CLIP's resize: shorter side, centre crop
    features = keras.layers.Dense(config.embed_dim, use_bias=False, name="image_projection")(tower.output)
    return keras.Model(tower.input, features, name="image_encoder")


def build_text_transformer(config: CLIPConfig) -> keras.Model:
    """`[(B, L, width) token vectors, (B,) end-of-text index]` -> `(B, embed_dim)` projected features."""
    c = config.tower("text")
    vectors = keras.Input((config.context_length, config.text_width), name="token_vectors")
    end_index = keras.Input((), dtype="int32", name="end_index")
    # A context_length x 1 "grid" with no prefix token: one learned vector per position.
    x = PositionEmbedding((config.context_length, 1), 0, initializer=keras.initializers.RandomNormal(stddev=0.01),
                          name="positional_embedding")(vectors)
    for i in range(c.depth):
        x = _block(x, c, i, 0.0)
    x = keras.layers.LayerNormalization(epsilon=c.layer_norm_epsilon, name="norm")(x)
    x = TakeToken(name="end_token")([x, end_index])
    features = keras.layers.Dense(config.embed_dim, use_bias=False, name="text_projection")(x)
    return keras.Model([vectors, end_index], features, name="text_transformer")


def build_text_encoder(config: CLIPConfig) -> keras.Model:
    """`(B, context_length)` int32 token ids -> `(B, embed_dim)` projected (unnormalised) features."""
    ids = keras.Input((config.context_length,), dtype="int32", name="token_ids")
    vectors = keras.layers.Embedding(config.vocab_size, config.text_width, name="token_embedding",
                                     embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02))(ids)
    end_index = EndOfTextIndex(config.end_id, name="end_index")(ids)
    features = build_text_transformer(config)([vectors, end_index])
    return keras.Model(ids, features, name="text_encoder")


#: Architectures for training a CLIP from scratch (`kzoo train --method clip --clip-size NAME`).
CLIP_SIZES = {
    # 32x32 images in 4x4 patches, short captions: trains on CIFAR-sized data on a CPU.
    "tiny_32": dict(image_size=32, patch_size=4, vision_width=128, vision_layers=4, vision_heads=4, vision_mlp=256,
                    context_length=24, text_width=128, text_layers=3, text_heads=4, text_mlp=256, embed_dim=128,
                    activation="gelu"),
    "vit_b_32": {},  # OpenAI's ViT-B/32 (CLIPConfig's defaults)
}


def build_clip(config: CLIPConfig | None = None, **fields) -> keras.Model:
    """A CLIP as one Keras model: `[images, token_ids]` -> `(n_images, n_texts)` logits.

    Its parts are layers: `image_encoder`, `text_encoder` (with `token_embedding` and
    `text_transformer` inside) and `logit_scale`. Load pretrained weights with `kzoo.vlm.load_clip`.

    Example:
        >>> clip = build_clip(image_size=32, patch_size=8, vision_width=32, vision_layers=1, vision_heads=2,
        ...                   vision_mlp=64, vocab_size=600, end_id=599, context_length=16, text_width=32,
        ...                   text_layers=1, text_heads=2, text_mlp=64, embed_dim=16)
        >>> [layer.name for layer in clip.layers[2:]]
        ['image_encoder', 'text_encoder', 'logit_scale']
    """
    config = (config or CLIPConfig()).replace(**fields) if fields else (config or CLIPConfig())
    images = keras.Input((config.image_size, config.image_size, 3), name="images")
    ids = keras.Input((config.context_length,), dtype="int32", name="token_ids")
    image_features = build_image_encoder(config)(images)
    text_features = build_text_encoder(config)(ids)
    logits = ContrastiveLogits(name="logit_scale")([image_features, text_features])
    return keras.Model([images, ids], logits, name="clip")


def parts(clip: keras.Model) -> tuple[keras.Model, keras.Model, keras.layers.Layer]:
    """`(image_encoder, text_encoder, logit_scale)` of a model made by `build_clip`."""
    try:
        return clip.get_layer("image_encoder"), clip.get_layer("text_encoder"), clip.get_layer("logit_scale")
    except ValueError:
        raise KzooError(f"{clip.name} is not a kzoo CLIP (no image_encoder/text_encoder/logit_scale layers)") from None
