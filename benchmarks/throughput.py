"""Training and inference throughput (images/s): kzoo's ViT against peers, measured in one run.

Each configuration (model x framework/backend x dtype) runs in its own long-lived worker
subprocess (Keras fixes its backend per process; timm and keras-hub live in other venvs). The
orchestrator starts all workers, lets each build its model and warm up (compilation and the
first steps are excluded), then alternates them: for every repeat it asks kzoo, then a peer,
then kzoo, then the next peer ... to time `--steps` steps; only one worker computes at a time,
the others wait on their stdin. The table gives the median over `--repeats` of
steps * batch / seconds, and the ratio to timm eager fp32 (or `--baseline`) in the same mode.

GPU (`--preset vit_b16`, on the lent device with JAX + torch + timm, see docs/benchmarks.md):
    KERAS_BACKEND=jax python3 benchmarks/throughput.py --preset vit_b16 --batch-size 256 \
        --configs kzoo_jax_bf16 --peers timm_bf16_compile,timm_bf16 --baseline timm_bf16_compile \
        --torch-python python3 --modes train,infer
    The table then adds the share of the GPU's dense bf16 peak reached in training
    (105.5 GFLOP per 224x224 training image).

Usage (from the repository root):
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/throughput.py \
        [--configs kzoo_tf,kzoo_jax] [--peers timm_fp32,timm_bf16,keras_hub_tf] \
        [--modes train,infer] [--repeats 3] [--steps 20] [--warmup 3] [--batch-size 128] \
        [--torch-python /tmp/benchenv3/bin/python] [--keras-hub-python /tmp/khenv/bin/python]

Configurations (any may go in --configs or --peers):
    kzoo_tf           kzoo vit_cifar_tiny, TensorFlow backend, jit_compile=True (XLA)
    kzoo_tf_nojit     same, jit_compile=False (tf.function graph, no XLA)
    kzoo_tf_bf16      same as kzoo_tf under keras.mixed_precision "mixed_bfloat16"
    kzoo_jax          kzoo vit_cifar_tiny, JAX backend (jit), host memory kept as `kzoo train` does
    kzoo_jax_bf16     same under "mixed_bfloat16"
    kzoo_jax_stock    same with glibc's default malloc (KZOO_KEEP_HOST_MEMORY=0)
    kzoo_jax_2dev     kzoo_jax with the CPU split into 2 devices, data-parallel over them, same global
                      batch (`KZOO_CPU_DEVICES=2 kzoo train --distribute data-parallel`)
    timm_fp32         timm VisionTransformer, eager PyTorch, fp32
    timm_fp32_keepmem same with glibc set to keep freed memory, as kzoo does under JAX
    timm_bf16         same under torch.autocast("cpu", dtype=torch.bfloat16)
    keras_hub_tf      keras_hub.models.ViTBackbone + Dense head on the class token, TF, XLA
    keras_plain_tf    a plain Keras ViT (keras.layers.MultiHeadAttention), TF, XLA
    keras_plain_jax   the same plain Keras ViT under JAX
All: image 32, patch 4, dim 128, depth 4, heads 2, MLP 256, 10 classes; AdamW (lr 1e-3, wd
0.05), softmax cross-entropy on logits with one-hot labels; one fixed random batch reused each
step (no input pipeline in the measurement). Keras training is `model.train_on_batch` (it
returns the loss as a number, so every step is synchronised); Keras inference is
`model.predict_on_batch`. timm training is zero_grad/forward/loss/backward/step; inference is
`torch.inference_mode()` forward. Threads: each framework's default (all cores); `--torch-threads`
sets timm's.

Missing environments are reported and their configurations skipped, not fatal.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE, PATCH, DIM, DEPTH, HEADS, MLP, CLASSES = 32, 4, 128, 4, 2, 256, 10
# --preset: the network every configuration builds, and kzoo's registry name for it.
PRESETS = {
    "cifar": ("vit_cifar_tiny", (32, 4, 128, 4, 2, 256, 10)),
    "vit_b16": ("vit_base_patch16_224", (224, 16, 768, 12, 12, 3072, 1000)),
}
TRAIN_GFLOP_PER_IMAGE = {"vit_b16": 105.5}  # 3x the forward pass (kzoo models --table)
# Dense bf16 tensor-core peak, TFLOP/s, from NVIDIA's data sheets (without sparsity).
GPU_BF16_PEAK = {"H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "H200": 989.4, "A100": 312.0}

# name -> (family, backend, dtype, description)
CONFIGS = {
    "kzoo_tf": ("kzoo", "tensorflow", "float32", "kzoo ViT (TF, XLA)"),
    "kzoo_tf_nojit": ("kzoo", "tensorflow-nojit", "float32", "kzoo ViT (TF, no XLA)"),
    "kzoo_tf_bf16": ("kzoo", "tensorflow", "mixed_bfloat16", "kzoo ViT (TF, XLA)"),
    "kzoo_jax": ("kzoo", "jax", "float32", "kzoo ViT (JAX)"),
    "kzoo_jax_stock": ("kzoo", "jax", "float32", "kzoo ViT (JAX, glibc's default malloc)"),
    "kzoo_jax_bf16": ("kzoo", "jax", "mixed_bfloat16", "kzoo ViT (JAX)"),
    "kzoo_jax_2dev": ("kzoo", "jax", "float32", "kzoo ViT (JAX, CPU split in 2 devices, data-parallel)"),
    "timm_fp32": ("timm", "torch", "float32", "timm ViT (eager)"),
    "timm_fp32_keepmem": ("timm", "torch", "float32", "timm ViT (eager, malloc keeps freed memory)"),
    "timm_bf16": ("timm", "torch", "bf16 autocast", "timm ViT (eager)"),
    "timm_bf16_compile": ("timm", "torch", "bf16 autocast", "timm ViT (torch.compile)"),
    "keras_hub_tf": ("keras_hub", "tensorflow", "float32", "keras-hub ViTBackbone (TF, XLA)"),
    "keras_plain_tf": ("keras_plain", "tensorflow", "float32", "plain Keras ViT, keras MHA (TF, XLA)"),
    "keras_plain_jax": ("keras_plain", "jax", "float32", "plain Keras ViT, keras MHA (JAX)"),
}
BASELINE = "timm_fp32"
# kzoo's JAX workers keep freed host memory as `kzoo train` does (kzoo.training.host_memory);
# these two isolate that: kzoo without it, and timm with the same glibc settings (as environment).
# kzoo_jax_2dev is `KZOO_CPU_DEVICES=2 kzoo train --distribute data-parallel` at the same global batch.
WORKER_ENV = {
    "kzoo_jax_stock": {"KZOO_KEEP_HOST_MEMORY": "0"},
    "kzoo_jax_2dev": {"KZOO_CPU_DEVICES": "2"},
    "timm_fp32_keepmem": {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 30), "MALLOC_ARENA_MAX": "1"},
}


# --------------------------------------------------------------------------------------------
# Workers: build, warm up, then answer "train N" / "infer N" lines with elapsed seconds.
# --------------------------------------------------------------------------------------------


def _reply(obj) -> None:
    sys.__stdout__.write(json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def set_preset(name: str) -> str:
    """Point the module-level network settings at a preset; returns kzoo's model name."""
    global IMAGE, PATCH, DIM, DEPTH, HEADS, MLP, CLASSES
    model_name, (IMAGE, PATCH, DIM, DEPTH, HEADS, MLP, CLASSES) = PRESETS[name]
    return model_name


