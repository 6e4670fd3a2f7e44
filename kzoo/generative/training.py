"""`kzoo.generative.train_gan` (`kzoo gan train`): a GAN trained as a kzoo run.

The run directory, resume, backups, time budget, schedule, history.csv and TensorBoard are
`kzoo.train`'s (the same `fit_run`); what differs is the model fitted (`GAN`), two Adam
optimizers (their rates logged as `lr_g` and `lr_d`), the epoch figures (`d_loss`, `g_loss`,
`d_real`, `d_fake`, and with --fid-every `fid`, `kid`, `kid_std`) and what the run leaves:
last.keras (the whole GAN: both networks, both optimizers, the generator's EMA), best.keras
(lowest --monitor, with FID on), samples/epoch_NNNN.png and samples.gif, interpolation.png,
curves.png (D and G losses, FID/KID) and metrics.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Any

import keras
import numpy as np

from kzoo import distributed
from kzoo.errors import KzooError
from kzoo.generative.config import GanConfig
from kzoo.training import rundir
from kzoo.training.api import TrainResult
from kzoo.training.fitting import fit_run, run_in_directory, learning_rate, prepare_process

log = logging.getLogger("kzoo.generative")

IMAGE_SIZE = (32, 32)


def train_gan(config: GanConfig | None = None, **overrides: Any) -> TrainResult:
    """Train a registered GAN (`dcgan_32`, `sngan_32`) on the images of a data source by `model.fit`.

    Keyword arguments are `GanConfig` fields (the `kzoo gan train` flags); labels of `data` are
    ignored. Rerunning an interrupted run's command resumes it. Returns a `TrainResult` whose
    `model` is the GAN and whose metrics hold the last losses and, with `fid_every`, FID/KID.

    Example:
        >>> from kzoo.generative import train_gan
        >>> r = train_gan(model="sngan_32", data="cifar10-jpg.tar.gz", epochs=40, out="runs/sngan")  # doctest: +SKIP
        >>> r.model.generate(16).shape  # doctest: +SKIP
        (16, 32, 32, 3)
    """
    prepare_process()
    start = time.perf_counter()
    cfg = GanConfig(**{**(config.__dict__ if config else {}), **overrides}).validate()
    cfg.image_size = list(IMAGE_SIZE)
    if distributed.process_count() > 1:
        raise KzooError("kzoo gan train runs in one process (several processes: not built yet)")
    return run_in_directory(cfg, lambda resumed: _train(cfg, resumed, start))


def _train(cfg: GanConfig, resumed: bool, start: float) -> TrainResult:
    from kzoo import data as kdata
    from kzoo.generative.callbacks import SampleGrid, interpolation_figure
    from kzoo.generative.gan import GAN
    from kzoo.generative.networks import build_gan_networks

    log.info("%s %s (%s loss) in %s", "resuming" if resumed else "starting", cfg.model, cfg.gan_loss, cfg.out)
    keras.utils.set_random_seed(cfg.seed)
    keras.mixed_precision.set_global_policy("float32")
    common = {"image_size": IMAGE_SIZE, "seed": cfg.seed, "data_dir": cfg.data_dir, "download": cfg.download}
    extractor = extractor_for(cfg.fid_extractor) if cfg.fid_every else None  # a wrong file fails first
    # Every step compares a full batch of real images with as many fakes: drop a partial last batch.
    train = kdata.load(cfg.data, "train", batch_size=cfg.batch_size, drop_remainder=True,
                       augment=None if cfg.augment == "none" else cfg.augment, **common)
    if train.num_examples < cfg.batch_size:
        raise KzooError(f"--data {train.source} has {train.num_examples} training images, fewer than one batch of "
                        f"{cfg.batch_size}: lower --batch-size")
    if train.native_size and max(train.native_size) > 2 * max(IMAGE_SIZE):
        log.warning("images are shrunk from %dx%d to 32x32, the size kzoo's GANs generate", *train.native_size)
    scores = _scores(cfg, extractor, kdata, common) if extractor else None
    steps = cfg.steps_per_epoch or train.steps_per_epoch
    generator, discriminator = build_gan_networks(cfg.model, latent_dim=cfg.latent_dim, width=cfg.width)
    gan = GAN(generator, discriminator, latent_dim=cfg.latent_dim, loss=cfg.gan_loss, d_steps=cfg.d_steps,
              ema_decay=cfg.g_ema, seed=cfg.seed, reuse_fakes=cfg.reuse_fakes, name=f"gan_{cfg.model}")
    # One (schedule, optimizer rate) per network, as kzoo.train makes them (a float under --budget-minutes,
    # which TimeBudget then sets from the clock).
    pairs = {key: learning_rate(dataclasses.replace(cfg, lr=rate), 1, steps)
             for key, rate in (("lr_g", cfg.lr_g), ("lr_d", cfg.lr_d))}
    schedules = {key: schedule for key, (schedule, _) in pairs.items()}
    rates = {key: rate for key, (_, rate) in pairs.items()}
    gan.compile(g_optimizer=keras.optimizers.Adam(rates["lr_g"], beta_1=cfg.beta_1, beta_2=cfg.beta_2),
                d_optimizer=keras.optimizers.Adam(rates["lr_d"], beta_1=cfg.beta_1, beta_2=cfg.beta_2),
                jit_compile=cfg.jit_compile)
    epoch_callbacks: list[keras.callbacks.Callback] = []
    if scores is not None:
        epoch_callbacks.append(scores)
    if cfg.sample_every:
        noise = keras.ops.convert_to_numpy(keras.random.normal((64, cfg.latent_dim), seed=cfg.seed + 1))
        epoch_callbacks.append(SampleGrid(noise, os.path.join(cfg.out, "samples"),
                                          gif=os.path.join(cfg.out, "samples.gif"), every=cfg.sample_every))
    fit_run(cfg, gan, generator, train.dataset, None, steps, cfg.batch_size, resumed, start, schedules,
            epoch_callbacks)
    interpolation_figure(gan, os.path.join(cfg.out, "interpolation.png"), seed=cfg.seed)
    return _finish(cfg, gan, train, scores, time.perf_counter() - start)


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# Settings of a run that do not change the network it trains.
_NOT_TRAINING = ("out", "data", "data_dir", "download", "image_size", "recipe", "tta", "backup_steps")


def extractor_for(checkpoint: str):
    """`FeatureExtractor` of a kzoo classifier checkpoint, named `fid_kzoo_c10` when its run is
    exactly the `fid_kzoo_c10` recipe on CIFAR-10's classes (config.json and class_names.json
    beside it say so), else `fid_kzoo_<model name>` (with a warning saying why).

    Example:
        >>> extractor_for("runs/fid_c10/best.keras").name  # doctest: +SKIP
        'fid_kzoo_c10'
    """
    from kzoo.generative.metrics import FeatureExtractor

    extractor = FeatureExtractor.from_classifier(checkpoint)
    run = os.path.dirname(os.path.abspath(checkpoint))
    if not os.path.exists(rundir.run_file(run, "config")):
        return extractor
    with open(rundir.run_file(run, "config")) as f:
        config = json.load(f)
    recipe = config.get("recipe")
    if recipe == "fid_kzoo_c10":
        from kzoo.training.recipes import expand_recipe

        expected = expand_recipe(recipe, {})
        changed = sorted(k for k in expected if k not in _NOT_TRAINING and config.get(k) != expected[k])
        names = None
        if os.path.exists(rundir.run_file(run, "class_names")):
            with open(rundir.run_file(run, "class_names")) as f:
                names = json.load(f)
        if changed or names != CIFAR10_CLASSES:
            why = f"settings {', '.join(changed)} differ" if changed else "its classes are not CIFAR-10's"
            log.warning("%s: trained by recipe fid_kzoo_c10 but %s; its scores are named %s, not fid_kzoo_c10",
                        checkpoint, why, extractor.name)
        else:
            extractor.name = recipe
    return extractor


def _scores(cfg: GanConfig, extractor, kdata, common: dict):
    """The FID/KID callback: `extractor` and the features of --fid-images real images."""
    from kzoo.generative.callbacks import GanScores

    split = "test" if "test" in kdata.available_splits(cfg.data, data_dir=cfg.data_dir) else "train"
    real = kdata.load(cfg.data, split, batch_size=256, limit=cfg.fid_images, shuffle=False, **common)
    images = np.concatenate([np.asarray(batch[0] if isinstance(batch, tuple) else batch["images"])
                             for batch in real.dataset.as_numpy_iterator()])
    log.info("FID/KID with %s against %d real images of the %s split", extractor.name, len(images), split)
    return GanScores(extractor, extractor.features(images), every=cfg.fid_every,
                     images=cfg.fid_images, seed=cfg.seed)


def _finish(cfg: GanConfig, gan, train, scores, seconds_so_far: float) -> TrainResult:
    from kzoo.training.plots import plot_curves

    history = rundir.read_history(cfg.out)
    scored = [row for row in history if "fid" in row]
    speeds = [row["images_per_sec"] for row in history if "images_per_sec" in row]
    last = history[-1] if history else {}
    metrics = {
        "model": cfg.model,
        "gan_loss": cfg.gan_loss,
        "data": train.source,
        "epochs_completed": len(history),
        **{key: last.get(key) for key in ("d_loss", "g_loss", "d_real", "d_fake")},
        "fid": scored[-1]["fid"] if scored else None,
        "kid": scored[-1]["kid"] if scored else None,
        "kid_std": scored[-1]["kid_std"] if scored else None,
        "best_fid": min(row["fid"] for row in scored) if scored else None,
        "scored_epoch": int(scored[-1]["epoch"]) + 1 if scored else None,
        "fid_extractor": scores.extractor.name if scores else None,
        "fid_images": cfg.fid_images if scores else None,
        # One fit step is d_steps discriminator updates and one generator update on a batch.
        "steps_per_sec": float(np.median(speeds)) / cfg.batch_size if speeds else None,
        "images_per_sec": float(np.median(speeds)) if speeds else None,
        "wall_time_s": float(sum(row.get("epoch_seconds", 0.0) for row in history)),
        "process_seconds": float(seconds_so_far),
        "generator_params": int(gan.generator.count_params()),
        "discriminator_params": int(gan.discriminator.count_params()),
        "backend": keras.backend.backend(),
    }
    extractor = f" ({scores.extractor.name})" if scores else ""
    panels = [("losses", [("d_loss", "discriminator"), ("g_loss", "generator")]),
              ("mean discriminator logit", [("d_real", "real images"), ("d_fake", "generated")]),
              ("learning rates", [("lr_g", "generator"), ("lr_d", "discriminator")]),
              (f"FID{extractor}", [("fid", "FID")]), ("KID", [("kid", "KID")])]
    plot_curves(history, rundir.run_file(cfg.out, "curves"), title=f"{cfg.model} ({cfg.gan_loss})",
                panels=panels if scores else panels[:3])
    with open(rundir.run_file(cfg.out, "metrics"), "w") as f:  # last: marks the run finished
        json.dump(metrics, f, indent=2)
    return TrainResult(cfg.out, metrics, gan, history)
