"""SimCLR pretraining speed, pairs/s: kzoo against lightly (PyTorch, CPU) in the same run (issue 26).

Target (issue 26): kzoo's pairs/s at least 1.0x lightly's, same ResNet-18 CIFAR variant, same
batch and augmentations, alternating, median of 3.

Run (prints a markdown report and the lines for docs/benchmarks.md):
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/simclr_speed.py --batch 128 --steps 6 --warmup 2 --rounds 3
    .venv/bin/python benchmarks/simclr_speed.py --backend jax ...
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/simclr_speed.py --jit false --dtype bfloat16   # both sides bf16
    .venv/bin/python benchmarks/simclr_speed.py --batch 16 --steps 2 --warmup 1 --rounds 1 --limit 2000   # smoke test

The peer needs its own venv (benchmarks/simclr_peer.py's docstring has the recipe):
    python3.11 -m venv /tmp/lightly-peer && /tmp/lightly-peer/bin/pip install torch==2.14.1 torchvision==0.29.1 lightly

kzoo's side (a worker subprocess of this script with KERAS_BACKEND=--backend; float32, or with
`--dtype bfloat16` Keras' mixed_bfloat16 policy while lightly's step runs under
`torch.autocast("cpu", torch.bfloat16)`, its loss in float32 as kzoo's):
`kzoo.selfsup.SimCLR(kzoo.create_model("resnet18_cifar", num_classes=0))` (projection head
Dense(2048, no bias)-BN-ReLU-Dense(128), NT-Xent at temperature 0.5), compiled with
`keras.optimizers.SGD(lr=0.06 * B / 256, momentum=0.9, nesterov=False, weight_decay=5e-4)` (torch's
plain momentum; `kzoo pretrain` itself uses Nesterov) and `jit_compile=True` (XLA, as `kzoo pretrain`
compiles it; `--jit auto` is Keras' default, which under TensorFlow on a CPU-only machine means no
XLA), trained by `fit`. Data: the CIFAR-10 training split of
`../shared/data/cifar10-jpg.tar.gz`, decoded once with `kzoo.data.to_numpy` and written to an
.npz under `--work-dir` (the peer likewise decodes the JPEGs once into memory), read by
`kzoo.data.load(npz, "train", image_size=(32, 32), batch_size=B, augment="simclr", seed=0)`:
shuffled batches of B images in memory, each doubled into [view 1; view 2] (2B rows) by the
`simclr` preset inside tf.data (random resized crop 0.08-1, flip, colour jitter 0.4/0.4/0.4/0.1
with p=0.8, grayscale p=0.2, no blur at 32x32). `--kzoo-source archive` loads the JPEG archive
itself instead (its first epoch also decodes the JPEGs, and every new iterator refills the
50,000-image shuffle buffer by decoding again, before the first, untimed, step).

Two measurements per side, B pairs (2B views) per step:
- `e2e`: end to end. kzoo: `model.fit(dataset, epochs=1, steps_per_epoch=lead + N)`, augmentation
  in the tf.data pipeline; lightly: its DataLoader (augmentation per image, `--num-workers 0,2`:
  both are measured, the better median is compared);
- `step`: the train step alone, N steps on one batch of views made beforehand (kzoo:
  `fit` on `tf.data.Dataset.from_tensors(batch).repeat()`; lightly: the same tensors every step).
Each side runs as a long-lived worker that builds, compiles and warms up (`--warmup` steps of
each kind) first, both workers at once; then nothing is timed until both are ready. In each round
the workers are asked one at a time (kzoo first in odd rounds, lightly first in even rounds), the
other idles on its stdin. Each e2e measurement starts a fresh iterator and leaves its first
`--lead` step untimed (pipeline start, worker processes), then times N steps; kzoo's clock reads
the loss after each step (a host sync, so JAX's asynchronous dispatch cannot hide work).
pairs/s = B * N / seconds. The report gives the median over `--rounds`, the min-max and the
ratio kzoo / lightly of the medians.

A 2-core machine shared with other work gives unreliable figures (torch's OpenMP threads suffer
more than XLA's under load, see benchmarks/README.md): the report gives the load average.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from throughput import cpu_model  # benchmarks/ is on sys.path when a script here runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ARCHIVE = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))
DEFAULT_PEER_PYTHON = "/tmp/lightly-peer/bin/python"
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "simclr_peer.py")


# --------------------------------------------------------------------------------------------
# kzoo worker (runs under the chosen KERAS_BACKEND)
# --------------------------------------------------------------------------------------------


def reply(obj: dict) -> None:
    sys.__stdout__.write(json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def training_images(args):
    """The npz source (decoded once, cached under --work-dir) or the archive itself."""
    if args.kzoo_source == "archive":
        return args.data
    import numpy as np

    import kzoo

    os.makedirs(args.work_dir, exist_ok=True)
    stamp = int(os.path.getmtime(args.data))
    path = os.path.join(args.work_dir, f"cifar10-train-{args.limit or 'all'}-{stamp}.npz")
    if not os.path.exists(path):
        x, y, names = kzoo.data.to_numpy(args.data, "train", (32, 32), limit=args.limit or None)
        partial = path + f".{os.getpid()}.npz"
        np.savez(partial, x=x, y=y, class_names=np.array(names))
        os.replace(partial, path)
    return path


def worker_main(args) -> None:
    sys.stdout = sys.stderr  # library chatter off the reply channel
    t0 = time.perf_counter()
    import keras
    import numpy as np

    import kzoo
    from kzoo.selfsup import SimCLR

    keras.config.set_dtype_policy("mixed_bfloat16" if args.dtype == "bfloat16" else "float32")
    keras.utils.set_random_seed(0)
    source = training_images(args)
    limit = (args.limit or None) if source == args.data else None  # the npz holds the subset already
    bundle = kzoo.data.load(source, "train", image_size=(32, 32), batch_size=args.batch, augment="simclr", seed=0,
                            limit=limit)
    backbone = kzoo.create_model("resnet18_cifar", num_classes=0)
    model = SimCLR(backbone, projection_dim=128, hidden_dim=2048, temperature=0.5)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit]
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.06 * args.batch / 256, momentum=0.9,
                                                 nesterov=False, weight_decay=5e-4), jit_compile=jit)
    import tensorflow as tf

    fixed = next(iter(bundle.dataset))
    fixed = (tf.constant(fixed[0].numpy()), tf.constant(fixed[1].numpy()))
    if int(fixed[0].shape[0]) != 2 * args.batch:
        raise RuntimeError(f"expected {2 * args.batch} views per batch, got {fixed[0].shape}")
    fixed_ds = tf.data.Dataset.from_tensors(fixed).repeat()

    class Clock(keras.callbacks.Callback):
        def __init__(self, lead: int):
            super().__init__()
            self.lead, self.start, self.end = lead, None, None

        def on_train_batch_begin(self, batch, logs=None):
            if batch == self.lead:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            float(keras.ops.convert_to_numpy(logs["loss"]))  # wait for the step
            self.end = time.perf_counter()

    def run(dataset, lead: int, steps: int) -> float:
        clock = Clock(lead)
        model.fit(dataset, epochs=1, steps_per_epoch=lead + steps, verbose=0, callbacks=[clock])
        gc.collect()  # the epoch's tf.data iterator stops its prefetching before the peer is timed
        return clock.end - clock.start

    def e2e(steps: int) -> float:
        return run(bundle.dataset, args.lead, steps)

    def step(steps: int) -> float:
        return run(fixed_ds, 0, steps)

    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.warmup:
        e2e(max(args.warmup - args.lead, 1))
        step(args.warmup)
    backend = keras.backend.backend()
    lib = __import__("jax" if backend == "jax" else "tensorflow")
    trainable = lambda m: int(sum(np.prod(w.shape) for w in m.trainable_weights))
    reply({"ready": True, "setup_s": setup_s, "warmup_s": time.perf_counter() - t0,
           "params_backbone": trainable(backbone), "params": trainable(model), "images": bundle.num_examples,
           "batch": args.batch, "source": "npz (decoded once)" if source != args.data else "archive",
           "jit_compile": str(getattr(model, "jit_compile", "?")), "backend": backend,
           "versions": {"python": platform.python_version(), "kzoo": kzoo.__version__, "keras": keras.__version__,
                        backend: lib.__version__, "numpy": np.__version__}})
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        steps = int(parts[-1])
        seconds = e2e(steps) if parts[0] == "e2e" else step(steps)
        reply({"seconds": seconds, "pairs_per_s": args.batch * steps / seconds})


# --------------------------------------------------------------------------------------------
# Orchestrator (no Keras, no torch in this process)
# --------------------------------------------------------------------------------------------


class Worker:
    def __init__(self, name: str, cmd: list[str], env: dict, log_path: str) -> None:
        self.name, self.info = name, None
        self.log = open(log_path, "w")  # noqa: SIM115 (open for the worker's lifetime)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, cwd=ROOT, env=env)

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (rc {self.proc.wait()}); see {self.log.name}")
        return json.loads(line)

    def ask(self, request: str) -> dict:
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
                self.proc.wait(60)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.log.close()


def summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=128, help="pairs (images) per step; each step trains on 2x views")
    p.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each kind when a worker starts")
    p.add_argument("--lead", type=int, default=1, help="untimed steps at the start of each e2e measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--backend", choices=("tensorflow", "jax"), default="tensorflow", help="kzoo's Keras backend")
    p.add_argument("--jit", choices=("auto", "true", "false"), default="true", help="kzoo's compile(jit_compile=)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="bfloat16: Keras' mixed_bfloat16 policy for kzoo, torch.autocast for lightly")
    p.add_argument("--modes", default="e2e,step", help="e2e (with augmentation), step (train step alone)")
    p.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="the lightly venv's python")
    p.add_argument("--num-workers", default="0,2", help="lightly DataLoader workers to measure, comma-separated")
    p.add_argument("--forward", choices=("two", "concat"), default="two", help="lightly: see simclr_peer.py")
    p.add_argument("--kzoo-source", choices=("npz", "archive"), default="npz")
    p.add_argument("--data", default=DEFAULT_ARCHIVE, help="CIFAR-10 JPEG archive (its train split)")
    p.add_argument("--limit", type=int, default=0, help="only N training images (quick tests)")
    p.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "kzoo-simclr-bench"))
    p.add_argument("--log-dir", default=tempfile.gettempdir(), help="workers' stderr logs")
    p.add_argument("--json", default="", help="also write every measurement to this file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker_main(args)

    started = time.time()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    peer_workers = [int(w) for w in args.num_workers.split(",") if w.strip()]
    common = ["--batch", str(args.batch), "--warmup", str(args.warmup), "--lead", str(args.lead),
              "--data", args.data, "--limit", str(args.limit), "--dtype", args.dtype]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=args.backend)
    kzoo_cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--backend", args.backend, "--jit", args.jit,
                "--kzoo-source", args.kzoo_source, "--work-dir", args.work_dir] + common
    peer_cmd = [args.peer_python, PEER_SCRIPT, "--serve", "--num-workers", args.num_workers,
                "--forward", args.forward] + common
    if "e2e" not in modes:
        peer_cmd[peer_cmd.index("--num-workers") + 1] = ""
    stamp = datetime.datetime.now(datetime.UTC)
    log_before = os.getloadavg()
    print(f"starting workers (logs in {args.log_dir}/simclr_*.log) ...", file=sys.stderr, flush=True)
    workers = {"kzoo": Worker("kzoo", kzoo_cmd, env, os.path.join(args.log_dir, "simclr_kzoo.log")),
               "lightly": Worker("lightly", peer_cmd, dict(os.environ), os.path.join(args.log_dir, "simclr_lightly.log"))}
    try:
        for w in workers.values():
            w.info = w.read()
            print(f"  {w.name} ready: setup {w.info['setup_s']:.0f} s, warm-up {w.info['warmup_s']:.0f} s",
                  file=sys.stderr, flush=True)
        ready = time.time()
        # (side, mode, peer workers) -> list of pairs/s
        results: dict[tuple, list[float]] = {}
        loads = [os.getloadavg()[0]]
        requests = {"kzoo": [(m, None) for m in modes],
                    "lightly": [(m, w) for m in modes for w in (peer_workers if m == "e2e" else [None])]}
        for r in range(1, args.rounds + 1):
            order = ["kzoo", "lightly"] if r % 2 else ["lightly", "kzoo"]
            for mode in modes:
                for side in order:
                    for m, nw in requests[side]:
                        if m != mode:
                            continue
                        req = f"e2e {nw} {args.steps}" if side == "lightly" and m == "e2e" else f"{m} {args.steps}"
                        out = workers[side].ask(req)
                        results.setdefault((side, m, nw), []).append(out["pairs_per_s"])
                        loads.append(os.getloadavg()[0])
                        label = side + (f" (workers={nw})" if nw is not None else "")
                        print(f"  round {r} {m:4s} {label}: {out['pairs_per_s']:.2f} pairs/s ({out['seconds']:.1f} s)",
                              file=sys.stderr, flush=True)
    finally:
        for w in workers.values():
            w.close()
    finished = time.time()
    report(args, workers, results, modes, peer_workers, stamp, log_before, loads, started, ready, finished)


def report(args, workers, results, modes, peer_workers, stamp, log_before, loads, started, ready, finished) -> None:
    kz, pe = workers["kzoo"].info, workers["lightly"].info
    med = {k: summary(v) for k, v in results.items()}
    best_nw = None
    if "e2e" in modes:
        best_nw = max(peer_workers, key=lambda w: med[("lightly", "e2e", w)][0])
    command = " ".join(["python"] + [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    lines = []
    add = lines.append
    add(f"# SimCLR pretraining speed: kzoo ({kz['backend']}) vs lightly (PyTorch), CPU\n")
    add(f"{stamp:%Y-%m-%d %H:%M} UTC, {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs; load average "
        f"{log_before[0]:.2f} before the workers started, {min(loads):.2f}-{max(loads):.2f} during the timed rounds.")
    add(f"Command: `{command}`")
    add(f"Batch **{args.batch} pairs** ({2 * args.batch} views) per step, {args.dtype}, ResNet-18 CIFAR variant "
        f"(3x3/1 stem, no max-pool; backbone {kz['params_backbone']:,} trainable parameters in kzoo, "
        f"{pe['params_backbone']:,} in torch; with the projection head {kz['params']:,} / {pe['params']:,}), "
        f"SimCLR head 2048-128, NT-Xent T=0.5, SGD momentum 0.9 lr {0.06 * args.batch / 256:g} wd 5e-4; "
        f"{kz['images']:,} CIFAR-10 training images (JPEG copy) in memory.")
    add(f"kzoo: Keras backend {kz['backend']}, jit_compile={kz['jit_compile']}, data {kz['source']}; lightly: "
        f"{pe['threads']} torch threads, forward `{pe['forward']}`. {args.rounds} rounds alternating, each "
        f"measurement {args.steps} timed steps (+{args.lead} untimed lead step for e2e), after "
        f"{args.warmup} warm-up steps of each kind per worker.")
    vk, vp = kz["versions"], pe["versions"]
    add("Versions: " + ", ".join(f"{k} {v}" for k, v in vk.items()) + "; peer venv: "
        + ", ".join(f"{k} {v}" for k, v in vp.items()) + ".")
    add(f"Wall time: {finished - started:.0f} s ({ready - started:.0f} s of worker setup and warm-up).\n")
    header = "| run |"
    sep = "| --- |"
    for m in modes:
        name = {"e2e": "end to end (with augmentation)", "step": "train step alone"}[m]
        header += f" {name}: pairs/s, median | min-max |"
        sep += " ---: | ---: |"
    add(header)
    add(sep)
    rows = [("kzoo", None, f"kzoo ({kz['backend']})")]
    for w in peer_workers if "e2e" in modes else [None]:
        rows.append(("lightly", w, f"lightly {vp['lightly']}" + (f", DataLoader workers={w}" if w is not None else "")))
    for side, nw, label in rows:
        row = f"| {label} |"
        for m in modes:
            key = (side, m, nw if m == "e2e" and side == "lightly" else None)
            if side == "lightly" and m == "step" and nw not in (None, peer_workers[0]):
                row += " (same) | |"
                continue
            v, lo, hi = med[key]
            row += f" {v:.2f} | {lo:.2f}-{hi:.2f} |"
        add(row)
    ratios = {}
    row = "| **kzoo / lightly** |"
    for m in modes:
        peer_key = ("lightly", m, best_nw if m == "e2e" else None)
        ratios[m] = med[("kzoo", m, None)][0] / med[peer_key][0]
        extra = f" (vs workers={best_nw})" if m == "e2e" and len(peer_workers) > 1 else ""
        row += f" **{ratios[m]:.2f}x**{extra} | |"
    add(row)
    add("")
    if "e2e" in modes:
        verdict = "met" if ratios["e2e"] >= 1.0 else "not met"
        add(f"Issue 26 target (end-to-end pairs/s at least 1.0x lightly's, median of {args.rounds}): "
            f"**{ratios['e2e']:.2f}x, {verdict}** (lightly's better loader setting: num_workers={best_nw}).")
    text = "\n".join(lines)
    print(text)
    print("\n<!-- lines for docs/benchmarks.md -->\n")
    print("## SimCLR pretraining speed (`benchmarks/simclr_speed.py` vs lightly, issue 26)\n")
    print(text.split("\n", 2)[2])
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kzoo": kz, "lightly": pe, "rounds": args.rounds, "steps": args.steps, "batch": args.batch,
                       "results": {f"{s}/{m}/{w}": v for (s, m, w), v in results.items()}, "ratios": ratios,
                       "loads": loads, "command": command}, f, indent=1)


if __name__ == "__main__":
    main()
