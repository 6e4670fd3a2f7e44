"""CoOp training and inference speed, steps/s: kzoo's `build_coop` against a naive per-image CoOp, one CPU run.

Target (issue: CoOp training speed): context-vector steps/s at least 2x a naive implementation that
reruns the text encoder over all class prompts for every image; kzoo must run the text encoder once
per step over the C class prompts, and not at all for unified-context inference after training.

Run from the repository root (it waits first until no pytest and no other benchmark is running):
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/coop_speed.py --out docs/vlm/coop_speed_s18.json
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/coop_speed.py --backend jax --out docs/vlm/coop_speed_s18_jax.json
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/coop_speed.py --small --no-wait --min-seconds 1  # smoke test

The CLIP: a random-init kzoo CLIP (`build_clip`) with OpenAI ViT-B/32's architecture (CLIPConfig's
defaults: 224x224 images in 32x32 patches, vision 768 wide x 12 layers, text 512 x 12 layers over 77
tokens, embedding 512; `--small`: 64x64 images, both towers 128 wide x 2 layers, 32 tokens), its
vocabulary and <|endoftext|> id taken from the fixture tokenizer
(tests/fixtures/clip/transformers, 2,514 tokens). Weights do not change speed, so no checkpoint is
needed. float32, seed 0; 10 classes (the CIFAR-10 names), M=16 context vectors, class name at the
end, one unified context (CoOp's defaults).

Three models share that frozen CLIP and the same `PromptLearner` (the same context variable):
- `kzoo`: `kzoo.vlm.coop.build_coop(...)`: its `CoOpHead` assembles the (C, L, D) prompts with a
  gather and runs the text transformer once per step over the C prompts, whatever the batch;
- `naive`: `NaiveCoOpHead` below (the peer, not library code): for B images it runs the text
  transformer over B x C prompts (the C prompts tiled B times, one copy per image, batched, which
  is already faster than a literal Python loop over images) and scores each image against its own
  copy: the "per-image" structure of a straightforward port;
- `classifier` (inference only): `kzoo.vlm.coop.coop_classifier(model)`, the learned prompts'
  text features folded into a fixed Dense head: no text encoder at all.
Before timing, the script asserts that kzoo's, the naive model's and the classifier's logits agree
on one batch.

Training: each model compiled with CoOp's optimizer (`keras.optimizers.SGD(0.002, momentum=0.9,
nesterov=True, weight_decay=5e-4)`, as `kzoo train --method coop` makes it), one-hot labels,
`CategoricalCrossentropy(from_logits=True)`, `jit_compile=False` (CoOpConfig's default; `--jit`
turns XLA on), and stepped with `train_on_batch` on one fixed batch of `--batch` random [0, 255]
images and random labels (only the context is trainable; the image encoder is frozen, so no
gradient flows into it). Inference: `predict_on_batch` on a batch of `--infer-batch` images.
`train_on_batch` and `predict_on_batch` return host values, so each timed call ends with a sync.

Timing: every model is compiled and warmed up (`--warmup` calls of each kind) before anything is
timed. Then in each of `--rounds` rounds each model makes one measurement, the order rotating
(train: kzoo, naive / naive, kzoo / ...; inference: classifier, kzoo, naive / kzoo, naive,
classifier / ...): at least `--steps` calls and until `--min-seconds` have passed. steps/s = calls
/ seconds, images/s = steps/s x batch. The report gives each model's median over the rounds,
min-max, and the ratios of the medians; the JSON (`--out`) also holds every measurement, the load
average, CPU model, date, backend, versions and peak memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from throughput import cpu_model  # benchmarks/ is on sys.path when a script here runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_DIR = os.path.join(ROOT, "tests", "fixtures", "clip", "transformers")
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SMALL = {"image_size": 64, "patch_size": 16, "vision_width": 128, "vision_layers": 2, "vision_heads": 4,
         "vision_mlp": 256, "context_length": 32, "text_width": 128, "text_layers": 2, "text_heads": 4,
         "text_mlp": 256, "embed_dim": 128}


def busy() -> list[str]:
    """Other heavy processes: a pytest, or another benchmark script (never two at once)."""
    found = []
    for pattern in ("pytest", r"benchmarks/[a-z_0-9]+\.py"):
        out = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            pid = int(line.split()[0])
            if pid not in (os.getpid(), os.getppid()) and "pgrep" not in line:
                found.append(line[:160])
    return found


def wait_until_idle(max_minutes: float, poll_s: float = 30.0) -> dict:
    start = time.time()
    while True:
        others = busy()
        if not others or time.time() - start > max_minutes * 60:
            return {"waited_s": round(time.time() - start), "busy_at_start": others}
        print(f"waiting for {len(others)} other process(es): {others[0][:100]} ...", file=sys.stderr, flush=True)
        time.sleep(poll_s)


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("tensorflow", "jax", "torch"),
                   default=os.environ.get("KERAS_BACKEND", "tensorflow"), help="Keras backend (default: $KERAS_BACKEND "
                   "or tensorflow)")
    p.add_argument("--batch", type=int, default=32, help="training images per step (CoOp's 32)")
    p.add_argument("--infer-batch", type=int, default=0, help="images per inference call (default: --batch)")
    p.add_argument("--context", type=int, default=16, help="M learned context vectors")
    p.add_argument("--small", action="store_true", help="a small CLIP (64 px, 2-layer towers) for a quick check")
    p.add_argument("--jit", action="store_true", help="compile(jit_compile=True) (default False, as CoOpConfig)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed calls of each kind per model before timing")
    p.add_argument("--steps", type=int, default=1, help="at least this many calls per measurement")
    p.add_argument("--min-seconds", type=float, default=15.0, help="... and until this much time has passed")
    p.add_argument("--modes", default="train,infer")
    p.add_argument("--wait-minutes", type=float, default=20.0, help="wait up to this long for pytest/benchmarks to end")
    p.add_argument("--no-wait", action="store_true", help="do not wait for other processes (smoke tests)")
    p.add_argument("--out", default="", help="write the results here as JSON")
    args = p.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    infer_batch = args.infer_batch or args.batch
    command = " ".join(["python", os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:])

    waited = {"waited_s": 0, "busy_at_start": []} if args.no_wait else wait_until_idle(args.wait_minutes)
    stamp = datetime.datetime.now(datetime.UTC)
    load_before = os.getloadavg()
    started = time.perf_counter()

    import keras
    import numpy as np
    from keras import ops

    import kzoo
    from kzoo.vlm.checkpoints import CLIPCheckpoint
    from kzoo.vlm.clip import CLIPConfig, build_clip, normalize
    from kzoo.vlm.coop import build_coop, coop_classifier
    from kzoo.vlm.tokenizer import CLIPTokenizer

    class NaiveCoOpHead(keras.layers.Layer):
        """The peer: `(B, E)` image features -> `(B, C)` logits, the text transformer run over B x C
        prompts (every image gets its own copy of the C class prompts), sharing kzoo's PromptLearner
        and frozen text transformer."""

        def __init__(self, coop_head, **kwargs):
            super().__init__(**kwargs)
            self.prompt_learner = coop_head.prompt_learner  # the same context variable
            self.text_transformer = coop_head.text_transformer  # frozen
            self.num_classes, self.logit_scale = coop_head.num_classes, coop_head.logit_scale
            self.end_positions = np.asarray(ops.convert_to_numpy(coop_head.end_index), "int32")

        def build(self, input_shape):
            self.built = True

        def call(self, image_features):
            prompts = self.prompt_learner(None)  # (C, L, D)
            c, length, width = prompts.shape
            b = ops.shape(image_features)[0]
            per_image = ops.reshape(ops.broadcast_to(ops.expand_dims(prompts, 0), (b, c, length, width)),
                                    (-1, length, width))  # (B*C, L, D): image-major
            ends = ops.reshape(ops.broadcast_to(ops.convert_to_tensor(self.end_positions)[None], (b, c)), (-1,))
            text = normalize(self.text_transformer([per_image, ends]))  # (B*C, E)
            text = ops.reshape(text, (b, c, -1))
            return self.logit_scale * ops.einsum("be,bce->bc", normalize(image_features), text)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], self.num_classes)

    keras.config.set_dtype_policy("float32")
    tokenizer = CLIPTokenizer.from_directory(TOKENIZER_DIR, context_length=SMALL["context_length"] if args.small else 77)
    config = CLIPConfig(**(SMALL if args.small else {})).replace(vocab_size=tokenizer.vocab_size,
                                                                   end_id=tokenizer.end_id)
    keras.utils.set_random_seed(0)
    clip = CLIPCheckpoint(build_clip(config), tokenizer, config, "kzoo", "random init")
    kzoo_model = build_coop(clip, CIFAR10, num_context=args.context, position="end", class_specific=False, seed=0)
    head = kzoo_model.get_layer("coop")
    image_encoder = kzoo_model.get_layer("image_encoder")
    naive_model = keras.Model(image_encoder.input, NaiveCoOpHead(head, name="naive_coop")(image_encoder(image_encoder.input)),
                              name="naive_coop")
    classifier = coop_classifier(kzoo_model)
    trainable = {name: [w.path for w in m.trainable_weights] for name, m in
                 (("kzoo", kzoo_model), ("naive", naive_model))}
    assert trainable["kzoo"] == trainable["naive"] and len(trainable["kzoo"]) == 1, trainable

    rng = np.random.default_rng(0)
    size = config.image_size
    x_train = rng.integers(0, 256, (args.batch, size, size, 3)).astype("float32")
    y_train = np.eye(len(CIFAR10), dtype="float32")[rng.integers(0, len(CIFAR10), args.batch)]
    x_infer = x_train if infer_batch == args.batch else rng.integers(0, 256, (infer_batch, size, size, 3)).astype("float32")

    # Same logits before any training step (the three models read the same weights).
    logits = {name: np.asarray(m.predict_on_batch(x_infer[:8])) for name, m in
              (("kzoo", kzoo_model), ("naive", naive_model), ("classifier", classifier))}
    tol = 1e-4 * head.logit_scale
    for name in ("naive", "classifier"):
        np.testing.assert_allclose(logits[name], logits["kzoo"], rtol=1e-4, atol=tol, err_msg=f"{name} vs kzoo")
    max_diff = {name: float(np.abs(logits[name] - logits["kzoo"]).max()) for name in ("naive", "classifier")}
    print(f"logits agree (max |diff| vs kzoo: {max_diff}, logit scale {head.logit_scale:.2f})", file=sys.stderr)

    for m in (kzoo_model, naive_model):
        m.compile(optimizer=keras.optimizers.SGD(0.002, momentum=0.9, nesterov=True, weight_decay=5e-4),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), jit_compile=args.jit)
    for m in (classifier,):
        m.compile(jit_compile=args.jit)

    def train(m):
        return float(np.asarray(m.train_on_batch(x_train, y_train)))

    def infer(m):
        return np.asarray(m.predict_on_batch(x_infer))

    plan = {"train": ([("kzoo", kzoo_model), ("naive", naive_model)], train, args.batch),
            "infer": ([("classifier", classifier), ("kzoo", kzoo_model), ("naive", naive_model)], infer, infer_batch)}
    warm = {}
    for mode in modes:
        entries, call, _ = plan[mode]
        for name, m in entries:
            t0 = time.perf_counter()
            for _ in range(args.warmup):
                call(m)
            warm[f"{mode}/{name}"] = time.perf_counter() - t0
            print(f"  warm-up {mode} {name}: {warm[f'{mode}/{name}']:.1f} s ({args.warmup} call(s))",
                  file=sys.stderr, flush=True)
    ready = time.perf_counter()

    results: dict[str, list[dict]] = {}
    loads, orders = [os.getloadavg()[0]], []
    for r in range(args.rounds):
        for mode in modes:
            entries, call, batch = plan[mode]
            k = r % len(entries)
            order = entries[k:] + entries[:k]
            orders.append(f"{mode}: " + ",".join(n for n, _ in order))
            for name, m in order:
                n, t0 = 0, time.perf_counter()
                while n < args.steps or time.perf_counter() - t0 < args.min_seconds:
                    call(m)
                    n += 1
                seconds = time.perf_counter() - t0
                results.setdefault(f"{mode}/{name}", []).append({"calls": n, "seconds": seconds,
                                                                 "steps_per_s": n / seconds,
                                                                 "images_per_s": n * batch / seconds})
                loads.append(os.getloadavg()[0])
                print(f"  round {r + 1} {mode:5s} {name:10s}: {n / seconds:.4f} steps/s, {n * batch / seconds:.2f} "
                      f"images/s ({n} calls, {seconds:.1f} s)", file=sys.stderr, flush=True)
    finished = time.perf_counter()

    med = {key: summary([v["steps_per_s"] for v in values]) for key, values in results.items()}
    ratios = {}
    if "train" in modes:
        ratios["train kzoo/naive"] = med["train/kzoo"]["median"] / med["train/naive"]["median"]
    if "infer" in modes:
        ratios["infer kzoo/naive"] = med["infer/kzoo"]["median"] / med["infer/naive"]["median"]
        ratios["infer classifier/naive"] = med["infer/classifier"]["median"] / med["infer/naive"]["median"]
        ratios["infer classifier/kzoo"] = med["infer/classifier"]["median"] / med["infer/kzoo"]["median"]

    backend = keras.backend.backend()
    lib = __import__("jax" if backend == "jax" else backend)
    versions = {"python": platform.python_version(), "kzoo": kzoo.__version__, "keras": keras.__version__,
                backend: lib.__version__, "numpy": np.__version__}
    shape = "small (--small)" if args.small else "OpenAI ViT-B/32 architecture"
    lines = [f"# CoOp speed: kzoo build_coop vs a naive per-image CoOp ({backend}, jit_compile={args.jit})\n",
             (f"{stamp:%Y-%m-%d %H:%M} UTC, {platform.node()}, {cpu_model()}, {os.cpu_count()} CPUs; load average "
              f"{load_before[0]:.2f} before, {min(loads):.2f}-{max(loads):.2f} during the timed rounds; waited "
              f"{waited['waited_s']} s for other processes."),
             f"Command: `{command}`",
             (f"Random-init CLIP, {shape} ({config.image_size} px, patch {config.patch_size}, vision "
              f"{config.vision_width}x{config.vision_layers}, text {config.text_width}x{config.text_layers} over "
              f"{config.context_length} tokens, vocab {config.vocab_size}); {len(CIFAR10)} classes, M={args.context}, "
              f"end, unified; train batch {args.batch}, inference batch {infer_batch}; {args.rounds} rotating rounds, "
              f">= {args.steps} call(s) and >= {args.min_seconds:g} s per measurement, after {args.warmup} warm-up "
              f"call(s)."),
             "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
             (f"Wall time {finished - started:.0f} s ({ready - started:.0f} s build, check and warm-up); peak RSS "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB.\n"),
             "| mode | model | steps/s median | min-max | images/s median |", "| --- | --- | ---: | ---: | ---: |"]
    for key, s in med.items():
        mode, name = key.split("/")
        batch = plan[mode][2]
        lines.append(f"| {mode} | {name} | {s['median']:.4f} | {s['min']:.4f}-{s['max']:.4f} | "
                     f"{s['median'] * batch:.2f} |")
    lines.append("")
    lines += [f"- {k}: **{v:.2f}x**" for k, v in ratios.items()]
    if "train" in modes:
        verdict = "met" if ratios["train kzoo/naive"] >= 2.0 else "NOT met"
        lines.append(f"\nTarget (training steps/s at least 2x the naive per-image CoOp): "
                     f"**{ratios['train kzoo/naive']:.2f}x, {verdict}**.")
    print("\n".join(lines))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"date": stamp.isoformat(timespec="seconds"), "cpu_model": cpu_model(), "cpus": os.cpu_count(),
                       "platform": platform.platform(), "host": platform.node(), "command": command,
                       "backend": backend, "jit_compile": args.jit, "versions": versions,
                       "clip": {k: v for k, v in config.__dict__.items() if k not in ("mean", "std")},
                       "small": args.small, "classes": CIFAR10, "num_context": args.context, "position": "end",
                       "class_specific": False, "batch": args.batch, "infer_batch": infer_batch,
                       "rounds": args.rounds, "warmup": args.warmup, "min_steps": args.steps,
                       "min_seconds": args.min_seconds, "waited": waited, "load_before": load_before,
                       "loads": loads, "orders": orders, "warmup_s": warm,
                       "logits_max_abs_diff_vs_kzoo": max_diff, "logit_scale": head.logit_scale,
                       "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                       "wall_s": finished - started, "setup_s": ready - started,
                       "medians_steps_per_s": {k: s["median"] for k, s in med.items()},
                       "medians_images_per_s": {k: s["median"] * plan[k.split("/")[0]][2] for k, s in med.items()},
                       "ratios_of_medians": ratios, "measurements": results}, f, indent=1)
        print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
