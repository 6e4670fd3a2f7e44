"""SimCLR (Chen et al. 2020) as a `keras.Model` trained by `fit` on TensorFlow and JAX.

The backbone is any kzoo model built without its head (`create_model(name, num_classes=0)`:
pooled features). Each step embeds two augmented views of every image with backbone +
projection head and minimises NT-Xent (`kzoo.losses.nt_xent`). Only `compute_loss` is
overridden: Keras' own backend-specific train steps do the rest, so mixed precision, EMA,
gradient clipping, distribution and resume work as for any kzoo model.

The views come either from the data pipeline (`--augment simclr` doubles every batch into
[view 1; view 2]) or, with `augment=` set, from the same augmentation run inside the step.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from kzoo.errors import KzooError
from kzoo.losses import nt_xent


def projection_head(hidden_dim: int = 2048, output_dim: int = 128, name: str = "projector") -> keras.Sequential:
    """SimCLR's projection MLP g: Dense(hidden, no bias) -> BatchNorm -> ReLU -> Dense(output), float32 out.

    Example:
        >>> projection_head(64, 16)(keras.ops.zeros((2, 32))).shape
        (2, 16)
    """
    return keras.Sequential([
        keras.layers.Dense(hidden_dim, use_bias=False, name="hidden"),
        keras.layers.BatchNormalization(name="hidden_norm"),
        keras.layers.ReLU(name="hidden_relu"),
        # The loss normalises and divides by a small temperature: keep the embedding float32.
        keras.layers.Dense(output_dim, name="embedding", dtype="float32"),
    ], name=name)


@keras.saving.register_keras_serializable(package="kzoo")
class SimCLR(keras.Model):
    """Backbone + projection head trained with NT-Xent on two views of each image.

    Args:
        backbone: a model from images to (B, D) features (a kzoo model with `num_classes=0`).
        projection_dim: size of the embedding the loss sees (SimCLR: 128).
        hidden_dim: the projection MLP's hidden width (SimCLR: 2048).
        temperature: NT-Xent's temperature (SimCLR's CIFAR-10 runs: 0.5), > 0.
        augment: None when the data already hold [view 1; view 2] in each batch (the `simclr`
            preset in the pipeline); otherwise a two-view augmentation run inside the train step
            (`kzoo.augment.get_preset("simclr", ...)`), on the device.

    `fit` takes `(images, labels)` batches and ignores the labels. Calling the model gives the
    embeddings; `model.backbone` is the encoder to save (`kzoo pretrain` writes it as
    encoder.keras).

    Example:
        >>> backbone = kzoo.create_model("resnet18_cifar", num_classes=0)
        >>> model = SimCLR(backbone, augment=kzoo.augment.get_preset("simclr", num_classes=10, image_size=(32, 32)))
        >>> model.compile(optimizer="adamw")
        >>> model.fit(train_ds, epochs=100)  # doctest: +SKIP
        >>> model.backbone.save("encoder.keras")  # doctest: +SKIP
    """

    def __init__(self, backbone: keras.Model, projection_dim: int = 128, hidden_dim: int = 2048,
                 temperature: float = 0.5, augment: keras.layers.Layer | None = None, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise KzooError(f"SimCLR: temperature must be > 0, got {temperature!r}")
        if int(projection_dim) < 1 or int(hidden_dim) < 1:
            raise KzooError(f"SimCLR: projection_dim and hidden_dim must be >= 1, got {projection_dim}, {hidden_dim}")
        if len(backbone.outputs) != 1 or len(backbone.output.shape) != 2:
            raise KzooError(f"SimCLR: the backbone must map images to (batch, features); {backbone.name} gives "
                            f"{[tuple(o.shape) for o in backbone.outputs]}: build it with num_classes=0")
        self.backbone = backbone
        self.projection_dim, self.hidden_dim = int(projection_dim), int(hidden_dim)
        self.temperature = float(temperature)
        self.augment = augment
        self.projector = projection_head(self.hidden_dim, self.projection_dim)

    def call(self, images: Any, training: bool | None = None):
        if training and self.augment is not None:
            images = self.augment(ops.cast(images, "float32"), training=True)  # B images -> 2B views
        return self.projector(self.backbone(images, training=training), training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        half = ops.shape(y_pred)[0] // 2
        loss = nt_xent(y_pred[:half], y_pred[half:], self.temperature)
        # Layer losses (activity/kernel regularisers), if any, as Keras' own compute_loss adds them.
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def get_config(self):
        return {**super().get_config(), "backbone": keras.saving.serialize_keras_object(self.backbone),
                "projection_dim": self.projection_dim, "hidden_dim": self.hidden_dim,
                "temperature": self.temperature,
                "augment": None if self.augment is None else keras.saving.serialize_keras_object(self.augment)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        if config.get("augment") is not None:
            config["augment"] = keras.saving.deserialize_keras_object(config["augment"])
        return cls(**config)