def gpu_bf16_peak(device_name: str) -> float | None:
    for key, peak in GPU_BF16_PEAK.items():  # most specific first (dict order)
        if key in device_name:
            return peak
    return None


def _plain_keras_vit(keras):
    """A ViT written with stock Keras layers only (keras.layers.MultiHeadAttention)."""

    class ClsPos(keras.layers.Layer):
        def build(self, shape):
            self.cls = self.add_weight(shape=(1, 1, DIM), initializer="zeros", name="cls")
            self.pos = self.add_weight(shape=(1, shape[1] + 1, DIM), initializer="random_normal", name="pos")

        def call(self, x):
            cls = keras.ops.broadcast_to(keras.ops.cast(self.cls, x.dtype), (keras.ops.shape(x)[0], 1, DIM))
            return keras.ops.concatenate([cls, x], axis=1) + keras.ops.cast(self.pos, x.dtype)

    L = keras.layers
    inputs = keras.Input((IMAGE, IMAGE, 3))
    x = L.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = L.Conv2D(DIM, PATCH, strides=PATCH)(x)
    x = L.Reshape(((IMAGE // PATCH) ** 2, DIM))(x)
    x = ClsPos()(x)
    for _ in range(DEPTH):
        y = L.LayerNormalization(epsilon=1e-6)(x)
        y = L.MultiHeadAttention(HEADS, DIM // HEADS)(y, y)
        x = L.Add()([x, y])
        y = L.LayerNormalization(epsilon=1e-6)(x)
        y = L.Dense(MLP, activation="gelu")(y)
        y = L.Dense(DIM)(y)
        x = L.Add()([x, y])
    x = L.LayerNormalization(epsilon=1e-6)(x)
    x = x[:, 0]
    outputs = L.Dense(CLASSES)(x)
    return keras.Model(inputs, outputs)


def worker_keras(name: str, batch: int, warmup: int, model_name: str) -> None:
    family, backend, dtype, _ = CONFIGS[name]
    jit = not backend.endswith("-nojit")
    os.environ["KERAS_BACKEND"] = backend.split("-")[0]
    import keras
    import numpy as np

    if dtype != "float32":
        keras.mixed_precision.set_global_policy(dtype)
    if family == "kzoo":
        sys.path.insert(0, ROOT)
        import kzoo
        from kzoo.training import distribute
        from kzoo.training.host_memory import keep_host_memory_for_jax_cpu

        keep_host_memory_for_jax_cpu()  # what `kzoo train` does first (a no-op off JAX-on-CPU)
        distribute.split_cpu_for_jax()  # KZOO_CPU_DEVICES, as `kzoo train` reads it
        if distribute.cpu_device_count() > 1:
            distribute.setup("data-parallel")
        model = kzoo.create_model(model_name, num_classes=CLASSES)
    elif family == "keras_hub":
        import keras_hub

        backbone = keras_hub.models.ViTBackbone(
            image_shape=(IMAGE, IMAGE, 3), patch_size=PATCH, num_layers=DEPTH, num_heads=HEADS,
            hidden_dim=DIM, mlp_dim=MLP,
        )
        inputs = keras.Input((IMAGE, IMAGE, 3))
        x = backbone(inputs)[:, 0]
        model = keras.Model(inputs, keras.layers.Dense(CLASSES)(x))
    else:
        model = _plain_keras_vit(keras)
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.05),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True),
        jit_compile=jit if backend.startswith("tensorflow") else "auto",
    )
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, IMAGE, IMAGE, 3)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, batch)]
    versions = {"keras": keras.__version__, "backend": keras.backend.backend()}
    if backend.startswith("tensorflow"):
        import tensorflow as tf

        x, y = tf.constant(x), tf.constant(y)
    else:  # the batch lives on the accelerator, as timm's does: no host->device copy per step
        import jax

        dist = keras.distribution.distribution()  # None, or kzoo_jax_2dev's batch split over devices
        x, y = (jax.device_put(t, dist.get_data_layout(t.shape).backend_layout if dist else None) for t in (x, y))
        versions.update(jax=jax.__version__, device=str(jax.devices()[0].device_kind))
    steps = {"train": lambda: model.train_on_batch(x, y), "infer": lambda: np.asarray(model.predict_on_batch(x))}
    _serve(steps, warmup, params=model.count_params(), versions=versions)


