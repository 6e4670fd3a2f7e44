"""`kzoo serve` as a user runs it: a real server process on 127.0.0.1, answered, then Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import pytest

import kzoo

pytest.importorskip("uvicorn", reason="kzoo[serve] is not installed")
import httpx  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_answers_and_stops_on_ctrl_c(tmp_path):
    from test_api import png

    keras.utils.set_random_seed(0)
    kzoo.create_model("resnet18_cifar", num_classes=3, width=8, layers=(1, 1)).save(str(tmp_path / "best.keras"))
    (tmp_path / "class_names.json").write_text(json.dumps(["a", "b", "c"]))
    port = _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "kzoo.cli", "serve", "--checkpoint", str(tmp_path / "best.keras"),
                             "--port", str(port), "--max-batch", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        base = f"http://127.0.0.1:{port}"
        while True:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.perf_counter() - started < 120, "no answer within 120 s"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        r = httpx.post(f"{base}/predict", files={"images": ("x.png", png(0))}, timeout=30)
        assert r.status_code == 200 and r.json()["results"][0]["predictions"][0]["name"] in "abc"
        assert "kzoo serve" in httpx.get(f"{base}/", timeout=5).text
        other = socket.gethostbyname(socket.gethostname())
        if not other.startswith("127."):  # bound to 127.0.0.1 only: the host's own address is refused
            with pytest.raises(httpx.TransportError):
                httpx.get(f"http://{other}:{port}/health", timeout=2)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode in (0, 130), err[-2000:]
    assert f"http://127.0.0.1:{port}/" in out and "Traceback" not in err
