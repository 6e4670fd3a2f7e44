"""CoOp (Zhou et al. 2022, "Learning to Prompt for Vision-Language Models"): learned prompt context.

M context vectors replace the words of a hand-written prompt; everything else (both CLIP
encoders, the class-name tokens, the logit scale) stays frozen. Each class's prompt is
`[SOS] ctx_1..ctx_M name . [EOS]` (class token at the end), with the name in the middle of the
context or at the front instead; the context is one set for all classes (unified) or one per
class (class-specific, CSC).

The prompts are assembled without per-class Python loops: every class's token ids are embedded
once (frozen), and `PromptLearner` overwrites the context positions with a gather, so one step
runs the text encoder once over the C class prompts, whatever the batch size. After training the
text side is constant: `coop_classifier` folds it into a plain classifier (no text encoder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import keras
import numpy as np
from keras import ops

from kzoo.errors import KzooError
from kzoo.vlm.clip import normalize, parts
from kzoo.vlm.config import POSITIONS

PLACEHOLDER = "X"  # CoOp's stand-in word for a context token; its embedding is never used


@dataclass(frozen=True)
class Prompts:
    """Token ids of every class's prompt and where the context vectors go (`slots`: -1 = fixed token)."""

    ids: np.ndarray  # (C, L) int32
    slots: np.ndarray  # (C, L) int32: context index at context positions, -1 elsewhere
    end_index: np.ndarray  # (C,) int32: the <|endoftext|> position


def build_prompts(tokenizer, class_names: Sequence[str], num_context: int, position: str = "end") -> Prompts:
    """Lay out `[SOS] context + name + "." [EOS]` for every class, as CoOp does for `position`.

    Example:
        >>> p = build_prompts(tok, ["cat"], num_context=4)  # doctest: +SKIP
        >>> p.slots[0, :6].tolist()  # doctest: +SKIP
        [-1, 0, 1, 2, 3, -1]
    """
    from kzoo.vlm.zeroshot import prompt_name

    if position not in POSITIONS:
        raise KzooError(f"--position {position!r}: expected one of {', '.join(POSITIONS)}")
    if num_context < 1:
        raise KzooError(f"--context {num_context}: expected at least 1 context token")
    length, period = tokenizer.context_length, tokenizer.encode(".")
    half = num_context // 2
    ids_rows, slot_rows, ends = [], [], []
    for name in class_names:
        name_ids = tokenizer.encode(prompt_name(name))
        context = list(range(num_context))
        if position == "end":
            pieces = [(context, None), (name_ids, -1)]
        elif position == "middle":
            pieces = [(context[:half], None), (name_ids, -1), (context[half:], None)]
        else:
            pieces = [(name_ids, -1), (context, None)]
        ids, slots = [tokenizer.start_id], [-1]
        for values, fixed in pieces:
            if fixed is None:  # context positions: placeholder ids, slot = context index
                ids += [tokenizer.vocab.get(PLACEHOLDER.lower() + "</w>", tokenizer.start_id)] * len(values)
                slots += values
            else:
                ids += values
                slots += [-1] * len(values)
        ids += period + [tokenizer.end_id]
        slots += [-1] * (len(period) + 1)
        if len(ids) > length:
            raise KzooError(f"CoOp: the prompt for class {name!r} needs {len(ids)} tokens with {num_context} "
                            f"context tokens; the text encoder takes {length}: use a smaller --context")
        ends.append(len(ids) - 1)
        pad = length - len(ids)
        ids_rows.append(ids + [tokenizer.pad_id] * pad)
        slot_rows.append(slots + [-1] * pad)
    return Prompts(np.asarray(ids_rows, "int32"), np.asarray(slot_rows, "int32"), np.asarray(ends, "int32"))


@keras.saving.register_keras_serializable(package="kzoo")
class PromptLearner(keras.layers.Layer):
    """The learned context: `()` -> `(C, L, D)` prompt embeddings (fixed tokens + context vectors).

    Args:
        num_classes, context_length, width: the prompt table's shape (classes, tokens, embedding width).
        num_context: M, the learned vectors per prompt.
        class_specific: one context per class (CSC) instead of one shared by all.
    """

    def __init__(self, num_classes: int, context_length: int, width: int, num_context: int,
                 class_specific: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.context_length, self.width = int(num_classes), int(context_length), int(width)
        self.num_context, self.class_specific = int(num_context), bool(class_specific)

    def build(self, input_shape=None):
        shape = (self.num_classes, self.num_context, self.width) if self.class_specific else (self.num_context, self.width)
        # CoOp initialises random context from N(0, 0.02^2).
        self.context = self.add_weight(shape=shape, initializer=keras.initializers.RandomNormal(stddev=0.02),
                                       name="context")
        self.fixed = self.add_weight(shape=(self.num_classes, self.context_length, self.width), initializer="zeros",
                                     trainable=False, name="fixed")
        # Stored as float (every backend checkpoints it the same way); -1 marks a fixed token.
        self.slots = self.add_weight(shape=(self.num_classes, self.context_length), initializer="zeros",
                                     trainable=False, name="slots")
        self.built = True

    def call(self, inputs=None):
        slots = ops.cast(self.slots, "int32")
        index = ops.maximum(slots, 0)
        context = ops.cast(self.context, self.compute_dtype)
        if self.class_specific:  # (C, M, D) gathered along M with each class's own indices
            picked = ops.take_along_axis(context, ops.expand_dims(index, -1) * ops.ones((1, 1, self.width), "int32"),
                                         axis=1)
        else:
            picked = ops.take(context, index, axis=0)
        return ops.where(ops.expand_dims(slots >= 0, -1), picked, ops.cast(self.fixed, self.compute_dtype))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "context_length": self.context_length,
                "width": self.width, "num_context": self.num_context, "class_specific": self.class_specific}


