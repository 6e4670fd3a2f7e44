"""SimCLR pretraining speed of lightly (PyTorch, CPU): the peer of benchmarks/simclr_speed.py (issue 26).

lightly's SimCLR as its documentation writes it (examples/pytorch/simclr.py, with the CIFAR-10
settings of its benchmarks): a torchvision ResNet-18 backbone, `SimCLRProjectionHead(512, 2048,
128)`, `NTXentLoss(temperature=0.5)`, `SimCLRTransform(input_size=32, cj_strength=0.5,
gaussian_blur=0.0)` on PIL images, SGD (momentum 0.9, lr 0.06 * B / 256, weight decay 5e-4), and a
`DataLoader` of B images, each giving two views; float32 (`--dtype bfloat16`: the step under
`torch.autocast("cpu", torch.bfloat16)`), `torch.set_num_threads(os.cpu_count())`.
It needs no kzoo and no Keras, and runs under its own venv.

The venv (session 14, Dec 2026; the CPU wheel index is not reachable from these machines, and
torch 2.13.0+cpu with the registry's torchvision 0.28.0 fails on import with "operator
torchvision::nms does not exist", as benchmarks/README.md records for timm; the registry's CUDA
pair runs on a CPU-only machine):
    python3.11 -m venv /tmp/lightly-peer
    /tmp/lightly-peer/bin/pip install torch==2.14.1 torchvision==0.29.1 lightly
Checked (pip freeze, 2026-12-02): lightly 1.6.0, torch 2.14.1, torchvision 0.29.1, numpy 2.4.6,
pillow 13.0.0, pytorch-lightning 2.6.6, torchmetrics 1.9.0, lightning-utilities 0.15.3,
hydra-core 1.3.8, omegaconf 2.3.1, triton 3.8.0, nvidia-* (CUDA 13) wheels unused on the CPU.

Matching kzoo (kzoo.selfsup.SimCLR on `create_model("resnet18_cifar", num_classes=0)`, data from
`kzoo.data.load(..., augment="simclr")`):
- backbone: torchvision `resnet18()` with `conv1` replaced by a 3x3 stride-1 conv (64 filters, no
  bias, padding 1), `maxpool` replaced by `nn.Identity()` and `fc` dropped (global average pool
  -> 512 features): the same network as kzoo's `resnet18_cifar` (11,168,832 parameters; BN eps
  1e-5, momentum 0.1 = Keras 0.9);
- projection head: Linear(512, 2048, no bias) - BatchNorm1d - ReLU - Linear(2048, 128) on both,
  except that lightly 1.6's `SimCLRProjectionHead` ends with Linear(2048, 128, no bias) -
  BatchNorm1d(128) where kzoo's ends with Dense(128) with a bias (1,315,072 against 1,314,944
  parameters; a BatchNorm over (2B, 128) costs next to nothing);
- views: random resized crop (scale 0.08-1, ratio 3/4-4/3, bilinear), horizontal flip p=0.5,
  colour jitter (0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale p=0.2, no blur (`gaussian_blur=0.0`),
  no vertical flip or rotation (lightly's defaults), then `ToTensor` and lightly's default
  ImageNet normalisation, which kzoo applies inside the model (its `ImageNormalization`, ImageNet
  mean/std), so both sides do that work. Differences: torchvision shuffles the jitter order per
  image, kzoo's is fixed; lightly augments one PIL image at a time in the DataLoader, kzoo a whole
  batch at once in tf.data;
- loss: NT-Xent at temperature 0.5 over the 2B embeddings on both;
- step: lightly's example embeds the two views in two forward passes of B (`--forward two`, the
  default, as documented); kzoo runs one pass over the 2B views ([view 1; view 2]).
  `--forward concat` runs one pass over `torch.cat([x0, x1])` instead. BatchNorm statistics then
  differ (per view vs over both), the arithmetic is the same;
- SGD: torch adds the weight decay to the gradient (L2), Keras' `SGD(weight_decay=...)` decays the
  weights directly (decoupled); the same work per step.

Images: the CIFAR-10 training split of `../shared/data/cifar10-jpg.tar.gz` (relative to the repo),
`cifar10/train/<class>/NNNN.jpg`, decoded once with Pillow to a (50000, 32, 32, 3) uint8 array
before anything is timed (the Dataset turns row i back into a PIL image for the transform).

Method: W warm-up steps of each kind, then N timed steps; pairs/s = B * N / seconds.
- end to end (`e2e`): a fresh `DataLoader(shuffle=True, drop_last=True)` iterator per measurement
  (so the time its workers take to start is not counted, the first `--lead` step is untimed), then
  N steps of fetch batch (augmentation in the loader) + forward + loss + backward + SGD;
- train step alone (`step`): N steps on one batch of views taken from the loader beforehand.
`--num-workers 0,2` measures the loader in the main process (0) and with 2 worker processes; on a
2-core machine the workers compete with the training step's 2 threads.

Run:
    /tmp/lightly-peer/bin/python benchmarks/simclr_peer.py                           # B=128, 6 steps
    /tmp/lightly-peer/bin/python benchmarks/simclr_peer.py --batch 16 --steps 2 --warmup 1
    /tmp/lightly-peer/bin/python benchmarks/simclr_peer.py --serve ...   # stdin protocol, for simclr_speed.py
Without `--serve` it prints one JSON line: {"e2e": {"0": pairs/s, "2": pairs/s}, "step": pairs/s, ...}.
With `--serve` it prints {"ready": true, ...} after the warm-up, then answers each stdin line
`e2e WORKERS N` or `step N` with one JSON line {"seconds": s, "pairs_per_s": r}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_ARCHIVE = os.path.normpath(os.path.join(ROOT, "..", "shared", "data", "cifar10-jpg.tar.gz"))


def load_archive(path: str, split: str = "train", limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`<root>/<split>/<class>/<file>` images of a tar archive as (M, H, W, 3) uint8 and int64 labels,
    ordered by class name then file name (the first `limit` of that order if limit > 0)."""
    members = {}
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[1] == split:
                members[(parts[2], parts[3])] = tar.extractfile(member).read()
    keys = sorted(members)
    if limit:
        keys = keys[:limit]
    classes = sorted({k[0] for k in members})
    images = np.stack([np.asarray(Image.open(io.BytesIO(members[k])).convert("RGB")) for k in keys])
    labels = np.array([classes.index(k[0]) for k in keys], dtype=np.int64)
    return images, labels


