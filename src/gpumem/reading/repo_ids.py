"""Repo ids and revisions the Hub can hold: checked before any request, and by the CLI while it reads the command
line, before the HTTP stack is imported. Light on purpose: errors and the text cleaner only."""

from __future__ import annotations

import re

from ..errors import UsageError
from .sanitize import clean

_REPO_PART = re.compile(r"^[A-Za-z0-9_.-]{1,96}$")
_REVISION_CONTROL = re.compile("[\x00-\x1f\x7f]")  # one regex search, not a loop over characters


def validate_repo_id(repo_id: str) -> None:
    """Refuse ids the Hub cannot hold (huggingface_hub's rules: [namespace/]name of letters, digits, '-', '_'
    and '.', at most 96 characters each, no '--' or '..', not starting or ending with '-' or '.'), as a UsageError."""
    parts = repo_id.split("/") if isinstance(repo_id, str) else []
    if (len(parts) in (1, 2) and all(_REPO_PART.match(p) and p[0] not in "-." and p[-1] not in "-." for p in parts)
            and "--" not in repo_id and ".." not in repo_id and not repo_id.endswith(".git")):
        return
    raise UsageError(f"invalid repo id {clean(repo_id, 120)!r}: expected ORG/NAME of letters, digits, '-', '_' and '.'",
                     hint="use the form ORG/NAME, e.g. meta-llama/Llama-2-7b-hf")


def validate_revision(revision: str) -> None:
    """Refuse revisions no git ref or sha can be, as a UsageError: '.' and '..' would even turn into
    another URL path (HTTP clients resolve dot segments), so `--revision ..` must never reach the Hub."""
    if not revision or revision == "." or ".." in revision or _REVISION_CONTROL.search(revision):
        raise UsageError(f"invalid revision {clean(revision, 120)!r}: git refs cannot be empty, contain '..' or control "
                         "characters", hint="use a branch, tag, full commit sha or refs/pr/N")
