"""`kzoo export`: parser and handler (Keras-free until the command runs)."""

from __future__ import annotations

import argparse
from typing import Callable

from kzoo.errors import KzooError

FORMATS = ("saved_model", "onnx", "litert")  # kzoo.deploy.exporting.FORMATS, without importing Keras


def _batch(text: str) -> int | None:
    if text == "dynamic":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 'dynamic' or a positive integer, got {text!r}")
    return value


def _cmd_export(args: argparse.Namespace) -> int:
    from kzoo.deploy.exporting import export

    if args.tolerance is not None and not args.tolerance > 0:
        raise KzooError(f"--tolerance must be a positive number, got {args.tolerance}")
    r = export(args.checkpoint, args.out, args.format, batch=args.batch, probabilities=args.probabilities,
               overwrite=args.overwrite, tolerance=args.tolerance)
    batch = "dynamic" if r["input_shape"][0] is None else r["input_shape"][0]
    print(f"{r['format']} -> {r['path']}  ({r['size_bytes'] / 2**20:.1f} MiB, batch {batch}, {r['output']}, "
          f"{r['export_seconds']:.1f} s)")
    print(f"verified on {r['verified_images']} images ({r['verified_on']}): max |difference| "
          f"{r['max_abs_diff']:.2e} (allowed {r['allowed_diff']:.2g}), top-1 agrees on {r['top1_agree']}; "
          f"report: export.json")
    return 0


def add_commands(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `export` with the `kzoo` parser; `command` is cli's subcommand factory."""
    p = command(sub, "export", "export a checkpoint to SavedModel, ONNX or LiteRT, verified against the model",
                "Write a checkpoint as a TensorFlow SavedModel folder, an ONNX file or a LiteRT (.tflite) file.\n"
                "The exported graph takes float pixels in [0, 255] (normalisation inside) and returns logits.\n"
                "Before the command returns, the file is run by its own runtime on 16 images of the run's\n"
                "test data (else a fixed random batch) and compared with the Keras model; the figures go to\n"
                "export.json beside it. ONNX and LiteRT need: pip install 'kzoo[export]'.",
                "kzoo export --checkpoint runs/r18/best.keras --format onnx   # -> runs/r18/best.onnx",
                _cmd_export)
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or any kzoo .keras model")
    p.add_argument("--format", required=True, choices=FORMATS, help="saved_model, onnx or litert")
    p.add_argument("--out", default=None,
                   help="output file or folder (default: beside the checkpoint: best.onnx, best.tflite, "
                        "best_saved_model/)")
    p.add_argument("--batch", type=_batch, default=None, metavar="dynamic|N",
                   help="batch dimension of the exported graph (default: dynamic)")
    p.add_argument("--probabilities", action="store_true", help="return softmax probabilities instead of logits")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (default: refuse)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max |logit difference| accepted on the verification images, times max(1, max |logit|) "
                        "(default: 1e-4)")
