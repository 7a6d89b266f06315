"""Defaults and the environment variables gpumem honours, read in one place.

The Hugging Face variables are read at call time rather than at import (huggingface_hub reads them
once at import): gpumem is also a library used from long-lived processes and tests that change them.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ENDPOINT = "https://huggingface.co"
DEFAULT_TIMEOUT_S = 10.0  # per request (connect and each read)
DEFAULT_DEADLINE_S = 120.0  # whole run, retries included
MAX_RETRIES = 4
RETRY_AFTER_CAP_S = 30.0
MAX_REDIRECTS = 5
MAX_CONCURRENCY = 48  # worker threads per run (wave 1, small files, GGUF headers, repos), and transfers per origin
# until it answers over HTTP/2 (over HTTP/1.1 each is a connection: more costs a TLS handshake each). Safetensors header
# reads run on the HTTP thread, all at once over HTTP/2 (docs/benchmark.md#http-stack)
ALL_LINEAR = "all-linear"  # PEFT's target_modules word for every linear layer but the output head
CALC_BITS = 16  # the load width `calc` assumes for a bare parameter count
GB = 10**9  # sizes are decimal: a GB is 10^9 bytes, an MB 10^6
MB = 10**6
SMALL_FILE_CAP = 16 * 1024 * 1024  # no file or answer gpumem reads is larger (config, index, model info, header)

_TRUTHY = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def hf_endpoint(override: str | None = None) -> str:
    """The Hub endpoint: `override`, else HF_ENDPOINT, else huggingface.co; never with a trailing slash.

    Checked here, before it names a cache folder or reaches any message: an http(s) URL with a host, a
    port that exists, and no user name or password (requests would have sent those as Basic auth in place
    of the token; they would also have shown up in folder names and errors). A UsageError otherwise.
    """
    from urllib.parse import urlsplit

    from .errors import UsageError

    text = (override or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")
    hint = "set HF_ENDPOINT to the Hub's address, e.g. https://huggingface.co"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise UsageError("the Hub endpoint (HF_ENDPOINT) is not a valid URL", hint=hint) from None
    if "@" in parts.netloc:
        raise UsageError("the Hub endpoint (HF_ENDPOINT) holds a user name or password, which gpumem never sends",
                         hint="remove them from HF_ENDPOINT; pass token or set HF_TOKEN", hint_options=("token",))
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError("the Hub endpoint (HF_ENDPOINT) must start with https:// or http:// and name a host",
                         hint=hint)
    if parts.query or parts.fragment or port == 0 or any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise UsageError("the Hub endpoint (HF_ENDPOINT) must be a plain URL (no spaces, query or fragment)",
                         hint=hint)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"


def implicit_token_disabled() -> bool:
    """True when HF_HUB_DISABLE_IMPLICIT_TOKEN asks that only an explicitly passed token be sent."""
    return _flag("HF_HUB_DISABLE_IMPLICIT_TOKEN")


def hf_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network at all."""
    return _flag("HF_HUB_OFFLINE")


def hf_home() -> Path:
    """The Hugging Face home folder (HF_HOME, else XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface)."""
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface"


def cache_dir() -> Path:
    """gpumem's own cache folder: GPUMEM_CACHE_DIR, else HF_HOME/gpumem."""
    if override := os.environ.get("GPUMEM_CACHE_DIR"):
        return Path(override).expanduser()
    return hf_home() / "gpumem"


def debug_enabled() -> bool:
    """True when GPUMEM_DEBUG asks for tracebacks and the request log."""
    return _flag("GPUMEM_DEBUG")
