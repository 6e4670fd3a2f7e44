"""`kzoo serve`'s API in-process: answers, micro-batching, and every bad input of issue #30 (4xx JSON,
the server keeps answering)."""

from __future__ import annotations

import asyncio
import io
import json
import struct
import zlib

import keras
import numpy as np
import pytest
from PIL import Image

import kzoo
from kzoo.explain.commands import load_image

pytest.importorskip("fastapi", reason="kzoo[serve] is not installed")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from kzoo.serve import Predictor, create_app  # noqa: E402

CLASSES = ["cat", "dog", "<b>bird</b>"]


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    keras.utils.set_random_seed(0)
    model = kzoo.create_model("resnet18_cifar", num_classes=3, width=8, layers=(1, 1))
    head = model.layers[-1]  # a wide head: predictions differ between images
    head.kernel.assign(np.random.default_rng(0).normal(0, 3, head.kernel.shape).astype("float32"))
    model.save(str(run / "best.keras"))
    (run / "class_names.json").write_text(json.dumps(CLASSES))
    (run / "metrics.json").write_text(json.dumps({"model": "resnet18_cifar", "top1": 0.75, "evaluated_on": "test"}))
    return Predictor(str(run / "best.keras"), max_batch=8)


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, max_upload_mb=1)) as c:
        yield c


def png(seed: int, size=(40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def expected(predictor, data: bytes) -> np.ndarray:
    x = load_image(data, predictor.input_shape[:2], 3, predictor.preprocessing)[None]
    return keras.ops.convert_to_numpy(keras.ops.softmax(predictor.model.predict_on_batch(x)))[0]


def test_health_and_model_card(client):
    assert client.get("/health").json()["status"] == "ok"
    card = client.get("/model").json()
    assert card["classes"] == CLASSES and card["test_top1"] == 0.75 and card["input_shape"] == [32, 32, 3]
    assert card["parameters"] > 1000
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_predict_matches_the_model_for_each_image(client, predictor):
    files = [("images", (f"img{i}.png", png(i), "image/png")) for i in range(3)]
    body = client.post("/predict", files=files, params={"top_k": 2}).json()
    assert [r["file"] for r in body["results"]] == ["img0.png", "img1.png", "img2.png"]
    for i, result in enumerate(body["results"]):
        probs = expected(predictor, png(i))
        top = np.argsort(-probs)[:2]
        assert [p["index"] for p in result["predictions"]] == top.tolist()
        assert [p["name"] for p in result["predictions"]] == [CLASSES[j] for j in top]
        np.testing.assert_allclose([p["probability"] for p in result["predictions"]], probs[top], atol=1e-5)
    assert body["timing"]["model_ms"] >= 0
    csv = client.post("/predict", files=files, params={"format": "csv"}).text.splitlines()
    assert csv[0] == "file,rank,class,probability" and len(csv) == 1 + 3 * 3 and csv[1].startswith("img0.png,1,")


def test_concurrent_requests_are_micro_batched(predictor):
    app = create_app(predictor, max_wait_ms=50)
    batcher_calls_before = None

    async def run():
        nonlocal batcher_calls_before
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            batcher_calls_before = (await c.get("/health")).json()["model_calls"]
            answers = await asyncio.gather(*(c.post("/predict", files={"images": (f"{i}.png", png(10 + i))})
                                             for i in range(12)))
            health = (await c.get("/health")).json()
        return answers, health

    answers, health = asyncio.run(run())
    for i, r in enumerate(answers):
        assert r.status_code == 200
        assert r.json()["results"][0]["predictions"][0]["index"] == int(np.argmax(expected(predictor, png(10 + i))))
    assert health["images"] == 12 and health["model_calls"] - batcher_calls_before < 12  # some calls held several


def test_explain_returns_the_overlay_png(client):
    r = client.post("/explain", files={"image": ("a.png", png(1))}, params={"alpha": 0.5})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.width == 2 * image.height and image.height >= 256


def _bomb() -> bytes:
    # A PNG header claiming 30,000 x 30,000 pixels: refused before anything is decoded.
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")


def _chunks(size: int):
    for _ in range(size // 65536 + 1):
        yield b"\0" * 65536


@pytest.mark.parametrize("request_kwargs, status, message", [
    (dict(files={"images": ("x.png", b"this is not an image")}), 400, "cannot read image x.png"),
    (dict(files={"images": ("t.jpg", None)}), 400, "cannot read image t.jpg"),  # filled in below: truncated JPEG
    (dict(files={"images": ("bomb.png", _bomb())}), 400, "900000000 pixels"),  # Pillow refuses it at open
    (dict(files={"images": ("big.png", b"\0" * (2 * 2**20))}), 413, "at most 1 MB"),
    (dict(content=_chunks(2 * 2**20), headers={"content-type": "multipart/form-data; boundary=x"}), 413, "at most"),
    (dict(files={"note": (None, "hello")}), 400, "no image in the form"),  # a multipart form without files
    (dict(json={"images": "cat.png"}), 415, "multipart/form-data"),
    (dict(files={"images": (None, "/etc/passwd")}), 400, "not a file"),  # a path where a file is expected
    (dict(data={"images": "cat.png"}), 415, "multipart/form-data"),
    (dict(files={"images": ("e.png", b"")}), 400, "e.png is empty"),
    (dict(files={"images": ("a.png", png(0))}, params={"top_k": 0}), 400, "top_k"),
])
def test_bad_input_is_a_4xx_json_error_and_the_server_keeps_answering(client, predictor, request_kwargs, status,
                                                                      message):
    if request_kwargs.get("files", {}).get("images", (None, 1))[1] is None:
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(buffer, format="JPEG")
        request_kwargs = dict(files={"images": ("t.jpg", buffer.getvalue()[:300])})
    r = client.post("/predict", **request_kwargs)
    assert r.status_code == status, r.text
    assert message in r.json()["error"] and "\n" not in r.json()["error"]
    ok = client.post("/predict", files={"images": ("ok.png", png(5))})
    assert ok.status_code == 200
    assert ok.json()["results"][0]["predictions"][0]["index"] == int(np.argmax(expected(predictor, png(5))))


def test_explain_takes_one_image(client):
    r = client.post("/explain", files=[("image", ("a.png", png(1))), ("image", ("b.png", png(2)))])
    assert r.status_code == 400 and "one image" in r.json()["error"]
