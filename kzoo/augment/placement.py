"""Where augmentation runs: in the tf.data pipeline (`map_dataset`) or in the training step
(`DeviceAugmentation`). With the same augmentation and seed both draw from the same
distribution (the per-batch key differs: batch index in the pipeline, step counter on device).
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np

from kzoo.augment._backend import ops_for
from kzoo.augment.base import BatchAugmentation

_AUTOTUNE = -1  # tf.data.AUTOTUNE, without importing TensorFlow here.


def map_dataset(dataset, augment: Callable | None, seed: int | None = None,
                num_parallel_calls: int = _AUTOTUNE):
    """Pipeline placement: augments a batched `tf.data.Dataset` of `(images, labels)`.

    With `seed`, batch i is augmented with the stateless key (seed, i), so the stream is
    reproducible whatever the map's parallelism and on TF or JAX; without it the layer's
    SeedGenerator advances per batch. Returns a dataset of `(images, labels)`.

    Example:
        >>> ds = map_dataset(ds.batch(128), get_preset("strong", num_classes=10, image_size=(32, 32)), seed=0)
    """
    if augment is None:
        return dataset
    if seed is None:
        def apply(images, labels):
            out = augment({"images": images, "labels": labels})
            return out["images"], out["labels"]

        apply.autograph_info__ = frozenset()  # call as is under tf.data's AutoGraph (see base.py)
        return dataset.map(apply, num_parallel_calls=num_parallel_calls)

    seed_word = np.uint32(int(seed) & 0xFFFFFFFF)

    def apply_seeded(index, batch):
        images, labels = batch
        F = ops_for(images)
        key = F.stack([F.cast(index, "uint32"), F.convert_to_tensor(seed_word, dtype="uint32")])
        out = augment({"images": images, "labels": labels}, seed=key)
        return out["images"], out["labels"]

    apply_seeded.autograph_info__ = frozenset()
    return dataset.enumerate().map(apply_seeded, num_parallel_calls=num_parallel_calls)


@keras.saving.register_keras_serializable(package="kzoo")
class DeviceAugmentation(keras.Model):
    """Device placement: wraps `model` so that `fit` augments each batch inside the train step.

    The data stays `(images, one_hot_labels)`; `train_step` hands `{"images", "labels"}` to
    `call`, which augments it (the layer's SeedGenerator is model state, so JAX's stateless step
    carries it) and returns logits with the mixed labels, which `compute_loss` and
    `compute_metrics` then use. `evaluate`/`predict` and `training=False` go straight to `model`,
    so inference is unaffected. Save `wrapper.model`, not the wrapper.

    Example:
        >>> trainer = DeviceAugmentation(model, get_preset("strong", num_classes=10, image_size=(32, 32)))
        >>> trainer.compile(optimizer="adamw", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
        >>> trainer.fit(ds)  # ds yields (images, one_hot_labels)
        >>> model.save("model.keras")
    """

    def __init__(self, model: keras.Model, augment: BatchAugmentation | None, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.augment = augment

    def call(self, inputs: Any, training: bool | None = None):
        if isinstance(inputs, dict) and "labels" in inputs:
            if training and self.augment is not None:
                inputs = self.augment(inputs, training=True)
                return {"logits": self.model(inputs["images"], training=training), "labels": inputs["labels"]}
            return self.model(inputs["images"], training=training)
        return self.model(inputs, training=training)

    def train_step(self, *args):
        # TF: train_step(data); JAX: train_step(state, data). Only the data is rewritten.
        *state, data = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        return super().train_step(*state, ({"images": x, "labels": y}, y, sample_weight))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if isinstance(y_pred, dict):
            y, y_pred = y_pred["labels"], y_pred["logits"]
        return super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, dict):
            y, y_pred = y_pred["labels"], y_pred["logits"]
        return super().compute_metrics(x, y, y_pred, sample_weight)

    def get_config(self):
        return {
            **super().get_config(),
            "model": keras.saving.serialize_keras_object(self.model),
            "augment": None if self.augment is None else keras.saving.serialize_keras_object(self.augment),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"])
        if config.get("augment") is not None:
            config["augment"] = keras.saving.deserialize_keras_object(config["augment"])
        return cls(**config)
