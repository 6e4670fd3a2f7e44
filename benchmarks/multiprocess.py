"""Multi-process training on this CPU (issue 32): scaling beside one process, and the all-reduce.

Part `scaling`: the same global batch trained three ways, under Keras' JAX backend, rounds
alternating (the arm order rotates each round), median img/s of the rounds:
- `1proc`: one `kzoo train` process on every core (one JAX CPU device);
- `1proc_2dev`: one process, the CPU split into 2 JAX devices (KZOO_CPU_DEVICES=2, data-parallel);
- `2proc`: `kzoo launch --nproc 2 --cpus-per-process 1`: two processes pinned to one core each,
  gradients all-reduced over gloo on 127.0.0.1.
img/s is metrics.json's `images_per_sec`: the median over epochs of the training steps alone
(compile and validation left out). Ratio `2proc / 1proc` = the cost of crossing processes.

Part `allreduce`: two processes (jax.distributed, gloo, 127.0.0.1) sum float32 buffers of the sizes
of ResNet-50's and ViT-B/16's gradients (and smaller ones) across the processes, as the data-
parallel step does; median seconds of `--repeats` after a warm-up. Beside it, one process's
training step (forward + backward + AdamW) of each model at batch `--batch` 224x224, for the
per-host compute in docs/distributed.md's estimate.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/multiprocess.py scaling --rounds 3
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/multiprocess.py allreduce --repeats 5 --json ar.json
    .venv/bin/python benchmarks/multiprocess.py estimate --from-json ar.json --gpu vit_base_patch16_224=2899@256
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from throughput import cpu_model  # noqa: E402

ENV = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
SIZES = {"4 KiB": 1024, "1 MiB": 262_144, "16 MiB": 4_194_304,
         "ResNet-50 (25,557,032 params)": 25_557_032, "ViT-B/16 (86,567,656 params)": 86_567_656}

ALLREDUCE = r"""
import json, sys, time
import jax, numpy as np
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(sys.argv[1], 2, int(sys.argv[2]))
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
mesh = Mesh(np.array(jax.devices()), ("batch",))
out = {}
for name, n in json.loads(sys.argv[3]).items():
    local = np.ones((1, n), np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("batch")), local)
    total = jax.jit(lambda a: a.sum(0), out_shardings=NamedSharding(mesh, P()))  # the gradient all-reduce
    total(x).block_until_ready()
    times = []
    for _ in range(int(sys.argv[4])):
        t = time.perf_counter(); total(x).block_until_ready(); times.append(time.perf_counter() - t)
    out[name] = times
if jax.process_index() == 0:
    print(json.dumps(out))