@keras.saving.register_keras_serializable(package="kzoo")
class CoOpHead(keras.layers.Layer):
    """`(B, E)` image features -> `(B, C)` logits against the learned prompts' text features.

    Holds the `PromptLearner` and the frozen text transformer; the text encoder runs once per call
    over the C prompts (not once per image).
    """

    def __init__(self, text_transformer: keras.Model, num_classes: int, num_context: int,
                 class_specific: bool = False, logit_scale: float = 100.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(text_transformer, dict):  # from a saved config
            text_transformer = keras.saving.deserialize_keras_object(text_transformer)
        self.text_transformer = text_transformer
        self.text_transformer.trainable = False
        length, width = text_transformer.input[0].shape[1:]
        self.num_classes, self.num_context, self.class_specific = int(num_classes), int(num_context), bool(class_specific)
        self.logit_scale = float(logit_scale)
        self.prompt_learner = PromptLearner(num_classes, length, width, num_context, class_specific, name="prompt_learner")

    def build(self, input_shape):
        self.prompt_learner.build()
        self.end_index = self.add_weight(shape=(self.num_classes,), initializer="zeros", trainable=False,
                                         name="end_index")
        self.built = True

    def text_features(self):
        """`(C, E)` unit-norm text features of the current prompts."""
        prompts = self.prompt_learner(None)
        return normalize(self.text_transformer([prompts, ops.cast(self.end_index, "int32")]))

    def call(self, image_features):
        return self.logit_scale * ops.matmul(normalize(image_features), ops.transpose(self.text_features()))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "text_transformer": keras.saving.serialize_keras_object(self.text_transformer),
                "num_classes": self.num_classes, "num_context": self.num_context,
                "class_specific": self.class_specific, "logit_scale": self.logit_scale}


def build_coop(clip, class_names: Sequence[str], num_context: int = 16, position: str = "end",
               class_specific: bool = False, init: str | None = None, seed: int | None = None) -> keras.Model:
    """A CoOp classifier: frozen CLIP image encoder -> `CoOpHead` (only the context is trainable).

    Args:
        clip: a `kzoo.vlm.CLIPCheckpoint`.
        class_names: one per class, in label order.
        num_context: M context tokens (ignored with `init`: the phrase's token count is used).
        position: where the class name goes: "end", "middle" or "front".
        class_specific: one context per class (CSC).
        init: a phrase such as "a photo of a" whose token embeddings start the context.

    Example:
        >>> model = build_coop(clip, ["cat", "dog"], num_context=4)  # doctest: +SKIP
        >>> [w.name for w in model.trainable_weights]  # doctest: +SKIP
        ['context']
    """
    image_encoder, text_encoder, scale = parts(clip.model)
    embedding = text_encoder.get_layer("token_embedding")
    init_ids = clip.tokenizer.encode(init) if init else None
    if init is not None and not init_ids:
        raise KzooError(f"--context-init {init!r}: the phrase has no tokens")
    if init_ids:
        num_context = len(init_ids)
    prompts = build_prompts(clip.tokenizer, class_names, num_context, position)
    if seed is not None:
        keras.utils.set_random_seed(seed)
    image_encoder.trainable = False
    head = CoOpHead(text_encoder.get_layer("text_transformer"), len(class_names), num_context, class_specific,
                    logit_scale=float(ops.convert_to_numpy(scale.scale())), name="coop")
    features = image_encoder(image_encoder.input)
    logits = head(features)
    learner = head.prompt_learner
    learner.fixed.assign(ops.convert_to_numpy(embedding(prompts.ids)))
    learner.slots.assign(prompts.slots.astype("float32"))
    head.end_index.assign(prompts.end_index.astype("float32"))
    if init_ids:
        start = ops.convert_to_numpy(embedding(np.asarray([init_ids], "int32")))[0]
        learner.context.assign(np.broadcast_to(start, learner.context.shape) if class_specific else start)
    return keras.Model(image_encoder.input, logits, name="coop")


def coop_classifier(model: keras.Model, name: str = "coop_classifier") -> keras.Model:
    """The trained CoOp model with its text side folded into a fixed `head`: no text encoder at inference.

    Example:
        >>> fast = coop_classifier(model)  # doctest: +SKIP
    """
    from kzoo.vlm.zeroshot import classifier_from_embeddings

    head = model.get_layer("coop")
    embeddings = ops.convert_to_numpy(head.text_features())
    return classifier_from_embeddings(model.get_layer("image_encoder"), embeddings, head.logit_scale, name)


def context_norm(model: keras.Model) -> float:
    """Mean L2 norm of the learned context vectors (logged: a diverging context shows here first)."""
    context = ops.convert_to_numpy(model.get_layer("coop").prompt_learner.context)
    return float(np.linalg.norm(context.reshape(-1, context.shape[-1]), axis=-1).mean()) if context.size else math.nan
