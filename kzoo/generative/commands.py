"""`kzoo gan train` and `kzoo gan sample`: parsers and handlers (Keras-free until a command runs)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

from kzoo.generative.config import GAN_HELP, UNUSED_TRAIN_FIELDS, GanConfig
from kzoo.training.flags import add_train_flags


def _cmd_train(args: argparse.Namespace) -> int:
    from kzoo.generative.training import train_gan

    fields = {f.name for f in dataclasses.fields(GanConfig)}
    result = train_gan(GanConfig(**{k: v for k, v in vars(args).items() if k in fields}))
    m = result.metrics
    scores = (f"  {m['fid_extractor']}: FID {m['fid']:.2f}  KID {m['kid']:.4f} (epoch {m['scored_epoch']})"
              if m.get("fid") is not None else "")
    speed = f"  {m['steps_per_sec']:.2f} steps/s" if m.get("steps_per_sec") else ""
    print(f"{m['model']} ({m['gan_loss']}): {m['epochs_completed']} epochs, d_loss {m['d_loss']:.4f} g_loss "
          f"{m['g_loss']:.4f}{scores}{speed}  run: {result.run_dir}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    from kzoo.generative.sampling import sample_images

    m = sample_images(args.checkpoint, args.n, args.out, seed=args.seed, batch_size=args.batch_size,
                      ema=args.ema, overwrite=args.overwrite)
    print(f"wrote {m['n']} images ({'EMA' if m['ema'] else 'trained'} generator of {m['gan']}) to {args.out}")
    return 0


def add_commands(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `gan train` and `gan sample` with the `kzoo` parser; `command` is cli's subcommand factory."""
    group = sub.add_parser("gan", help="train GANs (dcgan_32, sngan_32) and sample images from them",
                           description="GANs trained by one model.fit, in a kzoo run directory.",
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    gan_sub = group.add_subparsers(dest="gan_command", required=True, metavar="COMMAND")

    p = command(gan_sub, "train", "train a GAN with model.fit and write a run directory",
                "Train a generator and a discriminator on the images of --data (labels are ignored) with\n"
                "model.fit: two Adam optimizers, --d-steps discriminator updates per generator update, an EMA\n"
                "of the generator. The run directory gets last.keras (the whole GAN), samples/ (a grid of\n"
                "fixed noise per epoch) and samples.gif, interpolation.png, curves.png, history.csv and\n"
                "metrics.json; with --fid-every, FID and KID over a kzoo classifier's features (best.keras:\n"
                "the lowest --monitor). Rerunning the same command resumes an interrupted run.",
                "kzoo gan train --model sngan_32 --data cifar10-jpg.tar.gz --epochs 40 --fid-every 5 "
                "--fid-extractor runs/fid_c10/best.keras --out runs/sngan", _cmd_train)
    add_train_flags(p, GanConfig, GAN_HELP, exclude=UNUSED_TRAIN_FIELDS)

    p = command(gan_sub, "sample", "write images of a trained GAN as PNG files",
                "Write --n images of a kzoo gan train checkpoint to a folder (sample_NNNNNN.png and\n"
                "samples.json), from seeded noise. Checks the free disk space first; fills the folder\n"
                "beside its destination and renames it into place when done.",
                "kzoo gan sample --checkpoint runs/sngan/last.keras --n 10000 --out fakes/sngan", _cmd_sample)
    p.add_argument("--checkpoint", required=True, help="RUN/last.keras or RUN/best.keras of kzoo gan train")
    p.add_argument("--n", type=int, required=True, help="how many images")
    p.add_argument("--out", required=True, help="folder to write (must be new or empty, see --overwrite)")
    p.add_argument("--seed", type=int, default=0, help="seeds the noise (default: 0)")
    p.add_argument("--batch-size", type=int, default=256, help="images per generator call (default: 256)")
    p.add_argument("--ema", action=argparse.BooleanOptionalAction, default=True,
                   help="use the generator's EMA weights when the run kept them (default: yes)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a folder an earlier kzoo gan sample wrote (default: refuse a non-empty --out)")
