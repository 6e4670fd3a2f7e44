"""Reusable Keras layers (keras.ops only, every backend)."""

from kzoo.layers.preprocess import ImageNormalization

__all__ = ["ImageNormalization"]
