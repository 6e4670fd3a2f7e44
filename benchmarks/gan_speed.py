"""GAN training speed, steps/s: kzoo's `dcgan_32` GAN against the same DCGAN in PyTorch and against
the keras.io DCGAN example's `train_step`, in one run on this CPU (issue 28).

One step = one discriminator update on a real and a generated batch, then one generator update,
either on the discriminator update's fakes (kzoo's default `reuse_fakes`, the structure of
pytorch/examples' DCGAN: one generator forward per step) or on fresh noise (`*_fresh` rows,
kzoo's `reuse_fakes=False`; the keras.io example's structure).
Every configuration: the same batch (`--batch`) of random integer-valued float32 pixels in [0, 255]
(`--images` of 32x32x3, seed 0), latent_dim 100, float32, two Adam(2e-4, beta_1=0.5):
- `kzoo_tf`, `kzoo_jax` (skipped when jax is not installed): `build_gan_networks("dcgan_32",
  latent_dim=100)`, `GAN(..., loss="non_saturating", d_steps=1)`, `gan.fit` on
  `tf.data.Dataset.from_tensor_slices(images).repeat().batch(B)`;
- `torch` (NCHW), `torch_cl` (channels_last): the same networks in PyTorch, written here (sizes,
  BatchNorm placement, eps and momentum, activations, N(0, 0.02) init; parameter counts asserted
  equal), eager, `torch.set_num_threads(os.cpu_count())`, kzoo's step: fake = G(z1); D loss
  mean(softplus(-D(real))) + mean(softplus(D(fake.detach()))) (= BCE from logits; two D passes);
  then G loss mean(softplus(-D(fake))) through the updated D (`torch_fresh`, `torch_cl_fresh`: fake
  = G(z1) without gradient, G loss on G(z2)), D's weights not differentiated;
- `kerasio_tf`: the structure of keras.io/examples/generative/dcgan_overriding_train_step: a
  `keras.Model` whose `train_step` runs two `tf.GradientTape`s (one D pass over [fake; real], labels
  with 0.05 uniform noise, `BinaryCrossentropy(from_logits=True)`), with kzoo's two networks called
  with training=True (the example's own networks have no BatchNorm), trained by `fit`. The
  networks are rebuilt with Keras' own `BatchNormalization` (same config and weights), the layer a
  user of the example has; `kerasio_tf_fusedbn` keeps kzoo's `FusedBatchNormalization` (the
  structure's cost alone, a row of its own that the keras.io ratio does not use);
- `kzoo_tf_xla`, `kerasio_tf_xla`: jit_compile=True (Keras' "auto" is no XLA under TF on a CPU).

Each configuration is a long-lived worker process (KERAS_BACKEND set per worker; torch runs from
`--torch-python`). Workers build and warm up (`--warmup` steps: compilation) one after another; then
in each of `--repeats` rounds each times `--steps` steps while the others idle, the order rotating
(kzoo, torch, keras.io; torch, keras.io, kzoo; ...). Keras: a callback times the steps of one `fit`
after its first (iterator start) and reads the loss after each (a host sync: JAX's asynchronous
dispatch hides nothing); torch reads its loss after each step too. kzoo's JAX worker keeps freed host
memory as `kzoo train` does. Printed: the median steps/s and the ratios of kzoo's medians to the
faster torch configuration's of the same step structure (reuse or fresh) and to keras.io's; raw
timings, CPU, date, versions go to `--out`.

Torch venv: python3 -m venv /tmp/torch-peer && /tmp/torch-peer/bin/pip install -q torch==2.13.0 numpy
Run from the repository root, machine otherwise idle:
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python benchmarks/gan_speed.py --batch 64 --steps 50 --repeats 3 \
        --configs kzoo_tf,torch,kerasio_tf,kzoo_jax,torch_cl --out /tmp/gan_speed.json
    ... --configs kzoo_tf,torch,kerasio_tf,kzoo_tf_fresh,torch_fresh      # both step structures
    ... --configs kzoo_tf_xla,torch,kerasio_tf_xla        # the XLA pair
    ... --smoke                                           # 3 steps after 2 warm-up, 1 round
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from throughput import cpu_model  # benchmarks/ is on sys.path when a script here runs (stdlib only)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LATENT = 100
# name -> (family, KERAS_BACKEND or None, jit_compile (torch: memory format), description)
# The families whose medians are compared: (kzoo family, the peer family it is measured against).
PAIRS = (("kzoo", "torch"), ("kzoo", "kerasio"), ("kzoo_fresh", "torch_fresh"), ("kzoo_fresh", "kerasio"))
CONFIGS = {
    "kzoo_tf": ("kzoo", "tensorflow", "auto", "kzoo GAN.fit, TF"),
    "kzoo_tf_xla": ("kzoo", "tensorflow", True, "kzoo GAN.fit, TF + XLA"),
    "kzoo_jax": ("kzoo", "jax", "auto", "kzoo GAN.fit, JAX"),
    "kzoo_tf_fresh": ("kzoo_fresh", "tensorflow", "auto", "kzoo GAN.fit, TF, fresh noise for G"),
    "kzoo_jax_fresh": ("kzoo_fresh", "jax", "auto", "kzoo GAN.fit, JAX, fresh noise for G"),
    "torch": ("torch", None, "contiguous_format", "PyTorch eager DCGAN, NCHW"),
    "torch_cl": ("torch", None, "channels_last", "PyTorch eager DCGAN, channels_last"),
    "torch_fresh": ("torch_fresh", None, "contiguous_format", "PyTorch eager DCGAN, NCHW, fresh noise for G"),
    "torch_cl_fresh": ("torch_fresh", None, "channels_last", "PyTorch eager DCGAN, channels_last, fresh noise for G"),
    "kerasio_tf": ("kerasio", "tensorflow", "auto", "keras.io DCGAN train_step, TF"),
    "kerasio_tf_xla": ("kerasio", "tensorflow", True, "keras.io DCGAN train_step, TF + XLA"),
    "kerasio_tf_fusedbn": ("kerasio_fusedbn", "tensorflow", "auto",
                           "keras.io DCGAN train_step, TF, with kzoo's FusedBatchNormalization"),
}


def serve(run, info: dict, warmup: int) -> None:
    """Warm up, say ready, then answer each stdin line `run N` with the seconds N steps took."""
    t0 = time.perf_counter()
    run(warmup)
    replies = [{"ready": True, "warmup_s": time.perf_counter() - t0, **info}]
    while replies:
        sys.__stdout__.write(json.dumps(replies.pop()) + "\n")
        sys.__stdout__.flush()
        parts = sys.stdin.readline().split()
        if parts and parts[0] == "run":
            replies.append({"seconds": run(int(parts[1]))})


def keras_io_gan(keras, tf, generator, discriminator):
    """The keras.io DCGAN example's model (`dcgan_overriding_train_step`), with BN-aware calls."""
    ops = keras.ops

    class KerasIoGAN(keras.Model):
        def __init__(self):
            super().__init__()
            self.discriminator, self.generator, self.latent_dim = discriminator, generator, LATENT
            self.seed_generator = keras.random.SeedGenerator(1337)

        def compile(self, d_optimizer, g_optimizer, loss_fn, **kwargs):
            super().compile(**kwargs)
            self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
            self.d_loss_metric = keras.metrics.Mean(name="d_loss")
            self.g_loss_metric = keras.metrics.Mean(name="g_loss")

        @property
        def metrics(self):
            return [self.d_loss_metric, self.g_loss_metric]

        def train_step(self, real_images):
            real_images = real_images / 127.5 - 1.0  # kzoo's networks take [-1, 1]
            batch_size = ops.shape(real_images)[0]
            noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
            generated_images = self.generator(noise, training=True)
            combined_images = ops.concatenate([generated_images, real_images], axis=0)
            labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
            labels += 0.05 * keras.random.uniform(ops.shape(labels), seed=self.seed_generator)
            with tf.GradientTape() as tape:
                d_loss = self.loss_fn(labels, self.discriminator(combined_images, training=True))
            grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
            noise = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
            misleading_labels = ops.zeros((batch_size, 1))
            with tf.GradientTape() as tape:
                predictions = self.discriminator(self.generator(noise, training=True), training=True)
                g_loss = self.loss_fn(misleading_labels, predictions)
            grads = tape.gradient(g_loss, self.generator.trainable_weights)
            self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
            self.d_loss_metric.update_state(d_loss)
            self.g_loss_metric.update_state(g_loss)
            return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}

    return KerasIoGAN()


