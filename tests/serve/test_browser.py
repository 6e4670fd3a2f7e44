"""The page in a real headless Chromium (Debian's package, driven by Playwright): upload a PNG, see
the predicted label and the Grad-CAM overlay appear. Skips, saying why, where no browser is installed
(.ci/run installs one)."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import keras
import pytest

import kzoo

pytest.importorskip("uvicorn", reason="kzoo[serve] is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install 'kzoo[browser]')")

CHROMIUM = os.environ.get("KZOO_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# The flags a sandboxed, offline machine needs: no background connections, no GPU, no first-run UI.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def server(tmp_path):
    import uvicorn

    from kzoo.serve import Predictor, create_app
    from test_serve_command import _free_port

    keras.utils.set_random_seed(0)
    kzoo.create_model("resnet18_cifar", num_classes=3, width=8, layers=(1, 1)).save(str(tmp_path / "best.keras"))
    (tmp_path / "class_names.json").write_text(json.dumps(["apple", "banana", "cherry"]))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Predictor(str(tmp_path / "best.keras"), max_batch=4)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 60
    while not server.started:
        assert time.time() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium; .ci/run does)")
def test_page_shows_label_and_overlay_for_an_uploaded_png(server, tmp_path):
    from test_api import png

    image = tmp_path / "upload.png"
    image.write_bytes(png(3))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(server)
        page.wait_for_function("document.getElementById('card').textContent.includes('3 classes')", timeout=30_000)
        page.set_input_files("#files", str(image))
        top = page.wait_for_selector(".result .top", timeout=60_000)
        label = top.text_content()
        assert label.startswith("upload.png: ") and label.split(": ")[1] in ("apple", "banana", "cherry")
        assert len(page.query_selector_all(".result .bar")) == 3
        page.wait_for_function("(() => { const i = document.querySelector('img.cam');"
                               " return i && !i.hidden && i.complete && i.naturalWidth > 0; })()", timeout=60_000)
        width = page.eval_on_selector("img.cam", "i => i.naturalWidth")
        height = page.eval_on_selector("img.cam", "i => i.naturalHeight")
        assert width == 2 * height and height >= 256
        page.click("#cam")  # the toggle hides the overlay
        page.wait_for_function("document.querySelector('img.cam').hidden", timeout=10_000)
        page.click("#cam")
        page.wait_for_function("!document.querySelector('img.cam').hidden", timeout=30_000)
        if os.environ.get("KZOO_SCREENSHOT"):
            page.screenshot(path=os.environ["KZOO_SCREENSHOT"], full_page=True)
        browser.close()
