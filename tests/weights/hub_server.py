"""A tiny stand-in for the Hugging Face Hub on 127.0.0.1, enough for `hf_hub_download`.

huggingface_hub (file_download.get_hf_file_metadata / http_get) makes, per file:
  HEAD {endpoint}/{repo}/resolve/{revision}/{filename}  -> needs X-Repo-Commit, ETag, Content-Length
  GET  (same URL)                                       -> the bytes (Content-Length)
and maps a 404 with `X-Error-Code: RepoNotFound` / `EntryNotFound` to its typed errors.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
import urllib.parse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """`with HubServer({"org/name": {"model.safetensors": b"..."}}) as hub: hub.endpoint, hub.requests`."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _resolve(self):
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                server.requests.append((self.command, path))
                parts = path.strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None, "RepoNotFound"
                repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                if repo not in server.repos:
                    return None, "RepoNotFound"
                if filename not in server.repos[repo]:
                    return None, "EntryNotFound"
                return server.repos[repo][filename], None

            def _answer(self, body_too: bool):
                data, error = self._resolve()
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", error)
                    if error == "EntryNotFound":
                        self.send_header("X-Repo-Commit", COMMIT)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body_too:
                    self.wfile.write(data)

            def do_HEAD(self):
                self._answer(False)

            def do_GET(self):
                self._answer(True)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "HubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
