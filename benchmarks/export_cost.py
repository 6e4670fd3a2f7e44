"""Export time and peak memory of `kzoo export` for ViT-B/16 (random init), one fresh process per format.

Each format runs `kzoo export --checkpoint CKPT --format F` in its own process; the figures are the
export report's (export.json): seconds spent writing the file (Keras + converter, without the
verification) and the process's peak RSS, beside the whole command's wall time. The peer: a process
that only loads the same checkpoint and predicts the 16 verification images, so the export's own
memory is the difference.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/export_cost.py --out /tmp/kzoo-export-cost
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from throughput import cpu_model  # noqa: E402

BASELINE = """
import resource, sys, numpy as np, keras
from kzoo.training.api import load_checkpoint
model = load_checkpoint(sys.argv[1])
model.predict_on_batch(np.random.default_rng(0).uniform(0, 255, (16, 224, 224, 3)).astype("float32"))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="/tmp/kzoo-export-cost")
    p.add_argument("--model", default="vit_base_patch16_224")
    p.add_argument("--formats", default="onnx,litert,saved_model")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    ckpt = os.path.join(args.out, "best.keras")
    if not os.path.exists(ckpt):
        subprocess.run([sys.executable, "-c", f"import keras, kzoo; keras.utils.set_random_seed(0); "
                        f"kzoo.create_model({args.model!r}).save({ckpt!r})"], check=True, env=env)
    rows = {}
    base = subprocess.run([sys.executable, "-c", BASELINE, ckpt], check=True, env=env, capture_output=True, text=True)
    rows["load + predict 16 (peer)"] = {"peak_rss_mb": float(base.stdout.split()[-1])}
    kzoo = os.path.join(os.path.dirname(sys.executable), "kzoo")
    for fmt in args.formats.split(","):
        start = time.perf_counter()
        subprocess.run([kzoo, "-q", "export", "--checkpoint", ckpt, "--format", fmt, "--overwrite"], check=True, env=env)
        wall = time.perf_counter() - start
        with open(os.path.join(args.out, "export.json")) as f:
            report = next(r for r in json.load(f).values() if r["format"] == fmt)
        rows[fmt] = {"export_seconds": report["export_seconds"], "command_seconds": round(wall, 1),
                     "peak_rss_mb": report["peak_rss_mb"], "size_mb": round(report["size_bytes"] / 2**20, 1),
                     "max_abs_diff": report["max_abs_diff"]}
    print(f"{args.model}, {cpu_model()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')} UTC, TF backend, float32")
    print("| format | export s | whole command s | peak RSS MiB | file MiB | max abs diff |\n|---|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r.get('export_seconds', '')} | {r.get('command_seconds', '')} | {r['peak_rss_mb']:.0f} | "
              f"{r.get('size_mb', '')} | {r.get('max_abs_diff', '')} |")
    with open(os.path.join(args.out, "export_cost.json"), "w") as f:
        json.dump({"model": args.model, "cpu": cpu_model(), "rows": rows, "date": time.strftime("%Y-%m-%d")}, f, indent=1)


if __name__ == "__main__":
    main()
