"""An independent PyTorch run of the published airbench94 recipe (Jordan 2024, "94% on CIFAR-10 in
3.29 seconds on a single GPU"), written from the paper's description for this project: the peer
against which `kzoo train --recipe airbench94` is checked on the same data and the same CPU.

Why it exists: kzoo's airbench94 reaches about 90% (TTA 91%) on the JPEG copy of CIFAR-10, where the
reference reports 94% on the original images. Running the reference recipe itself, in PyTorch and
with none of kzoo's deviations (alternating flips, stem bias frozen after 3 epochs, weight decay on
BatchNorm offsets, the summed loss), on the same archive separates "the data" from "kzoo".

Float32 on the CPU (the reference uses float16 on a GPU), no torch.compile. Needs torch and Pillow,
which kzoo does not depend on:

    python benchmarks/airbench94_torch.py --data ../shared/data/cifar10-jpg.tar.gz --seed 0 \
        --out runs/race/airbench94_torch_s0.json
"""

from __future__ import annotations

import argparse
import io
import json
import math
import tarfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
HYP = dict(epochs=9.9, batch_size=1024, lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0,
           label_smoothing=0.2, whiten_bias_epochs=3, translate=2, widths=(64, 256, 256), bn_momentum=0.6,
           scaling_factor=1 / 9)


def load_archive(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """`<root>/{train,test}/<class>/<image>` inside a tar.gz -> {split: (uint8 NHWC, int64 labels)}.
    Not kzoo.data: the peer must not share code with what it checks, nor need Keras in its venv."""
    files: dict[str, list[tuple[str, bytes]]] = {"train": [], "test": []}
    with tarfile.open(path) as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) >= 4 and parts[-3] in files:
                files[parts[-3]].append((parts[-2] + "/" + parts[-1], tar.extractfile(member).read()))
    classes = sorted({name.split("/")[0] for name, _ in files["train"]})
    out = {}
    for split, items in files.items():
        items.sort()
        images = np.stack([np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) for _, data in items])
        labels = np.array([classes.index(name.split("/")[0]) for name, _ in items], dtype="int64")
        out[split] = (images, labels)
    return out


def normalize(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


class Conv(nn.Conv2d):
    """3x3 'same' convolution without bias whose first `in_channels` filters start as the identity."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, padding="same", bias=False)

    def reset_parameters(self):
        super().reset_parameters()
        nn.init.dirac_(self.weight.data[:self.weight.shape[1]])


def batch_norm(channels: int) -> nn.BatchNorm2d:
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=1 - HYP["bn_momentum"])
    norm.weight.requires_grad = False  # scale fixed at 1; only the offset trains
    return norm


def conv_group(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(Conv(cin, cout), nn.MaxPool2d(2), batch_norm(cout), nn.GELU(),
                         Conv(cout, cout), batch_norm(cout), nn.GELU())


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def make_net() -> nn.Sequential:
    w1, w2, w3 = HYP["widths"]
    whiten = nn.Conv2d(3, 24, 2, padding=0, bias=True)
    whiten.weight.requires_grad = False
    net = nn.Sequential(whiten, nn.GELU(), conv_group(24, w1), conv_group(w1, w2), conv_group(w2, w3),
                        nn.MaxPool2d(3), nn.Flatten(), nn.Linear(w3, 10, bias=False), Scale(HYP["scaling_factor"]))
    return net.to(memory_format=torch.channels_last)


def init_whitening(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Filters = patch-covariance eigenvectors / sqrt(eigenvalue + eps), strongest first, then negated."""
    k = conv.weight.shape[-1]
    patches = images.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * k * k).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (eigenvectors.T.flip(0) / torch.sqrt(eigenvalues.flip(0) + eps)[:, None]).reshape(-1, 3, k, k)
    conv.weight.data[:] = torch.cat([filters, -filters]).float()


