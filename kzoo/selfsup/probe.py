"""`linear_probe`: the linear evaluation protocol of a frozen encoder (or a classifier's features)."""

from __future__ import annotations

import json
import logging
import os
import time

import keras
import numpy as np

from kzoo.errors import KzooError
from kzoo.training.api import load_checkpoint
from kzoo.training.evaluation import classification_report, predict_logits
from kzoo.transfer import HEAD_NAME, replace_head

log = logging.getLogger("kzoo.selfsup")

EXPECTED = "an encoder.keras from kzoo pretrain or a classifier checkpoint"


def linear_probe(encoder_path: str, data=None, out: str | None = None, epochs: int = 100, batch_size: int = 256,
                 lr: float = 1e-3, weight_decay: float = 1e-4, seed: int = 0, data_dir: str | None = None,
                 limit: int | None = None, val_split: float | None = None, classes: str | list | None = None) -> dict:
    """Top-1/top-5 of a linear classifier fitted on the frozen features of `encoder_path`.

    The encoder is either one `.keras` model with a single (batch, features) output (kzoo
    pretrain's encoder.keras) or a classifier with a `head`, whose pre-logit features are probed.
    Protocol (fixed, so figures compare across encoders): images of `data` resized to the
    encoder's input size, no augmentation; features of the train split and of the evaluation split
    (test, else val; with `val_split` a held-out part of train) computed once in inference mode;
    standardised with the train mean and std; one float32 Dense layer (zero-initialised) fitted on
    them for `epochs` passes of `batch_size` with AdamW (`lr`, decoupled `weight_decay`, biases
    exempt), the rate following a cosine decay to 0 over all steps, cross-entropy loss, `seed`
    for the shuffle. The encoder's weights are never changed. `classes` probes some classes of
    `data` only (as `kzoo.data.load`'s: "5-9", "cat,dog"), e.g. those the encoder never saw.

    Writes to `out` (default: `probe-<stem>/` beside the encoder) probe.json (the returned
    figures), class_names.json and probe.keras: the encoder followed by a `head` layer whose
    weights fold in the standardisation, usable by `kzoo eval` and `kzoo predict`.

    Example:
        >>> linear_probe("runs/simclr/encoder.keras", "sample", epochs=100)["top1"]  # doctest: +SKIP
    """
    from kzoo import data as kdata
    from kzoo.weights.preprocessing import get_preprocessing

    _check_protocol(epochs, batch_size, lr, weight_decay)
    if not os.path.exists(encoder_path):
        raise KzooError(f"encoder not found: {encoder_path}; expected {EXPECTED}")
    model = load_checkpoint(encoder_path)
    encoder, kind = feature_model(model, encoder_path)
    image_size = tuple(encoder.input_shape[1:3])
    if len(image_size) != 2 or None in image_size:
        raise KzooError(f"{encoder_path} takes inputs of shape {encoder.input_shape}: expected images of a fixed "
                        "size (batch, height, width, channels)")
    common = {"image_size": image_size, "batch_size": batch_size, "seed": seed, "data_dir": data_dir,
              "limit": limit, "shuffle": False, "drop_remainder": False, "preprocessing": get_preprocessing(encoder),
              "classes": classes}
    if val_split:
        train = kdata.load(data, "train", val_split=val_split, **common)
        evaluated_on = "val"
        held_out = kdata.load(data, "val", val_split=val_split, **common)
    else:
        splits = kdata.available_splits(data, data_dir=data_dir)
        evaluated_on = "test" if "test" in splits else "val" if "val" in splits else None
        if evaluated_on is None:
            raise KzooError(f"data {data or 'sample'} has no test or val split to evaluate the probe on; "
                            "pass val_split=0.1 (kzoo probe --val-split 0.1)")
        train = kdata.load(data, "train", **common)
        held_out = kdata.load(data, evaluated_on, **common)
    if train.num_classes < 2:
        raise KzooError(f"data {train.source} has {train.num_classes} class ({', '.join(train.class_names)}): "
                        "a linear probe needs at least two")

    start = time.perf_counter()
    log.info("computing %s features of %d train and %d %s images (encoder frozen)", kind, train.num_examples,
             held_out.num_examples, evaluated_on)
    train_x, train_y = predict_logits(encoder, train.dataset)
    test_x, test_y = predict_logits(encoder, held_out.dataset)
    feature_seconds = time.perf_counter() - start
    mean = train_x.mean(axis=0, dtype=np.float64)
    std = train_x.std(axis=0, dtype=np.float64)
    std = np.where(std > 1e-6, std, 1.0)  # a feature constant over train (a dead unit) stays unscaled

    start = time.perf_counter()
    kernel, bias = _fit_linear((train_x - mean) / std, train_y, train.num_classes, epochs, batch_size, lr,
                               weight_decay, seed)
    fit_seconds = time.perf_counter() - start
    # The standardisation folded into the layer: ((f - mean) / std) @ W + b = f @ W' + b'.
    folded_kernel = kernel / std[:, None]
    folded_bias = bias - (mean / std) @ kernel
    report = classification_report((test_x @ folded_kernel + folded_bias).astype(np.float32), test_y,
                                   train.class_names)
    train_top1 = float(np.mean(np.argmax(train_x @ folded_kernel + folded_bias, axis=1) == train_y))

    out = out or os.path.join(os.path.dirname(os.path.abspath(encoder_path)),
                              f"probe-{os.path.splitext(os.path.basename(encoder_path))[0]}")
    os.makedirs(out, exist_ok=True)
    head = keras.layers.Dense(train.num_classes, dtype="float32", name=HEAD_NAME)
    probe = keras.Model(encoder.inputs, head(encoder.outputs[0]), name=f"{encoder.name}_probe")
    head.set_weights([folded_kernel.astype(np.float32), folded_bias.astype(np.float32)])
    probe.save(os.path.join(out, "probe.keras"))
    with open(os.path.join(out, "class_names.json"), "w") as f:
        json.dump(list(train.class_names), f)
    result = {
        "top1": report["top1"], "top5": report["top5"], "loss": report["loss"], "train_top1": train_top1,
        "num_images": report["num_images"], "train_images": len(train_y), "evaluated_on": evaluated_on,
        "num_classes": train.num_classes, "feature_dim": int(train_x.shape[1]), "features": kind,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "seed": seed,
        "protocol": "frozen features, train-standardised; Dense fitted by AdamW with cosine decay, no augmentation",
        "feature_seconds": round(feature_seconds, 3), "fit_seconds": round(fit_seconds, 3),
        "encoder": encoder_path, "data": train.source, "class_subset": classes,
        "probe": os.path.join(out, "probe.keras"),
        "per_class_accuracy": report["per_class_accuracy"],
    }
    with open(os.path.join(out, "probe.json"), "w") as f:
        json.dump(result, f, indent=2)
    log.info("linear probe of %s: top-1 %.2f%% on %d %s images (train %.2f%%); written to %s", encoder_path,
             100 * result["top1"], result["num_images"], evaluated_on, 100 * train_top1, out)
    return result