def plain_keras(keras, model):
    """`model` rebuilt with Keras' BatchNormalization for kzoo's fused one (same config and weights)."""
    from kzoo.layers import FusedBatchNormalization

    def clone(layer):
        cls = keras.layers.BatchNormalization if isinstance(layer, FusedBatchNormalization) else layer.__class__
        return cls.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in copy.layers)
    return copy


def worker_keras(name: str, args) -> None:
    family, backend, jit, _ = CONFIGS[name]
    import keras
    import numpy as np
    import tensorflow as tf

    sys.path.insert(0, ROOT)
    import kzoo
    from kzoo.generative import GAN, build_gan_networks
    from kzoo.training.host_memory import keep_host_memory_for_jax_cpu

    keep_host_memory_for_jax_cpu()  # what `kzoo train` does first (a no-op off JAX-on-CPU)
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(0)
    generator, discriminator = build_gan_networks("dcgan_32", latent_dim=LATENT)
    adam = lambda: keras.optimizers.Adam(2e-4, beta_1=0.5)  # noqa: E731
    if family.startswith("kzoo"):
        model = GAN(generator, discriminator, latent_dim=LATENT, loss="non_saturating", d_steps=1,
                    reuse_fakes=family == "kzoo")
        model.compile(g_optimizer=adam(), d_optimizer=adam(), jit_compile=jit)
    else:
        if family == "kerasio":
            generator, discriminator = plain_keras(keras, generator), plain_keras(keras, discriminator)
        model = keras_io_gan(keras, tf, generator, discriminator)
        model.compile(d_optimizer=adam(), g_optimizer=adam(),
                      loss_fn=keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=jit)
    images = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3)).astype("float32")
    dataset = (tf.data.Dataset.from_tensor_slices(images).repeat()
               .batch(args.batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))

    class Clock(keras.callbacks.Callback):
        start = end = None

        def on_train_batch_begin(self, batch, logs=None):
            if batch == 1:  # step 0 of each fit (new iterator) is not timed
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            np.asarray(keras.ops.convert_to_numpy(logs["g_loss"]))  # wait for the step
            self.end = time.perf_counter()

    def run(steps: int) -> float:
        clock = Clock()
        model.fit(dataset, epochs=1, steps_per_epoch=steps + 1, verbose=0, shuffle=False,
                  callbacks=[clock])
        return clock.end - clock.start

    count = lambda variables: int(sum(np.prod(v.shape) for v in variables))  # noqa: E731
    lib = __import__("jax" if keras.backend.backend() == "jax" else "tensorflow")
    params = {"generator": count(generator.trainable_variables),
              "discriminator": count(discriminator.trainable_variables),
              "bn_statistics": count(generator.non_trainable_variables + discriminator.non_trainable_variables)}
    versions = {"python": platform.python_version(), "kzoo": kzoo.__version__, "keras": keras.__version__,
                "tensorflow": tf.__version__, lib.__name__: lib.__version__, "numpy": np.__version__}
    serve(run, {"backend": keras.backend.backend(), "jit_compile": str(model.jit_compile), "params": params,
                "versions": versions}, args.warmup)


