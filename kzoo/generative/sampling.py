"""`kzoo gan sample`: images of a trained GAN written as PNG files, safely.

The folder is filled beside its destination and renamed into place when every file is written,
so an interrupted or failed run leaves no half-filled folder, and an earlier one is replaced only
when it is a previous `kzoo gan sample` output (samples.json says so) and --overwrite is given.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from typing import Any

from kzoo.errors import KzooError

log = logging.getLogger("kzoo.generative")

MANIFEST = "samples.json"
# A 32x32 RGB PNG of generated (noisy) content is 2.5-3.3 KB; each file also takes a whole block.
_PNG_BYTES = 3400
_SPARE_BYTES = 64 << 20  # leave the disk this much


def load_gan(path: str):
    """Load a `kzoo gan train` checkpoint (safe mode); a classifier or any other model is refused."""
    import keras

    import kzoo.generative.gan  # noqa: F401  registers the GAN class for deserialisation
    from kzoo.training.api import GAN_CLASS, saved_class

    if not os.path.isfile(path):
        raise KzooError(f"--checkpoint {path} not found; pass RUN/last.keras or RUN/best.keras of kzoo gan train")
    kind = saved_class(path)
    if kind != GAN_CLASS:
        raise KzooError(f"--checkpoint {path} holds a {kind or 'non-Keras'} model, not a GAN: kzoo gan sample takes a "
                        "checkpoint of kzoo gan train (RUN/last.keras or RUN/best.keras)")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # a damaged file: one line
        raise KzooError(f"cannot load {path}: {str(err).strip().splitlines()[0] if str(err).strip() else err}") from None


def bytes_needed(n: int, block: int) -> int:
    """Disk space `n` sample PNGs take on a file system with `block`-byte blocks, plus a spare."""
    return n * math.ceil(_PNG_BYTES / block) * block + _SPARE_BYTES


def _check_destination(out: str, n: int, overwrite: bool) -> None:
    if os.path.isfile(out):
        raise KzooError(f"--out {out} is a file; give a folder for the images")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise KzooError(f"--out {out} is not empty ({len(os.listdir(out))} entries); pass --overwrite to replace a "
                            "previous kzoo gan sample folder, or choose another --out (nothing was changed)")
        if not os.path.exists(os.path.join(out, MANIFEST)):
            raise KzooError(f"--out {out} holds files kzoo gan sample did not write (no {MANIFEST}); --overwrite only "
                            "replaces its own folders: choose another --out (nothing was changed)")
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.isdir(parent):
        parent = os.path.dirname(parent)
    stats = os.statvfs(parent)
    free, need = stats.f_bavail * stats.f_frsize, bytes_needed(n, stats.f_frsize)
    if need > free:
        raise KzooError(f"--n {n} needs about {need / 1e9:.2f} GB at {parent} but {free / 1e9:.2f} GB are free: lower "
                        f"--n (at most about {max(0, free - _SPARE_BYTES) * n // max(need - _SPARE_BYTES, 1):,}) or "
                        "choose another --out")


def sample_images(checkpoint: str, n: int, out: str, seed: int = 0, batch_size: int = 256, ema: bool = True,
                  overwrite: bool = False) -> dict[str, Any]:
    """Write `n` images of the GAN in `checkpoint` to `out` as sample_NNNNNN.png, with samples.json.

    The noise is `keras.random.normal((n, latent_dim), seed=seed)`, the generator its EMA copy when
    the run kept one and `ema` is True. Returns the manifest written to samples.json.

    Example:
        >>> from kzoo.generative.sampling import sample_images
        >>> sample_images("runs/sngan/last.keras", 10_000, "fakes/sngan")["n"]  # doctest: +SKIP
        10000
    """
    import keras

    from kzoo.generative.callbacks import save_png, uint8_pixels

    if n < 1 or batch_size < 1:
        raise KzooError(f"--n and --batch-size must be at least 1, got {n} and {batch_size}")
    _check_destination(out, n, overwrite)
    gan = load_gan(checkpoint)
    staging = f"{out.rstrip(os.sep)}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        noise = keras.ops.convert_to_numpy(keras.random.normal((n, gan.latent_dim), seed=seed))
        width = max(6, len(str(n - 1)))
        for start in range(0, n, batch_size):
            pixels = uint8_pixels(gan.sample(noise[start:start + batch_size], ema=ema))
            for i, image in enumerate(pixels, start):
                save_png(image, os.path.join(staging, f"sample_{i:0{width}d}.png"))
        used_ema = bool(ema and gan.ema_weights)
        manifest = {"checkpoint": os.path.abspath(checkpoint), "n": n, "seed": seed, "ema": used_ema,
                    "gan": gan.name, "latent_dim": gan.latent_dim, "files": f"sample_{'N' * width}.png"}
        with open(os.path.join(staging, MANIFEST), "w") as f:
            json.dump(manifest, f, indent=2)
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("wrote %d images of %s (%s generator) to %s", n, checkpoint, "EMA" if used_ema else "trained", out)
    return manifest


def _swap_into_place(staging: str, out: str) -> None:
    """Rename the filled folder to `out`; a previous sample folder there is removed only afterwards."""
    old = None
    if os.path.isdir(out):
        old = f"{out.rstrip(os.sep)}.old-{os.getpid()}"
        os.replace(out, old)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    os.replace(staging, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)

