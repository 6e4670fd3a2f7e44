"""The HTTP side of `kzoo serve`: a FastAPI app (JSON API, OpenAPI at /docs, the static page at /).

Every client mistake is a 4xx JSON body `{"error": "..."}` and the server keeps serving: no
file name or path from the client is ever opened, uploads are capped (413) before they are read,
images are decoded in memory with a pixel cap (a decompression bomb is refused from its header).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from kzoo.errors import KzooError
from kzoo.serve.batching import MicroBatcher
from kzoo.serve.predictor import Predictor

MAX_FILES = 256
INLINE_DECODE_BYTES = 64 * 1024
_MULTIPART = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"}}}}}}}}
_ONE_IMAGE = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}}}}}


class UploadLimit:
    """ASGI middleware: a request body over `max_bytes` is answered 413 before the app reads it (by
    its Content-Length), or, for a chunked body, cut off where it passes the limit: the app then
    sees a short body and `_files` answers 413."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await _too_large(self.max_bytes)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                scope["kzoo.upload_limit"] = self.max_bytes
                return {"type": "http.request", "body": b"", "more_body": False}
            return message

        await self.app(scope, counted, send)


def _limit_message(limit: int) -> str:
    return f"upload too large: at most {limit / 2**20:g} MB per request"


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse({"error": _limit_message(limit)}, status_code=413)


def create_app(predictor: Predictor, max_upload_mb: float = 10.0, max_wait_ms: float = 5.0) -> Any:
    """The ASGI app serving `predictor` (wrapped in the upload limit).

    Example:
        >>> app = create_app(Predictor("runs/r18/best.keras"))  # doctest: +SKIP
        >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
    """
    api = FastAPI(title="kzoo serve", version="1", description=f"Predictions of {predictor.card()['name']}")
    batcher = MicroBatcher(predictor.predict, predictor.max_batch, max_wait_ms)
    api.state.batcher = batcher

    @api.exception_handler(HTTPException)
    async def _http_error(request: Request, err: HTTPException):
        return JSONResponse({"error": err.detail}, status_code=err.status_code)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("kzoo.serve").joinpath("static/index.html").read_text("utf-8"))

    @api.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, and how many model calls served how many images."""
        return {"status": "ok", "model_calls": len(batcher.batches), "images": int(sum(batcher.batches))}

    @api.get("/model")
    async def model_card() -> dict[str, Any]:
        """The model card: name, parameters, input size, class names, test accuracy of its run."""
        return predictor.card()

    @api.post("/predict", openapi_extra=_MULTIPART)
    async def predict(request: Request, top_k: int = 5, format: str = "json"):
        """Top-k classes of one or more images (multipart field `images`); `format=csv` for a table."""
        if not 1 <= top_k <= 1000:
            raise HTTPException(400, f"top_k must be between 1 and 1000, got {top_k}")
        if format not in ("json", "csv"):
            raise HTTPException(400, f"format must be json or csv, got {format!r}")
        started = time.perf_counter()
        files = await _files(request, "images")
        images = await asyncio.gather(*(_decode_async(predictor, data, name) for name, data in files))
        decoded = time.perf_counter()
        rows = await asyncio.gather(*(batcher.submit(image) for image in images))
        results = [{"file": name, "predictions": predictor.top_k(row, top_k)} for (name, _), row in zip(files, rows)]
        timing = {"decode_ms": round(1000 * (decoded - started), 2),
                  "model_ms": round(1000 * (time.perf_counter() - decoded), 2)}
        if format == "csv":
            return PlainTextResponse(_csv(results), media_type="text/csv",
                                     headers={"Content-Disposition": 'attachment; filename="predictions.csv"'})
        return JSONResponse({"results": results, "timing": timing})  # plain JSON: no response-model encoding

    @api.post("/explain", openapi_extra=_ONE_IMAGE, response_class=Response)
    async def explain(request: Request, alpha: float = 0.4):
        """Grad-CAM of one image (multipart field `image`) as a PNG: the image beside its overlay."""
        if not 0.0 <= alpha <= 1.0:
            raise HTTPException(400, f"alpha must be between 0 and 1, got {alpha}")
        files = await _files(request, "image")
        if len(files) != 1:
            raise HTTPException(400, f"explain takes one image, got {len(files)}")
        image = await _decode_async(predictor, files[0][1], files[0][0])
        png = await asyncio.to_thread(predictor.explain, image, alpha)
        return Response(png, media_type="image/png")

    @api.on_event("shutdown")
    async def _stop() -> None:
        await batcher.close()

    return UploadLimit(api, int(max_upload_mb * 2**20))


async def _files(request: Request, field: str) -> list[tuple[str, bytes]]:
    kind = request.headers.get("content-type", "")
    if not kind.startswith("multipart/form-data"):
        raise HTTPException(415, f"send the images as multipart/form-data (field {field!r}), not "
                                 f"{kind.split(';')[0] or 'an empty content type'}")
    form, error = None, None
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=16)
    except Exception as err:  # a malformed multipart body, or one cut off by UploadLimit
        error = err
    if "kzoo.upload_limit" in request.scope:
        raise HTTPException(413, _limit_message(request.scope["kzoo.upload_limit"]))
    if error is not None:
        raise HTTPException(400, f"cannot parse the form: {str(error).strip() or type(error).__name__}")
    uploads = [item for item in form.getlist(field) if hasattr(item, "read")]
    if not uploads:
        extra = f" (a text field {field!r} is not a file: send the image itself)" if form.getlist(field) else ""
        raise HTTPException(400, f"no image in the form: attach one or more files as field {field!r}{extra}")
    # The client's file name is only echoed back in the answer; it never reaches the file system.
    return [(os.path.basename(u.filename or "") or f"image{i}", await u.read()) for i, u in enumerate(uploads)]


async def _decode_async(predictor: Predictor, data: bytes, name: str) -> np.ndarray:
    # A small image decodes in well under a millisecond: a thread hop would cost more than it saves.
    if len(data) < INLINE_DECODE_BYTES:
        return _decode(predictor, data, name)
    return await asyncio.to_thread(_decode, predictor, data, name)


def _decode(predictor: Predictor, data: bytes, name: str) -> np.ndarray:
    if not data:
        raise HTTPException(400, f"{name} is empty")
    try:
        return predictor.decode(data, name)
    except KzooError as err:
        raise HTTPException(400, str(err)) from None


def _csv(results: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["file", "rank", "class", "probability"])
    for r in results:
        for rank, p in enumerate(r["predictions"], 1):
            writer.writerow([r["file"], rank, p["name"], f"{p['probability']:.6f}"])
    return out.getvalue()
