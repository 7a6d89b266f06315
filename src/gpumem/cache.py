"""On-disk cache of what gpumem read, keyed by endpoint, repo and commit sha.

Layout under `constants.cache_dir()` (HF_HOME/gpumem by default):
    v2/<endpoint key>/<repo key>/refs/<revision key>   -> the commit sha that revision resolved to
    v2/<endpoint key>/<repo key>/<sha>.json            -> RepoMetadata.to_dict(), weight sets as ModelSummary
                                                          (v1 kept tensors: read by older gpumem, not by this one)
A commit's content never changes, so entries never expire. Keys are percent-encoded and checked,
so no repo id or revision can name a path outside the cache. Writes go to a temp file and are
renamed into place: a crash or Ctrl-C mid-write leaves either the old entry or none.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import constants
from .files import write_atomically
from .types import RepoMetadata

_SHA = re.compile(r"^[0-9a-f]{40}$")
_VERSION = "v2"


@dataclass(frozen=True, slots=True)
class CacheInfo:
    """Where the cache is and what it holds."""

    path: str
    repos: int
    entries: int
    size_bytes: int

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"path": self.path, "repos": self.repos, "entries": self.entries, "size_bytes": self.size_bytes}


class ResultCache:
    """Read and write cached repo metadata; every failure to read is a miss, never an error."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or constants.cache_dir()) / _VERSION

    def sha_for(self, endpoint: str, repo_id: str, revision: str) -> str | None:
        """The commit sha a revision resolved to last time (a full sha maps to itself)."""
        if _SHA.match(revision):
            return revision
        try:
            sha = (self._repo_dir(endpoint, repo_id) / "refs" / _key(revision)).read_text().strip()
        except (OSError, ValueError):
            return None
        return sha if _SHA.match(sha) else None

    def load(self, endpoint: str, repo_id: str, sha: str) -> RepoMetadata | None:
        """The cached metadata of a commit, or None (a corrupt entry is removed and reported as a miss)."""
        if not _SHA.match(sha):
            return None
        try:
            path = self._repo_dir(endpoint, repo_id) / f"{sha}.json"
        except ValueError:
            return None
        try:
            data = json.loads(path.read_text())
            metadata = RepoMetadata.from_dict(data)
            if metadata.repo_id != repo_id or metadata.revision != sha:
                raise ValueError("entry for another repo or commit")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)
            return None
        return metadata

    def store(self, endpoint: str, revision: str, metadata: RepoMetadata) -> None:
        """Record a result and the revision -> sha mapping; silently skipped if the disk refuses."""
        if not _SHA.match(metadata.revision):
            return
        try:
            repo_dir = self._repo_dir(endpoint, metadata.repo_id)
            (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
            write_atomically(repo_dir / f"{metadata.revision}.json", json.dumps(metadata.to_dict(), separators=(",", ":")))
            if revision != metadata.revision:
                write_atomically(repo_dir / "refs" / _key(revision), metadata.revision)
        except (OSError, ValueError):
            pass  # a read-only or full disk must not fail the run; the answer is already computed

    def info(self) -> CacheInfo:
        """Count cached repos and entries and their size."""
        entries = list(self.root.glob("*/*/*.json")) if self.root.exists() else []
        repos = {p.parent for p in entries}
        size = sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file()) if self.root.exists() else 0
        return CacheInfo(str(self.root.parent), len(repos), len(entries), size)

    def clear(self) -> CacheInfo:
        """Delete every entry; returns what was there."""
        before = self.info()
        shutil.rmtree(self.root, ignore_errors=True)
        return before

    def _repo_dir(self, endpoint: str, repo_id: str) -> Path:
        host = re.sub(r"[^A-Za-z0-9.-]", "_", urlsplit(endpoint).netloc or "endpoint")
        digest = hashlib.sha256(endpoint.encode()).hexdigest()[:12]
        path = self.root / f"{host}-{digest}" / _key(repo_id)
        if self.root.resolve() not in path.resolve().parents:
            raise ValueError(f"cache key escapes the cache folder: {repo_id!r}")
        return path


def _key(value: str) -> str:
    """A single path component for any string: percent-encoded, never '.', '..' or empty."""
    key = quote(value, safe="")
    if key in {"", ".", ".."} or len(key) > 200:
        raise ValueError(f"not a valid cache key: {value!r}")
    return key
