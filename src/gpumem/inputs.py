"""Forgiving input: what people paste and type, read as they mean it (no network, no heavy imports).

- contexts as model cards write them: 32k, 128K, 1M (binary: 32k = 32,768 tokens), 32,768 or 32768;
- a Hub page URL for a repo id: https://huggingface.co/ORG/NAME, with /tree/REV (or /blob/REV/...) as the
  revision;
- which catalog GPU a short name picked, when it could mean several (a100 -> A100 80GB, not A100 40GB).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

from .errors import UsageError

_CONTEXT = re.compile(r"\s*(\d+(?:\.\d+)?|\d{1,3}(?:,\d{3})+)\s*([kKmM]?)\s*")
_CONTEXT_SCALE = {"": 1, "k": 1024, "m": 1024 * 1024}
MAX_CONTEXT = 1 << 30  # far beyond any model's window: a typo, not a context


def parse_context(text: str) -> int:
    """Tokens per sequence from '32k', '128K', '1M', '32,768' or '32768' (k and M are 1024-based, as model
    cards mean them: Qwen's 128K window is 131,072 tokens)."""
    match = _CONTEXT.fullmatch(text or "")
    if not match:
        raise UsageError(f"cannot read {text!r} as a context length", option="context",
                         hint="use e.g. 4096, 32k, 128K or 1M")
    number, suffix = match[1].replace(",", ""), match[2].lower()
    value = float(number) * _CONTEXT_SCALE[suffix]
    if not value.is_integer() or value > MAX_CONTEXT:  # below 1: ServingOptions says so, in its words
        raise UsageError(f"context must be a whole number of tokens up to {MAX_CONTEXT:,}, got {text!r}",
                         option="context")
    return int(value)


_HUB_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")
_NOT_MODELS = {"datasets": "a dataset", "spaces": "a Space"}


def parse_repo_reference(text: str, endpoint_host: str | None = None) -> tuple[str, str | None]:
    """(repo id, revision or None) of a repo id or a pasted Hub URL; other text is returned as it is."""
    value = text.strip()
    bare = value if "://" in value else "https://" + value
    parts = urlsplit(bare)
    hosts = (*_HUB_HOSTS, *([endpoint_host] if endpoint_host else []))
    if parts.hostname not in hosts or ("://" not in value and not value.startswith(hosts)):
        return value, None
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if segments and segments[0] in _NOT_MODELS:
        raise UsageError(f"{value} is {_NOT_MODELS[segments[0]]}, not a model repo",
                         hint="paste a model's page, e.g. https://huggingface.co/Qwen/Qwen3-8B")
    if segments and segments[0] == "models":
        segments = segments[1:]
    if len(segments) < 2:
        raise UsageError(f"{value} does not name a model repo", hint="e.g. https://huggingface.co/Qwen/Qwen3-8B")
    repo_id = "/".join(segments[:2])
    revision = None
    if len(segments) >= 4 and segments[2] in ("tree", "blob", "resolve"):
        revision = segments[3]
        if revision == "refs" and len(segments) >= 6 and segments[4] == "pr":  # /tree/refs/pr/5
            revision = "/".join(segments[3:6])
    return repo_id, revision


def one_revision(references: Sequence[tuple[str, str | None]], revision: str, default: str = "main") -> str:
    """The revision of a run: --revision, or the one the pasted URLs name (they must agree)."""
    named = {r for _, r in references if r}
    if not named:
        return revision
    if len(named) > 1 or (revision != default and revision not in named):
        shown = ", ".join(sorted(named | ({revision} if revision != default else set())))
        raise UsageError(f"one revision per run, and these ask for several: {shown}",
                         hint="run once per revision, or use plain repo ids with revision", hint_options=("revision",))
    return named.pop()


def gpu_choice_note(asked: str, chosen: str, catalog_names: Sequence[str]) -> str | None:
    """'a100 means the A100 80GB (also in the catalog: A100 40GB)' when a short name could mean several GPUs."""
    key = _key(asked)
    if key == _key(chosen):
        return None
    others = [name for name in catalog_names if name != chosen and _key(name).startswith(key)]
    if not others:
        return None
    return f"--gpu {asked} means the {chosen} (also in the catalog: {', '.join(others)}; name one to choose it)"


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())