def build(args):
    import torch
    import torchvision
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform
    from torch import nn

    class ArrayDataset(torch.utils.data.Dataset):
        """uint8 (N, H, W, 3) in memory -> (lightly transform of the PIL image, label)."""

        def __init__(self, images, labels, transform):
            self.images, self.labels, self.transform = images, labels, transform

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])

    class SimCLR(nn.Module):  # lightly's examples/pytorch/simclr.py, hidden width 2048
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone
            self.projection_head = SimCLRProjectionHead(512, 2048, 128)

        def forward(self, x):
            return self.projection_head(self.backbone(x).flatten(start_dim=1))

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    resnet.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    resnet.maxpool = nn.Identity()
    backbone = nn.Sequential(*list(resnet.children())[:-1])  # drops fc; ends with the avgpool
    model = SimCLR(backbone)
    criterion = NTXentLoss(temperature=0.5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06 * args.batch / 256, momentum=0.9, weight_decay=5e-4)
    transform = SimCLRTransform(input_size=32, cj_prob=0.8, cj_strength=0.5, min_scale=0.08, random_gray_scale=0.2,
                                gaussian_blur=0.0, vf_prob=0.0, hf_prob=0.5, rr_prob=0.0)
    images, labels = load_archive(args.data, "train", args.limit)
    dataset = ArrayDataset(images, labels, transform)
    model.train()

    # --dtype bfloat16: torch's CPU autocast (matmuls and convolutions in bfloat16, float32 weights),
    # the counterpart of Keras' mixed_bfloat16 policy on the kzoo side.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bfloat16")

    def train_step(x0, x1):
        with autocast:
            if args.forward == "concat":
                z = model(torch.cat([x0, x1]))
                z0, z1 = z[:len(x0)], z[len(x0):]
            else:
                z0, z1 = model(x0), model(x1)
        loss = criterion(z0.float(), z1.float())  # float32, as kzoo's float32 embedding layer and loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss

    def loader(workers: int):
        return torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True,
                                           num_workers=workers, persistent_workers=False)

    def e2e(workers: int, steps: int) -> float:
        """Seconds for `steps` loader + train steps after `args.lead` untimed ones (fresh iterator)."""
        batches = iter(loader(workers))
        for _ in range(args.lead):
            (x0, x1), _ = next(batches)
            train_step(x0, x1)
        start = time.perf_counter()
        for _ in range(steps):
            (x0, x1), _ = next(batches)
            train_step(x0, x1)
        seconds = time.perf_counter() - start
        del batches  # shuts its workers down
        return seconds

    (fixed0, fixed1), _ = next(iter(loader(0)))

    def step(steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            train_step(fixed0, fixed1)
        return time.perf_counter() - start

    info = {"params_backbone": sum(p.numel() for p in backbone.parameters()),
            "params": sum(p.numel() for p in model.parameters()), "images": len(images),
            "batch": args.batch, "forward": args.forward, "dtype": args.dtype, "threads": torch.get_num_threads(),
            "versions": versions()}
    return e2e, step, info


def versions() -> dict:
    import lightly
    import PIL
    import torch
    import torchvision

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "lightly": lightly.__version__, "numpy": np.__version__, "pillow": PIL.__version__}


