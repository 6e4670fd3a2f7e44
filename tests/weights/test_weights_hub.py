"""`hf-hub:` weights against a local stand-in for the Hub (HF_ENDPOINT=http://127.0.0.1:PORT):
download, cache reuse without a request, offline errors, preprocessing from config.json."""

from __future__ import annotations

import json
import socket
import threading
import time

import keras
import numpy as np
import pytest

import kzoo
from kzoo.errors import KzooError
from kzoo.weights import get_preprocessing, load_weights, resolve_pretrained
from kzoo.weights.hub import fetch
from tests.weights.conftest import FIXTURES, build, reference
from tests.weights.hub_server import HubServer

TIMM_REPO = "timm/vit_tiny_test.augreg_in1k"
HF_REPO = "google/vit-tiny-test"

TIMM_CONFIG = {
    "architecture": "vit_tiny_test",
    "num_classes": 5,
    "pretrained_cfg": {
        "input_size": [3, 32, 32], "interpolation": "bicubic", "crop_pct": 0.9, "crop_mode": "center",
        "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "num_classes": 5,
    },
}
HF_CONFIG = {"model_type": "vit", "architectures": ["ViTForImageClassification"], "layer_norm_eps": 1e-12, "image_size": 32}
HF_PREPROCESSOR = {"do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
                   "resample": 2, "size": {"height": 32, "width": 32}}