def worker_timm(name: str, batch: int, warmup: int) -> None:
    import timm
    import torch
    from timm.models.vision_transformer import VisionTransformer

    bf16 = CONFIGS[name][2] != "float32"
    if int(os.environ.get("KZOO_BENCH_TORCH_THREADS", "0")) > 0:
        torch.set_num_threads(int(os.environ["KZOO_BENCH_TORCH_THREADS"]))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = VisionTransformer(img_size=IMAGE, patch_size=PATCH, embed_dim=DIM, depth=DEPTH, num_heads=HEADS,
                              mlp_ratio=MLP / DIM, num_classes=CLASSES).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, IMAGE, IMAGE, device=device)
    y = torch.nn.functional.one_hot(torch.randint(0, CLASSES, (batch,)), CLASSES).float().to(device)
    forward = torch.compile(model) if name.endswith("_compile") else model

    def ctx():
        return torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)

    def train():
        model.train()
        opt.zero_grad(set_to_none=True)
        with ctx():
            loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    def infer():
        model.eval()
        with torch.inference_mode(), ctx():
            return forward(x).float().sum().item()

    versions = {"torch": torch.__version__, "timm": timm.__version__, "threads": torch.get_num_threads()}
    if device == "cuda":
        versions["device"] = torch.cuda.get_device_name()
    _serve({"train": train, "infer": infer}, warmup, params=sum(p.numel() for p in model.parameters()),
           versions=versions)


