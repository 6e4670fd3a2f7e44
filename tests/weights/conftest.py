"""Weights tests: tiny checkpoints from tests/fixtures/make_weights_fixtures.py, no network."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "weights"
NAMES = ("timm_vit", "transformers_vit", "torchvision_resnet", "torchvision_resnet_bottleneck", "torchvision_vgg", "timm_vgg")


def reference(name: str) -> dict:
    with np.load(FIXTURES / f"{name}.npz", allow_pickle=False) as d:
        ref = {k: d[k] for k in d.files}
    ref["images"] = ref["images"].astype("float32")
    ref["kzoo"] = json.loads(str(ref["kzoo"]))
    return ref


def build(name: str, **overrides):
    """The kzoo model matching fixture `name` (builder + keywords stored in its .npz)."""
    from kzoo.models import build_resnet, build_vgg, build_vit

    ref = reference(name)
    cfg = dict(ref["kzoo"])
    builder = {"vit": build_vit, "resnet": build_resnet, "vgg": build_vgg}[cfg.pop("builder")]
    if isinstance(cfg.get("depth"), list):
        cfg["depth"] = tuple(cfg["depth"])
    cfg.update(mean=tuple(ref["mean"].tolist()), std=tuple(ref["std"].tolist()))
    cfg.update(overrides)
    return builder(**cfg)


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
    """A private HF cache, online, no token; kzoo reads these variables at call time."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # The stand-in server shares 2 busy cores with the test workers: 10 s flaked once under load.
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "60")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return tmp_path / "hf-cache"
