"""The base class of kzoo augmentations: calling convention, seeds, backend switching, Compose."""

from __future__ import annotations

import random as python_random
from typing import Any, Sequence

import keras
from keras.src.utils import tracking
from keras.src.utils.backend_utils import DynamicBackend

from kzoo.augment import _rng
from kzoo.augment._backend import KERAS_OPS, is_foreign_tf_tensor, ops_for


class BatchAugmentation(keras.layers.Layer):
    """A Keras layer that augments a whole batch with per-image random parameters.

    Subclasses implement `augment(F, images, labels, key) -> (images, labels)` with `F` a
    `keras.ops`-like namespace (see `kzoo.augment._backend`) and `key` a uint32 (2,) tensor for
    `kzoo.augment._rng`. Images are float pixels in [0, 255], NHWC, batched (rank 4); an
    unbatched image (rank 3) is treated as a batch of one.

    Call with `{"images": x, "labels": y}` (returns the same keys, other keys passed through) or
    with a bare image tensor (returns a tensor). `training=False` returns the input unchanged.
    `seed=` on a call (an int or an int tensor of shape () or (2,)) makes that call stateless:
    the same seed gives the same output on every backend; without it the layer's
    `keras.random.SeedGenerator` advances once per call. In a parallel tf.data map, pass a
    per-batch seed (`map_dataset(..., seed=)`, `kzoo.data.load` does): parallel calls may read
    the generator's state before either advances it.

    Example:
        >>> flip = kzoo.augment.RandomFlip(seed=0)
        >>> out = flip({"images": keras.ops.zeros((8, 32, 32, 3)), "labels": keras.ops.eye(8)})
        >>> tuple(out["images"].shape)
        (8, 32, 32, 3)
    """

    #: Whether `augment` reads or changes labels (CutMix, MixUp).
    uses_labels = False

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        # Resolved once so that the TF twin generator (tf.data under JAX) starts from the same seed.
        self._seed_value = int(seed) if seed is not None else python_random.randint(1, 10**9)
        self.generator = keras.random.SeedGenerator(self._seed_value)
        self._foreign_generator = None
        self._jit_cache = None
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def augment(self, F, images, labels, key):
        raise NotImplementedError

    def __call__(self, data, *args, **kwargs):
        images = data["images"] if isinstance(data, dict) else data
        if is_foreign_tf_tensor(images):
            # Layer.__call__ would convert TF graph tensors to the JAX backend: bypass it.
            return self.call(data, *args, **kwargs)
        return super().__call__(data, *args, **kwargs)

    # tf.data runs map functions through AutoGraph, which would try to rewrite this plain
    # Python (and warn that it cannot). The attribute is how AutoGraph recognises code to call
    # as is (`tf.autograph.experimental.do_not_convert` sets it), without importing TF here.
    __call__.autograph_info__ = frozenset()

    def call(self, data, training: bool = True, seed: Any = None):
        is_dict = isinstance(data, dict)
        images = data["images"] if is_dict else data
        labels = data.get("labels") if is_dict else None
        if not training:
            return data
        F = ops_for(images)
        images = F.convert_to_tensor(images)
        unbatched = len(images.shape) == 3
        if unbatched:
            images = F.expand_dims(images, 0)
            labels = None if labels is None else F.expand_dims(F.convert_to_tensor(labels), 0)
        in_dtype = keras.backend.standardize_dtype(images.dtype)
        x = F.cast(images, "float32")
        y = None if labels is None else F.cast(F.convert_to_tensor(labels), "float32")
        key = self._key(F, seed)
        if F is KERAS_OPS and _eager_jax(x):
            x, y = self._jitted_augment()(x, y, key)
        else:
            x, y = self.augment(F, x, y, key)
        x = _cast_back(F, x, in_dtype)
        if unbatched:
            x = F.squeeze(x, 0)
            y = None if y is None else F.squeeze(y, 0)
        if not is_dict:
            return x
        out = dict(data)
        out["images"] = x
        if y is not None:
            out["labels"] = y
        return out

    def _key(self, F, seed):
        if seed is not None:
            return _rng.make_key(F, seed)
        generator = self.generator if F is KERAS_OPS else self._tf_generator()
        return _rng.make_key(F, generator.next())

    @tracking.no_automatic_dependency_tracking
    def _jitted_augment(self):
        # Eager JAX dispatches op by op and compiles every primitive for every new shape: one
        # RandAugment call is ~1000 ops (seconds on first use). Compiling the whole `augment`
        # once per input shape makes eager calls (tests, grids, notebooks) fast. Inside a jitted
        # train step this path is not taken: the step's trace already includes `augment`.
        # Shared by layers of the same class and config (which define `augment` completely),
        # so a fresh but identical layer does not compile again.
        if getattr(self, "_jit_cache", None) is None:
            cache_key = (type(self), repr(_without_names(self.get_config())))
            if cache_key not in _JIT_CACHE:
                import jax

                _JIT_CACHE[cache_key] = jax.jit(lambda x, y, key: self.augment(KERAS_OPS, x, y, key))
            self._jit_cache = _JIT_CACHE[cache_key]
        return self._jit_cache

    @tracking.no_automatic_dependency_tracking
    def _tf_generator(self):
        if self._foreign_generator is None:
            self._foreign_generator = keras.random.SeedGenerator(
                self._seed_value, backend=DynamicBackend("tensorflow")
            )
        return self._foreign_generator

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, data, *args, **kwargs):
        def spec(x):
            return keras.KerasTensor(x.shape, dtype=x.dtype)

        if not isinstance(data, dict):
            return spec(data)
        out = {k: spec(v) for k, v in data.items()}
        if "labels" in data:
            out["labels"] = keras.KerasTensor(data["labels"].shape, dtype="float32")
        return out

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


_JIT_CACHE: dict = {}


def _without_names(config):
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in sorted(config.items()) if k not in ("name", "seed")}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


def _eager_jax(x) -> bool:
    if keras.backend.backend() != "jax":
        return False
    from keras.src.utils.jax_utils import is_in_jax_tracing_scope

    return not is_in_jax_tracing_scope(x)


def _cast_back(F, x, dtype: str):
    if dtype == "float32":
        return x
    if "int" in dtype:
        x = F.clip(F.round(x), 0.0, 255.0)
    return F.cast(x, dtype)


@keras.saving.register_keras_serializable(package="kzoo")
class Compose(BatchAugmentation):
    """Applies augmentations in order, each with its own key derived from one per-call key.

    Example:
        >>> aug = Compose([PadCrop(4), RandomFlip()], seed=0)
        >>> aug({"images": keras.ops.zeros((2, 32, 32, 3)), "labels": keras.ops.eye(2)})["images"].shape
        (2, 32, 32, 3)
    """

    def __init__(self, layers: Sequence[BatchAugmentation], seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.layers = list(layers)
        self.uses_labels = any(layer.uses_labels for layer in self.layers)

    def augment(self, F, images, labels, key):
        for i, layer in enumerate(self.layers):
            images, labels = layer.augment(F, images, labels, _rng.fold_in(F, key, 1000 + i))
        return images, labels

    def compute_output_spec(self, data, *args, **kwargs):
        # Chained, so a layer that changes the batch (TwoViews doubles it) is seen symbolically too.
        for layer in self.layers:
            data = layer.compute_output_spec(data)
        return data

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "layers": [keras.saving.serialize_keras_object(layer) for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        config["layers"] = [keras.saving.deserialize_keras_object(c) for c in config["layers"]]
        return cls(**config)