def translate(padded: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random `size` x `size` crop of each reflect-padded image (uniform shift in every direction)."""
    span = padded.shape[-1] - size + 1
    dy = torch.randint(span, (len(padded),), generator=generator)
    dx = torch.randint(span, (len(padded),), generator=generator)
    out = torch.empty(len(padded), padded.shape[1], size, size)
    for y in range(span):
        for x in range(span):
            mask = (dy == y) & (dx == x)
            out[mask] = padded[mask, :, y:y + size, x:x + size]
    return out


class Lookahead:
    """Every 5 steps the slow copy of all float state (BatchNorm statistics included) moves toward the
    network by 1 - decay and the network is reset to it."""

    def __init__(self, net: nn.Module):
        self.slow = {k: v.detach().clone() for k, v in net.state_dict().items() if v.is_floating_point()}

    def update(self, net: nn.Module, decay: float) -> None:
        state = net.state_dict()
        for key, slow in self.slow.items():
            slow.lerp_(state[key], 1 - decay)
            state[key].copy_(slow)


@torch.no_grad()
def evaluate(net: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 2000) -> dict[str, float]:
    net.eval()
    plain, mirror, full = [], [], []
    for start in range(0, len(images), batch):
        x = images[start:start + batch].contiguous(memory_format=torch.channels_last)
        logits = net(x)
        both = 0.5 * (logits + net(x.flip(-1)))
        padded = F.pad(x, (1,) * 4, "reflect")
        shifted = [padded[:, :, 0:32, 0:32], padded[:, :, 2:34, 2:34]]
        moved = torch.stack([0.5 * (net(s) + net(s.flip(-1))) for s in shifted]).mean(0)
        plain.append(logits.argmax(1))
        mirror.append(both.argmax(1))
        full.append((0.5 * both + 0.5 * moved).argmax(1))
    return {name: float((torch.cat(p) == labels).float().mean()) for name, p in
            (("top1", plain), ("top1_tta_flip", mirror), ("top1_tta_flip_translate", full))}


def train(data: dict, epochs: float, seed: int) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = normalize(data["train"][0]), torch.from_numpy(data["train"][1])
    test_x, test_y = normalize(data["test"][0]), torch.from_numpy(data["test"][1])
    order = torch.randperm(len(train_x), generator=generator)  # the archive is sorted by class
    net = make_net()
    init_whitening(net[0], train_x[order[:5000]])

    bs, momentum = HYP["batch_size"], HYP["momentum"]
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))
    lr = HYP["lr"] / kilostep_scale  # per example of a summed loss
    wd = HYP["weight_decay"] * bs / kilostep_scale
    lr_bias = lr * HYP["bias_scaler"]
    # the only trainable vectors are the BatchNorm offsets and the stem's bias (at the base rate)
    groups: dict[bool, list] = {True: [], False: []}
    for k, p in net.named_parameters():
        if p.requires_grad:
            groups[p.ndim == 1 and k != "0.bias"].append(p)
    norm_biases, others = groups[True], groups[False]
    optimizer = torch.optim.SGD([dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
                                 dict(params=others, lr=lr, weight_decay=wd / lr)], momentum=momentum, nesterov=True)
    steps_per_epoch = len(train_x) // bs
    total = math.ceil(steps_per_epoch * epochs)
    warmup = int(total * 0.23)

    def schedule(step: int) -> float:
        if step < warmup:
            return 0.2 + 0.8 * step / warmup
        return 1.0 - 0.93 * (step - warmup) / (total - warmup)

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    alpha = 0.95 ** 5 * (torch.arange(total + 1) / total) ** 3
    lookahead = Lookahead(net)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=HYP["label_smoothing"], reduction="sum")

    pad = HYP["translate"]
    flip = torch.rand(len(train_x), generator=generator) < 0.5
    base = torch.where(flip[:, None, None, None], train_x.flip(-1), train_x)
    padded = F.pad(base, (pad,) * 4, "reflect")
    step, history = 0, []
    for epoch in range(math.ceil(epochs)):
        started = time.perf_counter()
        net[0].bias.requires_grad = epoch < HYP["whiten_bias_epochs"]
        net.train()
        images = translate(padded, 32, generator)
        if epoch % 2 == 1:  # every image alternates orientation from epoch to epoch
            images = images.flip(-1)
        perm = torch.randperm(len(images), generator=generator)
        seen = 0
        for b in range(steps_per_epoch):
            idx = perm[b * bs:(b + 1) * bs]
            x = images[idx].contiguous(memory_format=torch.channels_last)
            loss = loss_fn(net(x), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            seen += len(idx)
            if step % 5 == 0:
                lookahead.update(net, float(alpha[step]))
            if step >= total:
                lookahead.update(net, 1.0)
                break
        seconds = time.perf_counter() - started
        history.append(dict(epoch=epoch + 1, steps=step, seconds=round(seconds, 1),
                            images_per_second=round(seen / seconds, 1), last_loss=round(loss.item() / len(idx), 4)))
        print(json.dumps(history[-1]), flush=True)
    return dict(history=history, steps=step, test=evaluate(net, test_x, test_y))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="CIFAR-10 image-folder .tar.gz")
    parser.add_argument("--epochs", type=float, default=HYP["epochs"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the results here as JSON")
    args = parser.parse_args()
    started = time.perf_counter()
    data = load_archive(args.data)
    loaded = time.perf_counter() - started
    result = train(data, args.epochs, args.seed)
    result.update(epochs=args.epochs, seed=args.seed, load_seconds=round(loaded, 1),
                  wall_seconds=round(time.perf_counter() - started, 1), torch=torch.__version__,
                  threads=torch.get_num_threads(), hyperparameters=HYP)
    print(json.dumps(result["test"]), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