"""

STEP = r"""
import json, sys, time
import keras, numpy as np, kzoo
model = kzoo.create_model(sys.argv[1])
batch = int(sys.argv[2])
model.compile(keras.optimizers.AdamW(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype("float32")
y = np.zeros(batch, "int64")
model.train_on_batch(x, y)
times = []
for _ in range(int(sys.argv[3])):
    t = time.perf_counter(); model.train_on_batch(x, y); times.append(time.perf_counter() - t)
print(json.dumps({"step_s": times, "params": model.count_params()}))
"""


def free_port() -> int:
    from kzoo.distributed.launcher import free_port as pick

    return pick()


def train_once(arm: str, model: str, batch: int, steps: int, data: str | None) -> float:
    out = tempfile.mkdtemp(prefix=f"mp-{arm}-")
    flags = ["--model", model, "--epochs", "3", "--steps-per-epoch", str(steps), "--augment", "none",
             "--out", os.path.join(out, "run"), "-q"] + (["--data", data] if data else [])
    env = dict(ENV)
    if arm == "2proc":
        cmd = ["launch", "--nproc", "2", "--cpus-per-process", "1", "--", "train", *flags,
               "--batch-size", str(batch // 2)]
    elif arm == "1proc_2dev":
        env["KZOO_CPU_DEVICES"] = "2"
        cmd = ["train", *flags, "--distribute", "data-parallel", "--batch-size", str(batch // 2)]
    else:
        cmd = ["train", *flags, "--batch-size", str(batch)]
    proc = subprocess.run([sys.executable, "-m", "kzoo.cli", *cmd], env=env, capture_output=True, text=True,
                          cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{arm} {model} failed:\n{proc.stderr[-2000:]}")
    metrics = json.load(open(os.path.join(out, "run", "metrics.json")))
    return float(metrics["images_per_sec"])


def scaling(args) -> dict:
    arms = ["1proc", "1proc_2dev", "2proc"]
    results = {}
    for model in args.models.split(","):
        speeds = {arm: [] for arm in arms}
        for r in range(args.rounds):
            for arm in arms[r % len(arms):] + arms[:r % len(arms)]:
                speeds[arm].append(train_once(arm, model, args.batch, args.steps, args.data))
                print(f"{model} round {r + 1} {arm}: {speeds[arm][-1]:.0f} img/s", flush=True)
        results[model] = {arm: {"runs": v, "median": statistics.median(v)} for arm, v in speeds.items()}
    print("\n| model | global batch | 1 process x 2 cores | 1 process, 2 devices | 2 processes x 1 core | "
          "2 proc / 1 proc |\n|---|---|---|---|---|---|")
    for model, r in results.items():
        m = {arm: r[arm]["median"] for arm in arms}
        print(f"| {model} | {args.batch} | {m['1proc']:.0f} | {m['1proc_2dev']:.0f} | {m['2proc']:.0f} | "
              f"**{m['2proc'] / m['1proc']:.2f}x** |")
    return results


def allreduce(args) -> dict:
    address = f"127.0.0.1:{free_port()}"
    sizes = json.dumps(SIZES)
    procs = [subprocess.Popen([sys.executable, "-c", ALLREDUCE, address, str(i), sizes, str(args.repeats)],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=900) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"all-reduce failed:\n{outs[0][1][-1500:]}\n{outs[1][1][-1500:]}")
    times = json.loads(outs[0][0].strip().splitlines()[-1])
    print("\n| buffer | float32 values | all-reduce s (median) | algorithm GB/s |\n|---|---|---|---|")
    result = {"allreduce": {}}
    for name, n in SIZES.items():
        median = statistics.median(times[name])
        result["allreduce"][name] = {"values": n, "runs": times[name], "median_s": median}
        print(f"| {name} | {n:,} | {median:.4f} | {4 * n / median / 1e9:.2f} |")
    result["step"] = {}
    for model in ("resnet50", "vit_base_patch16_224"):
        proc = subprocess.run([sys.executable, "-c", STEP, model, str(args.batch), str(args.step_repeats)], env=ENV,
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            raise SystemExit(f"step {model} failed:\n{proc.stderr[-1500:]}")
        step = json.loads(proc.stdout.strip().splitlines()[-1])
        median = statistics.median(step["step_s"])
        result["step"][model] = {**step, "batch": args.batch, "median_s": median, "images_per_s": args.batch / median}
        print(f"{model}: train step batch {args.batch} {median:.2f} s = {args.batch / median:.2f} img/s", flush=True)
    return result


# Assumed links between hosts (not measured here): 10 and 100 Gb/s Ethernet, in GB/s.
LINKS = {"10 GbE": 1.25, "100 GbE": 12.5}
MODELS = {"resnet50": ("ResNet-50 (25,557,032 params)", 25_557_032), "vit_base_patch16_224": ("ViT-B/16 (86,567,656 params)", 86_567_656)}


def estimate(allreduce_json: str, extra_hosts: dict[str, float]) -> None:
    """Expected img/s on N hosts from the measured all-reduce and per-host step (docs/distributed.md):
    ring all-reduce T(N) = 2 (N-1)/N * S / B + 2 (N-1) * a; step = b / r (compute) + T(N) with no
    overlap, max(b / r, T(N)) with perfect overlap; img/s = N * b / step."""
    record = json.load(open(allreduce_json))["result"]
    times = {name: r["median_s"] for name, r in record["allreduce"].items()}
    latency = times["4 KiB"] / 2  # a 2-process ring: 2 (N-1) = 2 messages
    rows = []
    for model, (name, params) in MODELS.items():
        size = 4 * params / 1e9  # GB of float32 gradients
        loopback = size / (times[name] - 2 * latency)  # GB/s of this machine's gloo ring at N=2
        step = record["step"][model]
        hosts = {f"this CPU ({step['images_per_s']:.2f} img/s at batch {step['batch']})": (step["images_per_s"],
                                                                                           step["batch"])}
        hosts.update({k: v for k, v in extra_hosts.items() if k.startswith(model)})
        for host, (rate, batch) in hosts.items():
            for link, bandwidth in {"loopback (measured)": loopback, **LINKS}.items():
                for n in (8, 64):
                    ring = 2 * (n - 1) / n * size / bandwidth + 2 * (n - 1) * latency
                    compute = batch / rate
                    rows.append((name, host, link, n, ring, n * batch / (compute + ring), n * batch / max(compute, ring),
                                 n * rate))
    print("| model | host (measured) | link | hosts | all-reduce s | img/s, no overlap | img/s, full overlap | "
          "linear |\n|---|---|---|---|---|---|---|---|")
    for name, host, link, n, ring, low, high, linear in rows:
        print(f"| {name.split(' (')[0]} | {host} | {link} | {n} | {ring:.3f} | {low:,.0f} | {high:,.0f} | {linear:,.0f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("scaling", "allreduce", "estimate"))
    p.add_argument("--from-json", default=None, help="estimate: the JSON an allreduce run wrote")
    p.add_argument("--gpu", action="append", default=[], metavar="MODEL=IMG_PER_S@BATCH",
                   help="estimate: also a host that trains MODEL at this measured rate, e.g. "
                        "vit_base_patch16_224=2899@256")
    p.add_argument("--models", default="vit_cifar_tiny,airbench94")
    p.add_argument("--batch", type=int, default=None, help="global batch (scaling: 256; allreduce's step: 16)")
    p.add_argument("--steps", type=int, default=12, help="steps per epoch (3 epochs) in the scaling runs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", default=None, help="data source (default: the bundled CIFAR-10 sample)")
    p.add_argument("--repeats", type=int, default=5, help="timed all-reduces per buffer")
    p.add_argument("--step-repeats", type=int, default=3)
    p.add_argument("--json", default=None, help="write every timing here")
    args = p.parse_args()
    if args.part == "estimate":
        gpus = {}
        for spec in args.gpu:
            model, rest = spec.split("=")
            rate, batch = rest.split("@")
            gpus[f"{model} GPU host ({rate} img/s at batch {batch})"] = (float(rate), int(batch))
        estimate(args.from_json, gpus)
        return
    args.batch = args.batch or (256 if args.part == "scaling" else 16)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    result = scaling(args) if args.part == "scaling" else allreduce(args)
    record = {"part": args.part, "started": started, "cpu": cpu_model(), "cores": os.cpu_count(),
              "python": platform.python_version(), "args": vars(args), "result": result}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=2)


if __name__ == "__main__":
    main()
