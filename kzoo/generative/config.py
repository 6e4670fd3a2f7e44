"""`GanConfig`: `kzoo gan train`'s settings, the `kzoo train` fields a GAN uses plus its own.

Keras-free (the CLI's help and argument checks import it without starting a backend)."""

from __future__ import annotations

from dataclasses import dataclass

from kzoo.errors import KzooError
from kzoo.training.config import TrainConfig

#: The registered pairs (kzoo.generative.networks.GAN_MODELS, which imports Keras) and their
#: default objective. A test keeps the two lists equal.
GAN_MODEL_LOSSES = {"dcgan_32": "non_saturating", "sngan_32": "hinge"}
GAN_LOSS_NAMES = ("hinge", "non_saturating")

#: `TrainConfig` fields a GAN run has no use for: `kzoo gan train` has no flag for them and the
#: config keeps their defaults. The optimizer is Adam for both networks (--lr-g, --lr-d, --beta-1,
#: --beta-2); the generator's EMA is --g-ema; the images are 32x32.
UNUSED_TRAIN_FIELDS = (
    "lr", "optimizer", "momentum", "weight_decay", "label_smoothing", "loss", "image_size", "val_split",
    "mixed_precision", "distribute", "weights", "pretrained", "freeze", "clip_norm", "ema", "layer_decay",
    "norm_bias_lr", "lookahead", "augmix_jsd", "tta", "recipe", "augment_on", "shots", "class_subset",
    "train_fraction",
)

GAN_HELP = {
    "model": "GAN architecture: " + ", ".join(GAN_MODEL_LOSSES),
    "data": "training images (any labels are ignored): tfds:NAME, an image folder, a .tar.gz/.zip of one, a "
            ".npz; resized to 32x32; default: the bundled CIFAR-10 sample",
    "augment": "augmentation preset of the real images (GANs usually train on plain images, or with flip)",
    "monitor": "the logged figure that picks best.keras and drives --early-stopping (fid or kid: lower is "
               "better; needs --fid-every)",
    "lr_g": "Adam learning rate of the generator",
    "lr_d": "Adam learning rate of the discriminator (the source's fix for a discriminator that outruns "
            "the generator: lower this, raise --lr-g)",
    "beta_1": "Adam beta_1 of both networks (DCGAN: 0.5)",
    "beta_2": "Adam beta_2 of both networks",
    "gan_loss": "objective: hinge or non_saturating (default: the architecture's, hinge for sngan_32, "
                "non_saturating for dcgan_32)",
    "d_steps": "discriminator updates per generator update",
    "reuse_fakes": "train the generator on the last discriminator update's fakes (one generator forward pass "
                   "per step, as PyTorch's DCGAN example); --no-reuse-fakes draws fresh noise for it (keras.io's)",
    "latent_dim": "size of the generator's noise vector",
    "width": "base channel count (64 = the published networks; smaller trains faster)",
    "g_ema": "keep an exponential moving average of the generator with this decay per step; samples, "
             "FID/KID and generator.keras use it (0 = off)",
    "sample_every": "write a grid of samples of fixed noise every N epochs (samples/epoch_NNNN.png, and "
                    "samples.gif at the end; 0 = off)",
    "fid_every": "measure FID and KID every N epochs (and at the last epoch) against --fid-images real "
                 "images; 0 = off",
    "fid_extractor": "feature network of FID/KID: a kzoo classifier checkpoint (.keras), e.g. a run of "
                     "kzoo train --recipe fid_kzoo_c10 (its scores are named fid_kzoo_c10)",
    "fid_images": "real and generated images per FID/KID measurement (the real ones: the test split of "
                  "--data when it has one, else the training split)",
}


@dataclass
class GanConfig(TrainConfig):
    """A GAN run: `kzoo train`'s run directory, resume, budget, schedule and logs, with two Adam
    optimizers. The defaults are the DCGAN paper's optimizer (Adam 2e-4, beta_1 0.5), which
    Miyato et al. also ran their standard-CNN SNGAN with (their setting C), one discriminator
    step per generator step, batch 64, a constant rate, and an EMA of the generator.

    Example:
        >>> GanConfig(model="dcgan_32", epochs=2).validate().gan_loss
        'non_saturating'
    """

    model: str = "sngan_32"
    out: str = "runs/gan"
    epochs: int = 20
    batch_size: int = 64
    schedule: str = "constant"
    augment: str = "none"
    monitor: str = "fid"
    # dcgan_32 under TF on the 2-core CPU: 4.17 steps/s without XLA vs 4.03 with (docs/benchmarks.md).
    jit_compile: bool = False
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    gan_loss: str | None = None
    d_steps: int = 1
    reuse_fakes: bool = True
    latent_dim: int = 128
    width: int = 64
    g_ema: float | None = 0.999
    sample_every: int = 1
    fid_every: int = 0
    fid_extractor: str | None = None
    fid_images: int = 5000

    def validate(self) -> GanConfig:
        """TrainConfig's checks plus the GAN's; a one-line KzooError names the first bad field."""
        if self.model not in GAN_MODEL_LOSSES:
            raise KzooError(f"--model {self.model!r} is not a GAN architecture: choose one of "
                            f"{', '.join(GAN_MODEL_LOSSES)}")
        for flag in ("lr_g", "lr_d"):
            if not getattr(self, flag) > 0:
                raise KzooError(f"--{flag.replace('_', '-')} must be positive, got {getattr(self, flag)}")
        self.lr = self.lr_g  # the generator's rate is the run's `lr` (TrainConfig's checks, logs)
        super().validate()
        self.gan_loss = self.gan_loss or GAN_MODEL_LOSSES[self.model]
        if self.gan_loss not in GAN_LOSS_NAMES:
            raise KzooError(f"--gan-loss {self.gan_loss!r} is not supported: choose one of {', '.join(GAN_LOSS_NAMES)}")
        for flag in ("beta_1", "beta_2"):
            if not 0 <= getattr(self, flag) < 1:
                raise KzooError(f"--{flag.replace('_', '-')} must be in [0, 1), got {getattr(self, flag)}")
        for flag in ("d_steps", "latent_dim", "width"):
            if getattr(self, flag) < 1:
                raise KzooError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(self, flag)}")
        if self.g_ema == 0:
            self.g_ema = None
        if self.g_ema is not None and not 0 < self.g_ema < 1:
            raise KzooError(f"--g-ema must be in [0, 1) (0 = off), got {self.g_ema}")
        if self.sample_every < 0 or self.fid_every < 0:
            raise KzooError(f"--sample-every and --fid-every must be >= 0, got {self.sample_every}, {self.fid_every}")
        if self.fid_every and not self.fid_extractor:
            raise KzooError("--fid-every needs --fid-extractor CHECKPOINT (a kzoo classifier, e.g. from kzoo train "
                            "--recipe fid_kzoo_c10 --data cifar10-jpg.tar.gz)")
        if self.fid_images < 2:
            raise KzooError(f"--fid-images must be at least 2, got {self.fid_images}")
        if self.monitor in ("fid", "kid") and self.early_stopping and not self.fid_every:
            raise KzooError(f"--early-stopping watches --monitor {self.monitor}, which needs --fid-every")
        return self