def worker_torch(name: str, args) -> None:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.set_num_threads(args.torch_threads or os.cpu_count())
    torch.manual_seed(0)
    g_bn = lambda c: nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)  # noqa: E731  kzoo's _generator_bn
    d_bn = lambda c: nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)  # noqa: E731  Keras' BN defaults
    G = nn.Sequential(
        nn.Linear(LATENT, 4 * 4 * 512, bias=False), nn.Unflatten(1, (512, 4, 4)), g_bn(512), nn.ReLU(),
        nn.ConvTranspose2d(512, 256, 4, 2, 1, bias=False), g_bn(256), nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 4, 2, 1, bias=False), g_bn(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 3, 4, 2, 1), nn.Tanh())
    D = nn.Sequential(
        nn.Conv2d(3, 64, 4, 2, 1), nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, 2, 1, bias=False), d_bn(128), nn.LeakyReLU(0.2),
        nn.Conv2d(128, 256, 4, 2, 1, bias=False), d_bn(256), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(4 * 4 * 256, 1))
    for m in [*G.modules(), *D.modules()]:  # Radford et al.'s init, as kzoo's: N(0, 0.02), BN scale N(1, 0.02)
        if getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 1.0 if isinstance(m, nn.BatchNorm2d) else 0.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    layout = getattr(torch, CONFIGS[name][2])
    reuse = CONFIGS[name][0] == "torch"
    G, D = G.to(memory_format=layout), D.to(memory_format=layout)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    pixels = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3)).astype("float32")
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(memory_format=layout)
    B = args.batch
    batches = itertools.cycle(images[:len(images) // B * B].split(B))

    def run(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            real = next(batches) / 127.5 - 1.0
            with torch.set_grad_enabled(reuse):
                fake = G(torch.randn(B, LATENT))
            opt_d.zero_grad(set_to_none=True)
            d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
            d_loss.backward()
            opt_d.step()
            D.requires_grad_(False)  # G's update differentiates G's weights only, as kzoo's tape does
            opt_g.zero_grad(set_to_none=True)
            g_loss = F.softplus(-D(fake if reuse else G(torch.randn(B, LATENT)))).mean()
            g_loss.backward()
            opt_g.step()
            D.requires_grad_(True)
            g_loss.item()
        return time.perf_counter() - start

    count = lambda ps: int(sum(p.numel() for p in ps))  # noqa: E731
    stats = [b for n, b in [*G.named_buffers(), *D.named_buffers()] if "running" in n]
    params = {"generator": count(G.parameters()), "discriminator": count(D.parameters()), "bn_statistics": count(stats)}
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    serve(run, {"backend": f"torch eager, {CONFIGS[name][2]}, {torch.get_num_threads()} threads", "jit_compile": "-",
                "params": params, "versions": versions}, args.warmup)


def start_worker(name: str, args) -> tuple[subprocess.Popen, dict]:
    """Start `name`'s worker; returns it and its ready message (after its warm-up)."""
    family, backend = CONFIGS[name][:2]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **({"KERAS_BACKEND": backend} if backend else {}))
    python = args.torch_python if family.startswith("torch") else sys.executable
    cmd = [python, os.path.abspath(__file__), "--worker", name, "--batch", str(args.batch),
           "--warmup", str(args.warmup), "--images", str(args.images), "--torch-threads", str(args.torch_threads)]
    with open(os.path.join(args.log_dir, f"gan_speed_{name}.log"), "w") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                cwd=ROOT, env=env)
    return proc, ask(proc, name, None)


def ask(proc: subprocess.Popen, name: str, steps: int | None) -> dict:
    """Send `run steps` (or nothing) and read the worker's one-line JSON answer."""
    if steps is not None:
        proc.stdin.write(f"run {steps}\n")
        proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{name} worker exited (rc {proc.wait()}); see its log in --log-dir")
    return json.loads(line)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="kzoo_tf,torch,kerasio_tf,kzoo_jax,torch_cl", help=f"from {', '.join(CONFIGS)}")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps when a worker starts (compilation)")
    p.add_argument("--repeats", type=int, default=3, help="rounds; the order of configurations rotates")
    p.add_argument("--images", type=int, default=2048, help="random images in the training set")
    p.add_argument("--torch-python", default="/tmp/torch-peer/bin/python")
    p.add_argument("--torch-threads", type=int, default=0, help="0: os.cpu_count(). On a loaded machine torch's "
                   "OpenMP threads collapse (2 threads 3.5x slower than 1 at load 5 on 2 cores)")
    p.add_argument("--out", default="/tmp/gan_speed.json")
    p.add_argument("--log-dir", default=os.environ.get("TMPDIR", "/tmp"), help="workers' stderr logs")
    p.add_argument("--smoke", action="store_true", help="3 steps, 2 warm-up, 1 round: a quick check")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.steps, args.warmup, args.repeats, args.images = 3, 2, 1, 4 * args.batch
    args.images = max(args.images, args.batch)
    if args.worker:
        sys.stdout = sys.stderr  # library chatter off the reply channel
        worker = worker_torch if CONFIGS[args.worker][0].startswith("torch") else worker_keras
        return worker(args.worker, args)

    names = [c for c in args.configs.split(",") if c]
    if unknown := [c for c in names if c not in CONFIGS]:
        p.error(f"unknown configuration(s) {unknown}; known: {', '.join(CONFIGS)}")
    notes = []
    for n in list(names):
        if (CONFIGS[n][1] == "jax" and importlib.util.find_spec("jax") is None
                or CONFIGS[n][0].startswith("torch") and not os.path.exists(args.torch_python)):
            names.remove(n)
            notes.append(f"{n} skipped: no jax in this venv, or no {args.torch_python}")
    stamp, started = datetime.datetime.now(datetime.timezone.utc), time.time()
    procs, info, times, loads, orders = {}, {}, {n: [] for n in names}, [], []
    try:
        for name in names:  # one after another: warm-up (compilation) never competes for the cores
            procs[name], info[name] = start_worker(name, args)
            print(f"# ready {name}: warm-up {info[name]['warmup_s']:.1f} s", file=sys.stderr, flush=True)
        loads.append(os.getloadavg()[0])
        for r in range(args.repeats):
            orders.append(names[r % len(names):] + names[:r % len(names)])
            for name in orders[-1]:
                times[name].append(ask(procs[name], name, args.steps)["seconds"])
                loads.append(os.getloadavg()[0])
                print(f"# round {r + 1} {name}: {args.steps / times[name][-1]:.2f} steps/s", file=sys.stderr,
                      flush=True)
    finally:
        for proc in procs.values():  # EOF on stdin ends a worker
            proc.stdin.close()
            proc.wait(60)

    for n in names:
        c = info[n]["params"]
        print(f"{n}: trainable parameters G {c['generator']:,}, D {c['discriminator']:,}; "
              f"BN statistics {c['bn_statistics']:,}")
    counts = {json.dumps(info[n]["params"], sort_keys=True) for n in names}
    assert len(counts) == 1, f"parameter counts differ: {counts}"
    rate = {n: [args.steps / s for s in times[n]] for n in names}
    median = {n: statistics.median(v) for n, v in rate.items()}
    best = lambda family: max((n for n in names if CONFIGS[n][0] == family), key=median.get, default=None)  # noqa: E731
    ratios = {f"{n}/{best(peer)}": median[n] / median[best(peer)] for kzoo_family, peer in PAIRS
              if best(peer) for n in names if CONFIGS[n][0] == kzoo_family}
    lines = [f"{stamp:%Y-%m-%d %H:%M} UTC, {cpu_model()}, {os.cpu_count()} CPUs, load average "
             f"{min(loads):.2f}-{max(loads):.2f} during the timed rounds; batch {args.batch}, float32, "
             f"{args.steps} timed steps after {args.warmup} warm-up, {args.repeats} rounds, rotating order.", "",
             "| configuration | backend | jit_compile | steps/s median | min-max | img/s | kzoo / torch (same "
             "structure) | kzoo / keras.io |", "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for n in names:
        peers = [best(peer) for family, peer in PAIRS if family == CONFIGS[n][0]] or [None, None]
        cells = [f"**{ratios[f'{n}/{ref}']:.2f}x** ({ref})" if f"{n}/{ref}" in ratios else "" for ref in peers]
        lines.append(f"| {n}: {CONFIGS[n][3]} | {info[n]['backend']} | {info[n]['jit_compile']} | "
                     f"{median[n]:.2f} | {min(rate[n]):.2f}-{max(rate[n]):.2f} | {median[n] * args.batch:.0f} | "
                     + " | ".join(cells) + " |")
    print("\n".join(lines + [f"\nNote: {n}" for n in notes]))
    record = {"date": f"{stamp:%Y-%m-%d %H:%M:%S} UTC", "cpu_model": cpu_model(), "cpus": os.cpu_count(),
              "platform": platform.platform(), "command": " ".join([sys.executable] + sys.argv),
              "batch": args.batch, "dtype": "float32", "latent_dim": LATENT, "steps": args.steps,
              "warmup": args.warmup, "repeats": args.repeats, "images": args.images, "smoke": args.smoke,
              "versions": {k: v for n in names for k, v in info[n]["versions"].items()}, "orders": orders,
              "loads": loads, "wall_s": time.time() - started, "ratios_of_medians": ratios, "notes": notes,
              "configs": {n: {"description": CONFIGS[n][3], **info[n], "seconds": times[n], "steps_per_s": rate[n],
                              "median_steps_per_s": median[n]} for n in names}}
    with open(args.out, "w") as f:
        json.dump(record, f, indent=1)
    print(f"\nraw timings: {args.out}")


if __name__ == "__main__":
    main()
