"""torchvision / timm ResNet state dicts (both use torchvision's module names) -> kzoo ResNet.

kzoo's layer names are torchvision's module names with "." -> "_" (`layer3_1_conv2`,
`layer2_0_downsample_0`); torchvision's `fc` is kzoo's `head`.
"""

from __future__ import annotations

import keras

from kzoo.errors import KzooError
from kzoo.weights.layouts import CONV, HEAD, LINEAR, Port


def plan_resnet(port: Port, model: keras.Model) -> None:
    for layer in model.layers:
        if not layer.weights:
            continue
        prefix = "fc" if layer.name == HEAD else layer.name.replace("_", ".")
        add_torch_layer(port, layer, prefix)
    port.head_keys = ["fc.weight", "fc.bias"]


def add_torch_layer(port: Port, layer, prefix: str, kernel_transform=None) -> None:
    """Plan one Conv2D / BatchNormalization / Dense / LayerNormalization from torch's `prefix.*`."""
    if isinstance(layer, keras.layers.Conv2D):
        port.add(layer.name, layer.kernel, f"{prefix}.weight", kernel_transform or CONV)
        if layer.use_bias:
            port.add(layer.name, layer.bias, f"{prefix}.bias")
    elif isinstance(layer, keras.layers.BatchNormalization):
        port.add(layer.name, layer.gamma, f"{prefix}.weight")
        port.add(layer.name, layer.beta, f"{prefix}.bias")
        port.add(layer.name, layer.moving_mean, f"{prefix}.running_mean")
        port.add(layer.name, layer.moving_variance, f"{prefix}.running_var")
    elif isinstance(layer, keras.layers.LayerNormalization):
        port.add(layer.name, layer.gamma, f"{prefix}.weight")
        port.add(layer.name, layer.beta, f"{prefix}.bias")
    elif isinstance(layer, keras.layers.Dense):
        port.add(layer.name, layer.kernel, f"{prefix}.weight", kernel_transform or LINEAR)
        if layer.use_bias:
            port.add(layer.name, layer.bias, f"{prefix}.bias")
    else:
        raise KzooError(
            f"{port.source}: layer {layer.name!r} ({type(layer).__name__}) of {port.model.name} "
            f"has no {port.layout} counterpart"
        )
