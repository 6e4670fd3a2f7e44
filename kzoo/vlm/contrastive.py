"""Contrastive CLIP training on labelled images: captions made from class names and templates.

`CaptionedCLIP` wraps a CLIP for `model.fit` on kzoo's `(images, one_hot)` batches: each image gets a
caption `template.format(class name)`, the template drawn at random (a seeded Keras generator, so
the draw is model state and JAX's stateless step carries it). Images of the same class in a batch
share a caption's meaning, so `ClassAwareContrastiveLoss` counts every same-class pair as a
positive (the targets of a row are spread over them) instead of CLIP's one-positive diagonal,
which would push apart captions that say the same thing. Save `wrapper.clip`, not the wrapper.
"""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
from keras import ops


def caption_table(tokenizer, class_names: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """`(C * T, L)` token ids: class c's caption with template t is row `c * T + t`."""
    from kzoo.vlm.zeroshot import prompt_name

    return tokenizer([t.format(prompt_name(name)) for name in class_names for t in templates])


@keras.saving.register_keras_serializable(package="kzoo")
class ClassAwareContrastiveLoss(keras.losses.Loss):
    """Symmetric cross-entropy of `(B, B)` image-caption logits against same-class targets.

    Row i's target spreads evenly over the captions of images with i's class (i's own among them);
    with all classes distinct it is CLIP's loss exactly.

    Example:
        >>> loss = ClassAwareContrastiveLoss()
        >>> y = keras.ops.eye(3)
        >>> float(loss(y, 10.0 * keras.ops.eye(3))) < 0.01
        True
    """

    def __init__(self, name: str = "class_aware_contrastive", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        labels = ops.cast(y_true, "float32")
        same = ops.matmul(labels, ops.transpose(labels))
        targets = same / ops.sum(same, axis=-1, keepdims=True)
        logits = ops.cast(y_pred, "float32")
        images = ops.sum(-targets * ops.log_softmax(logits, axis=-1), axis=-1)
        captions = ops.sum(-targets * ops.log_softmax(ops.transpose(logits), axis=-1), axis=-1)
        return 0.5 * (images + captions)


class CaptionedCLIP(keras.Model):
    """Training view of a CLIP (`build_clip`): `(images, one_hot)` in, `(B, B)` logits out.

    Example:
        >>> trainer = CaptionedCLIP(clip_model, caption_table(tok, names, templates), len(templates))  # doctest: +SKIP
        >>> trainer.compile(optimizer="adamw", loss=ClassAwareContrastiveLoss())  # doctest: +SKIP
        >>> trainer.fit(dataset)  # doctest: +SKIP
    """

    def __init__(self, clip: keras.Model, captions: np.ndarray, num_templates: int, seed: int | None = None,
                 **kwargs):
        super().__init__(name="captioned_clip", **kwargs)
        self.clip = clip
        self.num_templates = int(num_templates)
        self.captions = ops.convert_to_tensor(np.asarray(captions, "int32"))
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None):
        if not isinstance(inputs, dict):  # Keras' symbolic build passes the images alone: caption 0 each
            inputs = {"images": inputs, "labels": ops.one_hot(ops.zeros(ops.shape(inputs)[:1], "int32"),
                                                              self.captions.shape[0] // self.num_templates)}
        # JAX without jit hands the batch over as numpy arrays: Keras refuses to mix those with the
        # caption ids (a JAX array) in one call argument.
        images, labels = ops.convert_to_tensor(inputs["images"]), ops.convert_to_tensor(inputs["labels"])
        classes = ops.cast(ops.argmax(labels, axis=-1), "int32")
        batch = ops.shape(classes)[0]
        if training:
            template = keras.random.randint((batch,), 0, self.num_templates, seed=self.seed_generator, dtype="int32")
        else:  # a fixed caption per position: validation losses compare across epochs
            template = ops.mod(ops.arange(batch, dtype="int32"), self.num_templates)
        ids = ops.take(self.captions, classes * self.num_templates + template, axis=0)
        return self.clip([images, ids], training=training)

    def train_step(self, *args):
        # TF: train_step(data); JAX: train_step(state, data). Only the data is rewritten.
        *state, data = args
        return super().train_step(*state, self._captioned(data))

    def test_step(self, *args):
        *state, data = args
        return super().test_step(*state, self._captioned(data))

    @staticmethod
    def _captioned(data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return {"images": x, "labels": y}, y, sample_weight

    def save(self, *args, **kwargs):  # checkpoints hold the CLIP alone
        return self.clip.save(*args, **kwargs)
