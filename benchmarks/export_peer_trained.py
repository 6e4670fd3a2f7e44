"""benchmarks/export_peer.py with timm's model given trained-like BatchNorm/bias values first (issue 31).

Mirrors export_onnx.py's `trained_like` for kzoo: every BatchNorm gamma = 1 + 0.1 N(0,1), beta = 0.1 N(0,1)
(rng seed 1), and any bias = 0.1 N(0,1). Random init leaves BN beta = 0, mean = 0, var = 1, so torch.onnx's
BN folding gives zero conv biases, which the exported file then lacks (and zero_init_last's gamma = 0 zeroes
each block's last conv), unlike a trained model's file. Usage (peer venv):
    /tmp/lightly-peer/bin/python benchmarks/export_peer_trained.py --out DIR --names resnet50
then benchmarks/export_onnx.py --out DIR reuses that peer file (existing files in --out are kept).
"""
import os
import sys

import numpy as np
import timm
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_peer  # noqa: E402

_create = timm.create_model


def trained_like(model: torch.nn.Module) -> None:
    rng = np.random.default_rng(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(torch.from_numpy(1 + 0.1 * rng.standard_normal(module.weight.shape)).float())
                module.bias.copy_(torch.from_numpy(0.1 * rng.standard_normal(module.bias.shape)).float())
            elif getattr(module, "bias", None) is not None and isinstance(module.bias, torch.nn.Parameter):
                module.bias.copy_(torch.from_numpy(0.1 * rng.standard_normal(module.bias.shape)).float())


def create_model(name, **kwargs):
    model = _create(name, **kwargs)
    trained_like(model)
    return model


timm.create_model = create_model
if __name__ == "__main__":
    export_peer.main()