def reply(obj: dict) -> None:
    sys.__stdout__.write(json.dumps(obj) + "\n")
    sys.__stdout__.flush()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=128, help="pairs (images) per step; 2x views")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps of each kind first")
    parser.add_argument("--lead", type=int, default=1, help="untimed steps at the start of each e2e measurement")
    parser.add_argument("--num-workers", default="0,2", help="DataLoader workers to measure, comma-separated")
    parser.add_argument("--forward", choices=("two", "concat"), default="two",
                        help="two passes of B (lightly's example) or one of 2B (kzoo's layout)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: os.cpu_count())")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="bfloat16: the step under torch.autocast('cpu', torch.bfloat16)")
    parser.add_argument("--data", default=DEFAULT_ARCHIVE, help="CIFAR-10 JPEG archive (its train split)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N training images (quick tests)")
    parser.add_argument("--serve", action="store_true", help="answer timing requests on stdin (simclr_speed.py)")
    args = parser.parse_args(argv)
    sys.stdout = sys.stderr  # library chatter off the reply channel

    import torch

    torch.set_num_threads(args.threads or os.cpu_count())
    workers = [int(w) for w in args.num_workers.split(",") if w.strip()]
    t0 = time.perf_counter()
    e2e, step, info = build(args)
    info["setup_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for w in workers:
        if args.warmup:
            e2e(w, max(args.warmup - args.lead, 0))
    step(args.warmup)
    info["warmup_s"] = time.perf_counter() - t0
    if args.serve:
        reply({"ready": True, **info})
        for line in sys.stdin:
            parts = line.split()
            if not parts or parts[0] == "quit":
                break
            if parts[0] == "e2e":
                seconds = e2e(int(parts[1]), int(parts[2]))
            else:
                seconds = step(int(parts[1]))
            reply({"seconds": seconds, "pairs_per_s": args.batch * int(parts[-1]) / seconds})
        return
    result = {"e2e": {}, **info, "steps": args.steps}
    for w in workers:
        result["e2e"][str(w)] = args.batch * args.steps / e2e(w, args.steps)
    result["step"] = args.batch * args.steps / step(args.steps)
    reply(result)


if __name__ == "__main__":
    main()
