"""The built-in snapshot: real metadata of well-known models, for when the Hub can't answer.

`data/snapshot.json.gz` is built by `scripts/build_snapshot.py` from the real Hub metadata in
`fixtures/hub/` (configs, index files and tensor manifests). Each entry is a RepoMetadata dict
whose `source` is "snapshot" and whose `revision` is the Hub commit it was taken from, where known.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

from .types import RepoMetadata

SNAPSHOT_FILE = "snapshot.json.gz"
SNAPSHOT_PATH = Path(__file__).parent / "data" / SNAPSHOT_FILE
LIVE_DATA_HINT = "live data: run with network access (and a token for gated repos: --token or HF_TOKEN)"


@lru_cache(maxsize=1)
def _entries() -> dict[str, dict]:
    return json.loads(gzip.decompress(SNAPSHOT_PATH.read_bytes()))


def snapshot_repo_ids() -> list[str]:
    """Repo ids the snapshot holds."""
    return sorted(_entries())


def load_snapshot(repo_id: str) -> RepoMetadata | None:
    """The snapshot's metadata for a repo (matched case-insensitively), or None."""
    entries = _entries()
    key = next((k for k in entries if k.lower() == repo_id.lower()), None)
    return RepoMetadata.from_dict(entries[key]) if key else None
