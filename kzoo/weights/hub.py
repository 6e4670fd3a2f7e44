"""`hf-hub:{repo_id}[@revision]` weights: download `model.safetensors` + `config.json` into the
Hugging Face cache with `huggingface_hub.hf_hub_download`, then convert them.

A file already in the cache is used without any request. With `HF_HUB_OFFLINE=1` and the file
missing, the call fails at once with one line naming the repository, the file and where in the
cache to put it. Without network it fails the same way after one metadata request (at most
`CONNECT_TIMEOUT_S` to connect, `HF_HUB_ETAG_TIMEOUT` for an answer), where `hf_hub_download` alone
retries a refused or timed-out request five times with backoff (23 s and a dozen warning lines
measured). huggingface_hub 2.x may add one request of at most 3 s per process for its User-Agent
(an agent registry, skipped with HF_HUB_DISABLE_TELEMETRY=1). `HF_ENDPOINT`, `HF_HUB_CACHE` and
`HF_HUB_OFFLINE` are read at call time (huggingface_hub reads them once at import).
"""

from __future__ import annotations

import importlib
import json
import os

from kzoo.errors import KzooError

PREFIX = "hf-hub:"
WEIGHTS_FILE = "model.safetensors"
# Seconds to open the connection to the endpoint (TCP and TLS) before calling it unreachable. Short:
# a reachable Hub or mirror connects in well under a second; the answer itself gets the longer
# HF_HUB_ETAG_TIMEOUT, so a slow server is not mistaken for a missing network.
CONNECT_TIMEOUT_S = 3.0


def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """`"hf-hub:org/name@rev"` -> `("org/name", "rev")`.

    Example:
        >>> parse_hub_id("hf-hub:timm/resnet50.tv_in1k")
        ('timm/resnet50.tv_in1k', None)
    """
    repo = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    revision = None
    if "@" in repo:
        repo, revision = repo.split("@", 1)
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise KzooError(f"{spec}: a hub id is 'hf-hub:owner/name' (optionally '@revision'), e.g. hf-hub:timm/resnet50.tv_in1k")
    return repo, revision


def offline() -> bool:
    import huggingface_hub.constants as c

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in {"1", "ON", "YES", "TRUE"}
    return bool(c.HF_HUB_OFFLINE)


def cache_dir() -> str:
    import huggingface_hub.constants as c

    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return c.HF_HUB_CACHE


def cache_location(repo: str, filename: str) -> str:
    from huggingface_hub.file_download import repo_folder_name

    return os.path.join(cache_dir(), repo_folder_name(repo_id=repo, repo_type="model"), "snapshots", "<commit>", filename)


def _missing(repo: str, filename: str, why: str) -> KzooError:
    return KzooError(
        f"hf-hub:{repo}: {filename} is not in the Hugging Face cache and {why}; on a connected machine run "
        f"`hf download {repo} {filename}` (same HF_HUB_CACHE), or put the file at "
        f"{cache_location(repo, filename)} (with refs/main holding <commit>), or pass weights=/path/to/{filename}"
    )


def _transport_errors() -> tuple[type[Exception], ...]:
    """The "no HTTP answer" errors of the client huggingface_hub uses (httpx2 from 2.x, httpx in 1.x)."""
    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _unreachable_reason(err: Exception, etag_timeout: float) -> str:
    kind = type(err).__name__
    if kind == "ConnectTimeout":
        return f"no connection within {CONNECT_TIMEOUT_S:g} s"
    if kind == "ReadTimeout":
        return f"no answer within {etag_timeout:g} s (HF_HUB_ETAG_TIMEOUT)"
    return (str(err).splitlines() or [kind])[0] or kind


def _probe(repo: str, filename: str, revision: str | None, endpoint: str | None, etag_timeout: float) -> None:
    """One HEAD request for the file, without retries (raises what huggingface_hub raises).

    It goes through huggingface_hub's own client (proxy, TLS and token settings apply), but unlike
    `hf_hub_download` it does not retry a failed connection with backoff and warning lines: an
    offline machine fails here within `CONNECT_TIMEOUT_S`.
    """
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    # (connect, read, write, pool) seconds, a form both httpx and httpx2 accept.
    timeout = (CONNECT_TIMEOUT_S, etag_timeout, etag_timeout, CONNECT_TIMEOUT_S)
    get_hf_file_metadata(url, timeout=timeout, endpoint=endpoint)  # retry_on_errors defaults to False


def fetch(repo: str, filename: str, revision: str | None = None, required: bool = True) -> str | None:
    """The local path of `filename` from `repo`: from the cache without a request, else downloaded.

    Returns None for a missing optional file (`required=False`).
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub import errors

    kwargs = dict(repo_id=repo, filename=filename, revision=revision, cache_dir=cache_dir())
    try:
        return hf_hub_download(**kwargs, local_files_only=True)
    except (errors.LocalEntryNotFoundError, errors.EntryNotFoundError, FileNotFoundError, OSError):
        pass
    if offline():
        if not required:
            return None
        raise _missing(repo, filename, "HF_HUB_OFFLINE is set")
    endpoint = os.environ.get("HF_ENDPOINT", "").rstrip("/") or None
    where = endpoint or "huggingface.co"
    # Read at call time (huggingface_hub binds its default at import), so a slow mirror or a
    # loaded machine can be given longer than 10 s for the first metadata request.
    etag_timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT", "10"))
    try:
        # The probe answers "reachable?" once and fast; only then does hf_hub_download (whose
        # metadata request repeats it) get the chance to retry.
        _probe(repo, filename, revision, endpoint, etag_timeout)
        return hf_hub_download(**kwargs, endpoint=endpoint, etag_timeout=etag_timeout)
    except _transport_errors() as err:
        if not required:
            return None
        raise _missing(repo, filename, f"{where} cannot be reached ({_unreachable_reason(err, etag_timeout)})") from None
    except errors.RepositoryNotFoundError:
        raise KzooError(f"hf-hub:{repo}: no such repository on {where} (or it is private/gated: log in with `hf auth login`)") from None
    except errors.RevisionNotFoundError:
        raise KzooError(f"hf-hub:{repo}: no revision {revision!r}") from None
    except errors.LocalEntryNotFoundError:
        if not required:
            return None
        raise _missing(repo, filename, f"{where} cannot be reached") from None
    except errors.EntryNotFoundError:
        if not required:
            return None
        raise KzooError(f"hf-hub:{repo}: the repository has no {filename}; kzoo loads safetensors weights only") from None
    except errors.HfHubHTTPError as err:
        raise KzooError(f"hf-hub:{repo}: downloading {filename} failed: {str(err).splitlines()[0]}") from None


def read_json(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise KzooError(f"{path}: not a readable JSON config ({err})") from None


def fetch_checkpoint(spec: str) -> tuple[str, dict | None, dict | None]:
    """`(weights_path, config, preprocessor_config)` for a hub id; the configs may be None."""
    repo, revision = parse_hub_id(spec)
    weights = fetch(repo, WEIGHTS_FILE, revision)
    config = read_json(fetch(repo, "config.json", revision, required=False))
    preprocessor = None
    if config and "model_type" in config:  # a transformers repository
        preprocessor = read_json(fetch(repo, "preprocessor_config.json", revision, required=False))
    return weights, config, preprocessor