def _check_protocol(epochs, batch_size, lr, weight_decay) -> None:
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise KzooError(f"linear_probe: {name} must be an int >= 1, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and isinstance(weight_decay, (int, float)) and weight_decay >= 0):
        raise KzooError(f"linear_probe: lr must be > 0 and weight_decay >= 0, got lr={lr!r}, "
                        f"weight_decay={weight_decay!r}")


def feature_model(model: keras.Model, path: str) -> tuple[keras.Model, str]:
    """The (batch, features) model to probe: the encoder itself, or a classifier without its head."""
    from kzoo.selfsup.simclr import SimCLR

    if isinstance(model, SimCLR):  # a pretraining run's last.keras: the encoder is its backbone
        log.info("%s is a whole SimCLR model: probing its backbone (the projection head left out)", path)
        model = model.backbone
    try:
        outputs, inputs = list(model.outputs), list(model.inputs)
    except (AttributeError, ValueError):
        raise KzooError(f"{path} holds a {type(model).__name__} with no functional outputs; expected {EXPECTED}") \
            from None
    if len(inputs) != 1:
        raise KzooError(f"{path} takes {len(inputs)} inputs: expected one image input ({EXPECTED})")
    if any(layer.name == HEAD_NAME for layer in model.layers):
        features = replace_head(model, 0)
        if len(features.outputs[0].shape) == 2:
            log.info("%s is a classifier: probing its pre-logit features (%d wide), its '%s' layer left out",
                     path, features.outputs[0].shape[-1], HEAD_NAME)
            return features, "pre-logit"
        outputs = features.outputs
    if len(outputs) == 1 and len(outputs[0].shape) == 2:
        return model, "encoder"
    found = ", ".join(str(tuple(o.shape)) for o in outputs)
    what = f"{len(outputs)} outputs {found}" if len(outputs) != 1 else f"an output of shape {found}" + (
        " (feature maps, not pooled features)" if len(outputs[0].shape) == 4 else "")
    raise KzooError(f"{path} has {what}: expected one (batch, features) output, {EXPECTED}")


def _fit_linear(x: np.ndarray, labels: np.ndarray, num_classes: int, epochs: int, batch_size: int, lr: float,
                weight_decay: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Kernel (D, C) and bias (C,) of a linear classifier fitted by `model.fit` on cached features."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((x.shape[1],), dtype="float32")
    dense = keras.layers.Dense(num_classes, dtype="float32", kernel_initializer="zeros", name=HEAD_NAME)
    model = keras.Model(inputs, dense(inputs), name="linear_probe")
    steps = epochs * -(-len(x) // batch_size)
    optimizer = keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(lr, steps), weight_decay=weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    log.info("fitting a linear classifier on %d features x %d images: %d epochs", x.shape[1], len(x), epochs)
    model.fit(x.astype(np.float32), np.eye(num_classes, dtype=np.float32)[labels], batch_size=batch_size,
              epochs=epochs, shuffle=True, verbose=0)
    kernel, bias = dense.get_weights()
    return kernel.astype(np.float64), bias.astype(np.float64)