def _serve(steps, warmup: int, **info) -> None:
    t0 = time.perf_counter()
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    _reply({"ready": True, "warmup_s": time.perf_counter() - t0, **info})
    for line in sys.stdin:
        mode, n = line.split()
        fn = steps[mode]
        start = time.perf_counter()
        for _ in range(int(n)):
            fn()
        _reply({"seconds": time.perf_counter() - start})


def worker_main(name: str, batch: int, warmup: int, preset: str) -> None:
    sys.stdout = sys.stderr  # keep library chatter off the reply channel
    model_name = set_preset(preset)
    try:
        if CONFIGS[name][0] == "timm":
            worker_timm(name, batch, warmup)
        else:
            worker_keras(name, batch, warmup, model_name)
    except Exception as exc:  # report, let the orchestrator skip this configuration
        _reply({"error": f"{type(exc).__name__}: {exc}"})
        raise


# --------------------------------------------------------------------------------------------
# Orchestrator
# --------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, name: str, python: str, args) -> None:
        self.name, self.python, self.info, self.times = name, python, None, {}
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KZOO_BENCH_TORCH_THREADS=str(args.torch_threads),
                   **WORKER_ENV.get(name, {}))
        # JAX grabs 75% of GPU memory at start; leave room for the torch worker on the same GPU.
        env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")
        cmd = [python, os.path.abspath(__file__), "--worker", name, "--batch-size", str(args.batch_size),
               "--warmup", str(args.warmup), "--preset", args.preset]
        self.log = open(os.path.join(args.log_dir, f"{name}.log"), "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, cwd=ROOT, env=env)

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            return {"error": f"worker exited (rc {self.proc.wait()}); see {self.log.name}"}
        return json.loads(line)

    def run(self, mode: str, steps: int) -> float:
        self.proc.stdin.write(f"{mode} {steps}\n")
        self.proc.stdin.flush()
        reply = self.read()
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["seconds"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def python_for(name: str, args) -> str | None:
    family = CONFIGS[name][0]
    python = {"timm": args.torch_python, "keras_hub": args.keras_hub_python}.get(family, sys.executable)
    return shutil.which(python) if python else None


def interleave(ours: list[str], peers: list[str]) -> list[str]:
    """kzoo, peer, kzoo, peer, ...: each peer sits next to a kzoo configuration."""
    order, n = [], max(len(ours), len(peers))
    for i in range(n):
        if i < len(ours):
            order.append(ours[i])
        if i < len(peers):
            order.append(peers[i])
    return order


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="kzoo_tf,kzoo_jax", help="kzoo configurations (comma-separated)")
    p.add_argument("--peers", default="timm_fp32,timm_bf16,keras_hub_tf", help="peer configurations")
    p.add_argument("--modes", default="train,infer")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per mode after building")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cifar",
                   help="cifar: the 546,186-parameter CIFAR ViT (CPU); vit_b16: ViT-B/16 at 224x224 "
                        "(for a GPU: timm runs on CUDA when torch sees one, JAX on its default device)")
    p.add_argument("--torch-python", default=next(
        (p for p in ("/tmp/benchenv3/bin/python", "/tmp/benchenv/bin/python", "/tmp/torchenv/bin/python")
         if os.path.exists(p)),
        "/tmp/benchenv/bin/python"))
    p.add_argument("--torch-threads", type=int, default=0,
                   help="torch.set_num_threads for timm workers; 0 keeps torch's default (all cores). "
                        "On a loaded machine torch's 2-thread OpenMP collapses (see README)")
    p.add_argument("--keras-hub-python", default="/tmp/khenv/bin/python")
    p.add_argument("--baseline", default=BASELINE, help="configuration the ratio column divides by")
    p.add_argument("--log-dir", default=os.environ.get("TMPDIR", "/tmp"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker_main(args.worker, args.batch_size, args.warmup, args.preset)
        return 0

    ours = [c for c in args.configs.split(",") if c]
    peers = [c for c in args.peers.split(",") if c]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [c for c in ours + peers if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    notes, workers = [], []
    for name in interleave(ours, peers):
        python = python_for(name, args)
        if python is None:
            notes.append(f"{name}: skipped, no interpreter (--torch-python / --keras-hub-python)")
            continue
        workers.append(Worker(name, python, args))
    started = time.time()
    for w in list(workers):  # they build and warm up concurrently; timing starts after all are ready
        w.info = w.read()
        if "error" in w.info:
            notes.append(f"{w.name}: skipped, {w.info['error']}")
            w.close()
            workers.remove(w)
        else:
            print(f"# ready {w.name}: {w.info}", file=sys.stderr, flush=True)
    loads = [os.getloadavg()]
    t_start = time.time()
    for mode in modes:
        for r in range(args.repeats):
            for w in list(workers):
                try:
                    sec = w.run(mode, args.steps)
                except RuntimeError as exc:
                    notes.append(f"{w.name}: failed in {mode}: {exc}")
                    w.close()
                    workers.remove(w)
                    continue
                w.times.setdefault(mode, []).append(args.steps * args.batch_size / sec)
                print(f"# {mode} repeat {r + 1} {w.name}: {w.times[mode][-1]:.0f} img/s", file=sys.stderr,
                      flush=True)
            loads.append(os.getloadavg())
    measure_s = time.time() - t_start
    for w in workers:
        w.close()

    out = []
    out.append(f"- machine: {platform.platform()}; {cpu_model()}; {os.cpu_count()} logical cores")
    out.append(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC")
    out.append(f"- command: `{' '.join(shlex.quote(a) for a in [os.path.relpath(sys.executable, ROOT), 'benchmarks/throughput.py', *sys.argv[1:]])}`")
    out.append(f"- load average (1 min) during measurement: {' '.join(f'{l[0]:.1f}' for l in loads)} "
               f"(start, then after each repeat); measurement {measure_s:.0f} s, setup {t_start - started:.0f} s")
    out.append(f"- {args.repeats} repeats x {args.steps} steps per mode, {args.warmup} warm-up steps excluded; "
               "order per repeat: " + ", ".join(w.name for w in workers))
    for w in workers:
        info = {k: v for k, v in w.info.items() if k not in ("ready",)}
        out.append(f"- {w.name}: {json.dumps(info)}")
    out.append("")
    gflop = TRAIN_GFLOP_PER_IMAGE.get(args.preset)
    out.append(f"| model | mode | batch | dtype | backend | img/s median | min-max | ratio to {args.baseline} |"
               + (" % of bf16 peak (train) |" if gflop else ""))
    out.append("|---|---|---|---|---|---|---|---|" + ("---|" if gflop else ""))
    for mode in modes:
        base = next((w for w in workers if w.name == args.baseline and mode in w.times), None)
        base_med = statistics.median(base.times[mode]) if base else None
        for w in workers:
            if mode not in w.times:
                continue
            family, backend, dtype, desc = CONFIGS[w.name]
            med = statistics.median(w.times[mode])
            ratio = f"{med / base_med:.2f}x" if base_med else "n/a"
            row = (f"| {desc} | {mode} | {args.batch_size} | {dtype} | {backend} | {med:.0f} | "
                   f"{min(w.times[mode]):.0f}-{max(w.times[mode]):.0f} | {ratio} |")
            if gflop:
                peak = gpu_bf16_peak(w.info.get("versions", {}).get("device", ""))
                row += f" {100 * med * gflop / (peak * 1e3):.1f}% |" if peak and mode == "train" else " n/a |"
            out.append(row)
    for n in notes:
        out.append(f"\nNote: {n}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
