"""Measure converting a timm ViT-B/16 state dict (random values, written locally) into kzoo.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tests/weights/measure_conversion.py [/tmp/vit_b16.safetensors]

Prints the file size, the time of `load_weights`, and the process RSS before the model is built,
after it is built, and at its peak during the load (sampled every 5 ms).
"""

from __future__ import annotations

import os
import sys
import threading
import time

import numpy as np


def rss_mb(field: str = "VmRSS") -> float:
    """Resident memory in MiB; field "RssAnon" leaves out file-backed pages (the mmap'd checkpoint)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write_vit_b16(path: str) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    d, mlp, depth = 768, 3072, 12
    shapes = {"cls_token": (1, 1, d), "pos_embed": (1, 197, d), "patch_embed.proj.weight": (d, 3, 16, 16),
              "patch_embed.proj.bias": (d,), "norm.weight": (d,), "norm.bias": (d,), "head.weight": (1000, d), "head.bias": (1000,)}
    for i in range(depth):
        b = f"blocks.{i}"
        shapes.update({f"{b}.norm1.weight": (d,), f"{b}.norm1.bias": (d,), f"{b}.attn.qkv.weight": (3 * d, d),
                       f"{b}.attn.qkv.bias": (3 * d,), f"{b}.attn.proj.weight": (d, d), f"{b}.attn.proj.bias": (d,),
                       f"{b}.norm2.weight": (d,), f"{b}.norm2.bias": (d,), f"{b}.mlp.fc1.weight": (mlp, d),
                       f"{b}.mlp.fc1.bias": (mlp,), f"{b}.mlp.fc2.weight": (d, mlp), f"{b}.mlp.fc2.bias": (d,)})
    save_file({k: (rng.standard_normal(s, dtype=np.float32) * 0.02) for k, s in shapes.items()}, path)


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/vit_b16.safetensors"
    if not os.path.exists(path):
        write_vit_b16(path)
    import kzoo
    from kzoo.weights import load_weights

    size_mb = os.path.getsize(path) / 2**20
    start_rss = rss_mb()
    model = kzoo.create_model("vit_base_patch16_224")
    built_rss = rss_mb()
    built_anon = rss_mb("RssAnon")
    peak = [built_rss, built_anon]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb())
            peak[1] = max(peak[1], rss_mb("RssAnon"))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    load_weights(model, path)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    print(f"weights file: {size_mb:.0f} MiB; load_weights: {seconds:.2f} s")
    print(f"RSS: before build {start_rss:.0f} MiB, after build {built_rss:.0f} MiB, peak during load {peak[0]:.0f} MiB, "
          f"after load {rss_mb():.0f} MiB")
    print(f"extra memory during load: {peak[0] - built_rss:.0f} MiB = {(peak[0] - built_rss) / size_mb:.2f} x the weights; "
          f"model variables + load peak: {(peak[0] - start_rss) / size_mb:.2f} x")
    print(f"anonymous (non-file) memory added during load: {peak[1] - built_anon:.0f} MiB "
          f"= {(peak[1] - built_anon) / size_mb:.2f} x the weights (the rest is the mmap'd file)")


if __name__ == "__main__":
    main()
