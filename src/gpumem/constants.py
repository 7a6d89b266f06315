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
MAX_CONCURRENCY = 256  # shard header reads in flight; the pool is sized to it
SMALL_FILE_CAP = 32 * 1024 * 1024  # config.json / index files larger than this are refused

_TRUTHY = {"1", "true", "yes", "on"}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUTHY


def hf_endpoint(override: str | None = None) -> str:
    """The Hub endpoint: `override`, else HF_ENDPOINT, else huggingface.co; never with a trailing slash."""
    return (override or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


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