@pytest.fixture(autouse=True)
def _no_agent_registry_request(monkeypatch):
    """huggingface_hub 2.x builds its User-Agent by fetching an agent registry from the endpoint it
    read at import (huggingface.co) on the first request of a process, unless telemetry is off; it
    reads that flag at import, so the hf_env variable comes too late. Tests stay on 127.0.0.1."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)


def repos() -> dict:
    return {
        TIMM_REPO: {
            "model.safetensors": (FIXTURES / "timm_vit.safetensors").read_bytes(),
            "config.json": json.dumps(TIMM_CONFIG).encode(),
        },
        HF_REPO: {
            "model.safetensors": (FIXTURES / "transformers_vit.safetensors").read_bytes(),
            "config.json": json.dumps(HF_CONFIG).encode(),
            "preprocessor_config.json": json.dumps(HF_PREPROCESSOR).encode(),
        },
    }


def test_download_then_cache_reuse_without_requests(hf_env, monkeypatch, tmp_path):
    ref = reference("timm_vit")
    with HubServer(repos()) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        # Built with ImageNet statistics on purpose: the checkpoint's config.json sets 0.5 / 0.5.
        model = load_weights(build("timm_vit", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), f"hf-hub:{TIMM_REPO}")
        assert ("GET", f"/{TIMM_REPO}/resolve/main/model.safetensors") in hub.requests
        assert ("HEAD", f"/{TIMM_REPO}/resolve/main/config.json") in hub.requests
        assert np.abs(np.asarray(model(ref["images"])) - ref["logits"]).max() < 1e-4
        pre = get_preprocessing(model)
        assert pre.interpolation == "bicubic" and pre.crop_pct == 0.9 and pre.input_size == (32, 32)

        hub.requests.clear()
        again = load_weights(build("timm_vit"), f"hf-hub:{TIMM_REPO}")
        assert hub.requests == []  # served from the cache
        assert np.abs(np.asarray(again(ref["images"])) - ref["logits"]).max() < 1e-4

    # The checkpoint's statistics live in the model's config: they survive .keras save/load.
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert tuple(loaded.get_layer("normalization").mean) == (0.5, 0.5, 0.5)
    # ... and so do the resize settings kzoo eval/predict apply before the model.
    assert get_preprocessing(loaded) == pre
    assert np.abs(np.asarray(loaded(ref["images"])) - ref["logits"]).max() < 1e-4

    # The server is gone and HF_HUB_OFFLINE=1: the cached file still loads.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = load_weights(build("timm_vit"), f"hf-hub:{TIMM_REPO}")
    assert np.abs(np.asarray(offline(ref["images"])) - ref["logits"]).max() < 1e-4


def test_transformers_repo_preprocessing_and_epsilon(hf_env, monkeypatch):
    ref = reference("transformers_vit")
    with HubServer(repos()) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        model = load_weights(build("transformers_vit", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)), f"hf-hub:{HF_REPO}")
    assert model.get_layer("normalization").mean == (0.5, 0.5, 0.5)
    assert model.get_layer("block_1_norm2").epsilon == 1e-12
    pre = get_preprocessing(model)
    assert (pre.interpolation, pre.crop_pct, pre.crop_mode) == ("bilinear", 1.0, "squash")
    assert np.abs(np.asarray(model(ref["images"])) - ref["logits"]).max() < 1e-4


def test_offline_missing_file_fails_at_once_naming_repo_file_and_cache(hf_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # would fail if it were contacted
    with pytest.raises(KzooError) as err:
        load_weights(build("timm_vit"), "hf-hub:timm/no_such_model.in1k")
    message = str(err.value)
    assert "\n" not in message
    assert "timm/no_such_model.in1k" in message and "model.safetensors" in message
    assert str(hf_env) in message and "models--timm--no_such_model.in1k" in message


def _fetch_with_deadline(deadline: float) -> tuple[BaseException | None, float]:
    """(what `fetch` of a file missing from the cache raised, seconds it took), failing the test
    if it has not returned by `deadline` (huggingface_hub's retries would take minutes)."""
    outcome: dict = {}

    def run():
        start = time.perf_counter()
        try:
            fetch(TIMM_REPO, "model.safetensors")
        except BaseException as err:  # handed to the test thread
            outcome["error"] = err
        outcome["seconds"] = time.perf_counter() - start

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(deadline)
    assert not worker.is_alive(), f"fetch still running after {deadline} s (retrying?)"
    return outcome.get("error"), outcome["seconds"]


def _assert_one_line_unreachable(error, seconds, caplog, capfd) -> None:
    assert isinstance(error, KzooError), error
    assert "\n" not in str(error) and "cannot be reached" in str(error) and TIMM_REPO in str(error)
    assert seconds < 5, seconds
    # huggingface_hub logs each retry ("... thrown while requesting HEAD ...", "Retrying in 1s")
    # at WARNING, through its own handler and the root logger: none of that may appear.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("huggingface_hub") and r.levelno >= 30] == []
    err = capfd.readouterr().err
    assert "Retrying" not in err and "thrown while requesting" not in err, err


def test_unreachable_hub_fails_fast_with_one_line(hf_env, monkeypatch, caplog, capfd):
    """Nothing listens on the endpoint's port (an offline machine): one refused connection, no
    retries. huggingface_hub alone retries five times with backoff (23 s measured)."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # the port is now closed: connecting to it is refused
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    caplog.set_level("WARNING")
    error, seconds = _fetch_with_deadline(15)
    _assert_one_line_unreachable(error, seconds, caplog, capfd)
    with pytest.raises(KzooError, match="cannot be reached"):  # the same through the public API
        load_weights(build("timm_vit"), f"hf-hub:{TIMM_REPO}")


def test_silent_hub_fails_after_one_timeout(hf_env, monkeypatch, caplog, capfd):
    """The endpoint accepts connections (the kernel completes them for a listening socket) but never
    answers: one request bounded by HF_HUB_ETAG_TIMEOUT, no retries with the 60 s retry timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # never accept()ed, never answered
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "2")  # an integer: huggingface_hub int()s it at import
        caplog.set_level("WARNING")
        error, seconds = _fetch_with_deadline(15)
    finally:
        silent.close()
    _assert_one_line_unreachable(error, seconds, caplog, capfd)
    assert "no answer within 2 s" in str(error)


def test_unknown_repository_online(hf_env, monkeypatch):
    with HubServer(repos()) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        with pytest.raises(KzooError) as err:
            load_weights(build("timm_vit"), "hf-hub:timm/does_not_exist")
    assert "\n" not in str(err.value) and "no such repository" in str(err.value)


def test_bad_hub_id():
    with pytest.raises(KzooError):
        load_weights(build("timm_vit"), "hf-hub:just-a-name")


def test_resolve_pretrained_defaults():
    assert resolve_pretrained("resnet50") == "hf-hub:timm/resnet50.tv_in1k"
    assert resolve_pretrained("vgg16") == "hf-hub:timm/vgg16.tv_in1k"
    assert resolve_pretrained("vit_base_patch16_224") == "hf-hub:timm/vit_base_patch16_224.augreg2_in21k_ft_in1k"
    assert resolve_pretrained(kzoo.registry.get_entry("resnet18")).endswith("resnet18.tv_in1k")
    with pytest.raises(KzooError):
        resolve_pretrained("resnet18_cifar")
