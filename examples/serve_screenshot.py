"""The screenshot in docs/serve.md: `kzoo serve` on a checkpoint, three test images uploaded in Chromium.

    .venv/bin/python examples/serve_screenshot.py --checkpoint RUN/best.keras --out docs/img/serve.png

Takes the first image of three classes from the bundled CIFAR-10 sample's test split.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import tarfile
import tempfile
import threading
import time
from importlib import resources

CLASSES = ("cat", "ship", "horse")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sample_images(folder: str) -> list[str]:
    archive = resources.files("kzoo").joinpath("data/sample/cifar10-sample.tar.gz")
    paths = []
    with tarfile.open(str(archive)) as tar:
        for cls in CLASSES:
            member = next(m for m in tar.getmembers() if m.isfile() and m.name.startswith(f"cifar10/test/{cls}/"))
            path = os.path.join(folder, f"{cls}.png")
            with open(path, "wb") as f:
                f.write(tar.extractfile(member).read())
            paths.append(path)
    return paths


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    from kzoo.serve import Predictor, create_app

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", default="docs/img/serve.png")
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(Predictor(args.checkpoint)), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_function("document.getElementById('card').textContent.includes('classes')")
        page.set_input_files("#files", sample_images(folder))
        page.wait_for_function("document.querySelectorAll('img.cam').length === 3 && "
                               "[...document.querySelectorAll('img.cam')].every(i => !i.hidden && i.naturalWidth > 0)")
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
