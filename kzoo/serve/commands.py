"""`kzoo serve`: parser and handler (no Keras, FastAPI or uvicorn until the command runs)."""

from __future__ import annotations

import argparse
import logging
from typing import Callable

from kzoo.errors import KzooError

log = logging.getLogger("kzoo.serve")


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
        from kzoo.serve.app import create_app
    except ImportError as err:
        raise KzooError(f"kzoo serve needs {err.name or 'its web stack'}, which is not installed; "
                        "pip install 'kzoo[serve]'") from None
    from kzoo.serve.predictor import Predictor

    if not 1 <= args.max_batch <= 1024:
        raise KzooError(f"--max-batch must be between 1 and 1024, got {args.max_batch}")
    if not args.max_upload_mb > 0:
        raise KzooError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    predictor = Predictor(args.checkpoint, max_batch=args.max_batch)
    if not 0 <= args.max_wait_ms <= 1000:
        raise KzooError(f"--max-wait-ms must be between 0 and 1000, got {args.max_wait_ms}")
    app = create_app(predictor, max_upload_mb=args.max_upload_mb, max_wait_ms=args.max_wait_ms)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"serving {predictor.card()['name']} (loaded and warmed up in {predictor.load_seconds:.1f} s) at "
          f"http://{host}:{args.port}/  (API: /predict, /explain, /model, /health; OpenAPI: /docs). Ctrl-C stops.",
          flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: other machines can reach this server", args.host)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=5)
    except OSError as err:
        raise KzooError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    return 0


def add_commands(sub, command: Callable[..., argparse.ArgumentParser]) -> None:
    """Register `serve` with the `kzoo` parser; `command` is cli's subcommand factory."""
    p = command(sub, "serve", "a local prediction page and JSON API for a checkpoint",
                "Load a checkpoint once (safe mode), warm it up and serve a page (upload or drop images: top-5\n"
                "classes, Grad-CAM overlay, model card, CSV of a batch) and an API: POST /predict, POST /explain,\n"
                "GET /model, GET /health, OpenAPI at /docs. Concurrent requests are micro-batched. Needs:\n"
                "pip install 'kzoo[serve]'.",
                "kzoo serve --checkpoint runs/r18/best.keras   # then open http://127.0.0.1:8000/", _cmd_serve)
    p.add_argument("--checkpoint", required=True, help="RUN/best.keras or any kzoo .keras model")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but 127.0.0.1 exposes the server (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--max-batch", type=int, default=32, help="images per model call (default: 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long an image waits for others to share its model call (default: 5.0)")
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest request body in MB (default: 10.0)")
