"""ONNX inference speed, images/s: kzoo's `kzoo.export` files against timm's `torch.onnx.export` files, one ONNX Runtime.

What is measured (CPU, float32):
- kzoo's `resnet50` and `vit_small_patch16_224` (`kzoo.create_model(name)`, random init after
  `keras.utils.set_random_seed(0)`, biases and normalisation gamma/beta then set to random non-zero
  values as in a trained model, unless `--zero-affine`) exported with `kzoo.export(model, path, "onnx")` (tf2onnx under
  Keras' TensorFlow backend; input (N, 224, 224, 3) float pixels in [0, 255], normalisation in the
  graph), against timm's models of the same names exported by benchmarks/export_peer.py in its own
  venv (`torch.onnx.export`; input (N, 3, 224, 224) already normalised). Both files have a dynamic
  batch axis. Existing files in `--out` are reused unless `--fresh`.
- all four files run in this process's ONNX Runtime: one `InferenceSession` each, the same
  `SessionOptions` (ORT's defaults; `--threads` sets intra-op threads), CPUExecutionProvider.
- per batch size and architecture: `--warmup` untimed runs of each session, then `--repeats` rounds,
  kzoo and timm alternating (kzoo first in odd rounds). One timing runs the session on a fixed random
  batch until at least `--seconds` and `--min-iters` runs have passed: images/s = B * runs / seconds.
  The table gives the median of the rounds and the ratio kzoo / timm of the medians.
- at batch 1, kzoo's ONNX file against the same Keras model's `model.predict(x, verbose=0)` and
  `model.predict_on_batch(x)`, alternating (order rotated each round), median of the rounds.
timm's exported logits are checked against torch's (export_peer.py saves both) before timing;
kzoo.export checks its own file against the Keras model on 16 random images, with its 1e-4 tolerance
times max(1, max |logit|): a random-init resnet50's logits reach ~2.5e4 (max |diff| in the JSON).

Run (prints a markdown table; every timing goes to OUT/export_onnx.json):
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/export_onnx.py --out /tmp/kzoo-export-bench
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/export_onnx.py --batches 1,64 --repeats 3 --seconds 3
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/export_onnx.py --smoke   # batch 1 and 2, 0.3 s, 1 round
The peer venv (benchmarks/export_peer.py): /tmp/lightly-peer/bin/pip install timm onnx onnxscript
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
import time

import numpy as np
from throughput import cpu_model  # benchmarks/ is on sys.path when a script here runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "export_peer.py")
NAMES = ("resnet50", "vit_small_patch16_224")


def timed(fn, batch: int, seconds: float, min_iters: int) -> dict:
    """Call fn() until `seconds` and `min_iters` have both passed; images/s over all calls."""
    iters, start = 0, time.perf_counter()
    while True:
        fn()
        iters += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and iters >= min_iters:
            return {"images_per_s": batch * iters / elapsed, "iters": iters, "seconds": elapsed}


def trained_like(model) -> None:
    """Give every bias and normalisation gamma/beta non-trivial values, as training does. Random init
    leaves biases and betas at 0 and gammas at 1, which TensorFlow folds away before tf2onnx sees
    them, so the file would lack ops a trained model's file has (and timm's export keeps)."""
    import numpy as np

    rng = np.random.default_rng(1)
    for variable in model.weights:
        leaf = variable.path.rsplit("/", 1)[-1]
        if leaf in ("bias", "beta"):
            variable.assign(0.1 * rng.standard_normal(variable.shape).astype("float32"))
        elif leaf == "gamma":
            variable.assign((1 + 0.1 * rng.standard_normal(variable.shape)).astype("float32"))


def export_kzoo(names, out: str, fresh: bool, zero_affine: bool = False) -> tuple[dict, dict]:
    """Build each kzoo model; export it unless its file is there. Returns (models, export reports)."""
    import keras

    import kzoo
    from kzoo.deploy.exporting import read_report

    models, reports = {}, {}
    for name in names:
        keras.utils.set_random_seed(0)
        models[name] = kzoo.create_model(name)
        if not zero_affine:
            trained_like(models[name])
        path = os.path.join(out, f"kzoo_{name}.onnx")
        if fresh or not os.path.exists(path):
            print(f"exporting kzoo {name} -> {path} ...", file=sys.stderr, flush=True)
            reports[name] = kzoo.export(models[name], path, "onnx", overwrite=True)
        else:
            reports[name] = read_report(path) or {"path": path, "export_seconds": None}
    return models, reports


def export_peer(names, out: str, python: str, fresh: bool) -> dict:
    info_path = os.path.join(out, "peer_export.json")
    paths = [os.path.join(out, f"timm_{n}.onnx") for n in names]
    if fresh or not os.path.exists(info_path) or not all(map(os.path.exists, paths)):
        print(f"exporting timm models with {python} ...", file=sys.stderr, flush=True)
        subprocess.run([python, PEER_SCRIPT, "--out", out, "--names", ",".join(names)], check=True,
                       stdout=sys.stderr, cwd=ROOT)
    with open(info_path) as f:
        return json.load(f)


def opset_of(path: str) -> int | None:
    import onnx

    proto = onnx.load(path, load_external_data=False)
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "kzoo-export-bench"))
    p.add_argument("--names", default=",".join(NAMES))
    p.add_argument("--batches", default="1,64")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per timing")
    p.add_argument("--min-iters", type=int, default=3, help="minimum runs per timing")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs of each session per batch size")
    p.add_argument("--threads", type=int, default=0, help="ORT intra-op threads (0: ORT's default)")
    p.add_argument("--peer-python", default="/tmp/lightly-peer/bin/python")
    p.add_argument("--fresh", action="store_true", help="export again even when the files exist")
    p.add_argument("--zero-affine", action="store_true",
                   help="keep random init's zero biases/betas and unit gammas (TensorFlow folds them away; default: "
                        "random non-zero values, as in a trained model)")
    p.add_argument("--smoke", action="store_true", help="batch 1 and 2, 0.3 s, 1 round")
    args = p.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before Keras loads: kzoo.export's ONNX path is tf2onnx
    if args.smoke:
        args.batches, args.seconds, args.repeats = "1,2", 0.3, 1
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    batches = [int(b) for b in args.batches.split(",") if b.strip()]
    os.makedirs(args.out, exist_ok=True)
    started, stamp, load_before = time.time(), datetime.datetime.now(datetime.UTC), os.getloadavg()

    models, reports = export_kzoo(names, args.out, args.fresh, args.zero_affine)
    peer = export_peer(names, args.out, args.peer_python, args.fresh)

    import keras
    import onnxruntime as ort
    import tensorflow as tf

    options = ort.SessionOptions()
    if args.threads:
        options.intra_op_num_threads = args.threads
    sessions, files = {}, {}
    for name in names:
        for side, path in (("kzoo", reports[name]["path"]), ("timm", peer["files"][name]["path"])):
            sessions[side, name] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            files[f"{side}/{name}"] = {"path": path, "opset": opset_of(path), "size_bytes": os.path.getsize(path)}
    check = {}
    for name in names:  # timm's file against torch's own logits on the same 2 images
        saved = np.load(peer["files"][name]["check"])
        got = sessions["timm", name].run(None, {"images": saved["x"]})[0]
        check[name] = float(np.max(np.abs(got - saved["logits"])))

    def runner(side: str, name: str, x: np.ndarray):
        sess = sessions[side, name]
        feed, out = {sess.get_inputs()[0].name: x}, [sess.get_outputs()[0].name]
        return lambda: sess.run(out, feed)

    rng = np.random.default_rng(0)
    loads, raw = [], {}
    for batch in batches:
        inputs = {"kzoo": rng.uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32),
                  "timm": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}
        for name in names:
            runs = {side: runner(side, name, inputs[side]) for side in ("kzoo", "timm")}
            for run in runs.values():
                for _ in range(args.warmup):
                    run()
            for r in range(args.repeats):
                for side in ("kzoo", "timm") if r % 2 == 0 else ("timm", "kzoo"):
                    t = timed(runs[side], batch, args.seconds, args.min_iters)
                    raw.setdefault(f"onnx/{name}/{batch}/{side}", []).append(t)
                    loads.append(os.getloadavg()[0])
                    print(f"  round {r + 1} batch {batch} {name} {side}: {t['images_per_s']:.1f} img/s",
                          file=sys.stderr, flush=True)

    x1 = rng.uniform(0, 255, (1, 224, 224, 3)).astype(np.float32)  # Keras vs ONNX at batch 1
    for name in names:
        model = models[name]
        runs = {"onnx": runner("kzoo", name, x1), "predict": lambda m=model: m.predict(x1, verbose=0),
                "predict_on_batch": lambda m=model: m.predict_on_batch(x1)}
        for run in runs.values():
            for _ in range(args.warmup):
                run()
        order = list(runs)
        for r in range(args.repeats):
            for way in order[r % 3:] + order[:r % 3]:
                t = timed(runs[way], 1, args.seconds, args.min_iters)
                raw.setdefault(f"keras/{name}/1/{way}", []).append(t)
                loads.append(os.getloadavg()[0])
                print(f"  round {r + 1} batch 1 {name} {way}: {t['images_per_s']:.1f} img/s",
                      file=sys.stderr, flush=True)

    med = {k: statistics.median(t["images_per_s"] for t in v) for k, v in raw.items()}
    ratios = {}
    lines = ["| model | batch | kzoo ONNX img/s | timm ONNX img/s | kzoo / timm |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in names:
        for batch in batches:
            k, t = med[f"onnx/{name}/{batch}/kzoo"], med[f"onnx/{name}/{batch}/timm"]
            ratios[f"onnx/{name}/{batch}/kzoo_over_timm"] = k / t
            lines.append(f"| {name} | {batch} | {k:.1f} | {t:.1f} | **{k / t:.2f}x** |")
    lines += ["", ("| model (batch 1) | kzoo ONNX img/s | Keras predict | Keras predict_on_batch | ONNX / predict "
                   "| ONNX / predict_on_batch |"), "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in names:
        o, pr, pb = (med[f"keras/{name}/1/{w}"] for w in ("onnx", "predict", "predict_on_batch"))
        ratios[f"keras/{name}/1/onnx_over_predict"] = o / pr
        ratios[f"keras/{name}/1/onnx_over_predict_on_batch"] = o / pb
        lines.append(f"| {name} | {o:.1f} | {pr:.1f} | {pb:.1f} | **{o / pr:.2f}x** | **{o / pb:.2f}x** |")

    command = " ".join(["python", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:])
    versions = {"python": platform.python_version(), "onnxruntime": ort.__version__, "keras": keras.__version__,
                "tensorflow": tf.__version__, "numpy": np.__version__, "peer_torch": peer["torch"],
                "peer_timm": peer["timm"]}
    exporters = ", ".join(sorted({f["exporter"] for f in peer["files"].values()}))
    opsets = ", ".join(f"{k} {v['opset']}" for k, v in files.items())
    timm_diff = ", ".join(f"{k} {v:.2g}" for k, v in check.items())
    kzoo_diff = ", ".join(f"{k} {reports[k].get('max_abs_diff', float('nan')):.2g}" for k in names)
    head = [
        "# ONNX inference: kzoo.export vs timm + torch.onnx.export, one ONNX Runtime (CPU, float32)\n",
        (f"{stamp:%Y-%m-%d %H:%M} UTC, {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs; load average "
         f"{load_before[0]:.2f} before, {min(loads):.2f}-{max(loads):.2f} during the timings."),
        f"Command: `{command}`",
        (f"Versions: {', '.join(f'{k} {v}' for k, v in versions.items())}; Keras backend "
         f"{keras.backend.backend()}; ORT intra-op threads: {args.threads or 'default'}; timm exporter: "
         f"{exporters}; opsets: {opsets}."),
        (f"{args.repeats} rounds alternating, each timing >= {args.seconds:g} s and >= {args.min_iters} runs after "
         f"{args.warmup} warm-up runs; medians. Max |logit diff|: timm ONNX vs torch {timm_diff}; kzoo ONNX vs "
         f"Keras {kzoo_diff}.\n"),
    ]
    print("\n".join(head + lines))
    result = {"date": stamp.isoformat(), "command": command, "cpu": cpu_model(), "cpus": os.cpu_count(),
              "host": platform.node(), "backend": keras.backend.backend(), "dtype": "float32", "versions": versions,
              "batches": batches, "names": names, "repeats": args.repeats, "seconds": args.seconds,
              "min_iters": args.min_iters, "warmup": args.warmup, "threads": args.threads or None,
              "files": files, "kzoo_exports": reports, "peer": peer, "timm_check_max_abs_diff": check,
              "raw": raw, "medians": med, "ratios": ratios, "load_before": load_before, "loads": loads,
              "wall_s": round(time.time() - started, 1)}
    path = os.path.join(args.out, "export_onnx.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1, default=str)
    print(f"\nAll timings: {path} (wall time {result['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
