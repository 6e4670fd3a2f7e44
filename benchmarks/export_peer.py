"""Export timm's resnet50 and vit_small_patch16_224 to ONNX: the peer of benchmarks/export_onnx.py.

timm models as `timm.create_model(name, pretrained=False)` builds them (random init after
`torch.manual_seed(0)`, eval mode), exported with `torch.onnx.export` in float32: input `images`,
(N, 3, 224, 224) NCHW, already normalised (timm's graph has no normalisation; kzoo's has), output
`logits` (N, 1000), the batch axis dynamic. The dynamo exporter (torch's default, needs
onnxscript) is tried first and the TorchScript exporter (`dynamo=False`) is the fallback;
`peer_export.json` records which one wrote each file, the opset and the versions. Beside each
file, `<name>_check.npz` holds a fixed input (2 images, seed 0) and torch's logits for it, so
export_onnx.py can check ONNX Runtime's answer.

It needs no kzoo and no Keras, and runs in its own venv (torch 2.14.1 is the newest the registry
allows here; keep it):
    /tmp/lightly-peer/bin/pip install timm onnx onnxscript
Run:
    /tmp/lightly-peer/bin/python benchmarks/export_peer.py --out /tmp/kzoo-export-bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import timm
import torch

NAMES = ("resnet50", "vit_small_patch16_224")


def export_one(model: torch.nn.Module, x: torch.Tensor, path: str, opset: int | None) -> tuple[str, str]:
    """Write `model` to `path` with a dynamic batch axis; returns (exporter used, dynamo error if any)."""
    common = {"input_names": ["images"], "output_names": ["logits"], "opset_version": opset}
    try:
        torch.onnx.export(model, (x,), path, dynamo=True, external_data=False,
                          dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},), **common)
        return "dynamo", ""
    except Exception as err:  # noqa: BLE001 (any dynamo failure: fall back to the TorchScript exporter)
        error = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        print(f"  dynamo export failed ({error[:200]}); retrying with dynamo=False", flush=True)
        torch.onnx.export(model, (x,), path, dynamo=False, dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
                          **common)
        return "torchscript (dynamo=False)", error


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="folder for timm_<name>.onnx and peer_export.json")
    p.add_argument("--names", default=",".join(NAMES))
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's own)")
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    import onnx

    files = {}
    for name in [n.strip() for n in args.names.split(",") if n.strip()]:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval()
        path = os.path.join(args.out, f"timm_{name}.onnx")
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32))
        start = time.perf_counter()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            exporter, dynamo_error = export_one(model, x, path, args.opset)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            logits = model(x).numpy()
        check = os.path.join(args.out, f"timm_{name}_check.npz")
        np.savez(check, x=x.numpy(), logits=logits)
        proto = onnx.load(path, load_external_data=False)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        files[name] = {"path": os.path.abspath(path), "check": os.path.abspath(check), "exporter": exporter,
                       "dynamo_error": dynamo_error, "opset": opset, "export_seconds": round(seconds, 2),
                       "size_bytes": os.path.getsize(path), "params": sum(p.numel() for p in model.parameters()),
                       "input": "images (N, 3, 224, 224) float32, normalised", "output": "logits (N, 1000)"}
        print(f"  {name}: {exporter}, opset {opset}, {seconds:.1f} s -> {path}", flush=True)
    info = {"torch": torch.__version__, "timm": timm.__version__, "onnx": onnx.__version__,
            "onnxscript": _version("onnxscript"), "python": platform.python_version(), "seed": 0, "files": files}
    with open(os.path.join(args.out, "peer_export.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1))


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


if __name__ == "__main__":
    main()
