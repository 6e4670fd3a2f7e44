"""torchvision and timm VGG state dicts -> kzoo VGG (classic head).

Both number the convolutional part `features.{i}` in module order (conv, [bn], relu, ..., pool).
torchvision's classifier is `classifier.0/.3/.6` (Linear); timm's is `pre_logits.fc1` (a 7x7
conv), `pre_logits.fc2` (a 1x1 conv) and `head.fc`. torch flattens NCHW where Keras flattens
NHWC, so fc1's input rows are permuted (`nchw_flatten_linear`).
"""

from __future__ import annotations

import keras

from kzoo.errors import KzooError
from kzoo.weights.layouts import CONV1X1_AS_LINEAR, HEAD, LINEAR, Port, layer as get_layer, nchw_flatten_linear
from kzoo.weights.resnet import add_torch_layer


def plan_vgg(port: Port, model: keras.Model, timm: bool) -> None:
    index = 0
    for layer in model.layers:
        if layer.name == "pool":
            break
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization)):
            add_torch_layer(port, layer, f"features.{index}")
            index += 1
        elif isinstance(layer, (keras.layers.ReLU, keras.layers.MaxPooling2D)):
            index += 1
    pool = get_layer(model, "pool")
    fc1 = get_layer(model, "fc1")
    if pool is None:  # features_only model: the classifier has no counterpart
        port.ignored_prefixes += ["classifier.", "pre_logits.", "head."]
        return
    if fc1 is None:
        raise KzooError(
            f"{port.source}: {model.name} has no classic VGG head (fc1/fc2); build it with head='classic' "
            "to load a torchvision/timm VGG checkpoint"
        )
    _, h, w, _ = pool.output.shape
    names = (
        ("pre_logits.fc1", "pre_logits.fc2", "head.fc") if timm else ("classifier.0", "classifier.3", "classifier.6")
    )
    add_torch_layer(port, fc1, names[0], nchw_flatten_linear(h, w))
    add_torch_layer(port, model.get_layer("fc2"), names[1], CONV1X1_AS_LINEAR if timm else LINEAR)
    head = get_layer(model, HEAD)
    if head is not None:
        add_torch_layer(port, head, names[2])
    port.head_keys = [f"{names[2]}.weight", f"{names[2]}.bias"]
