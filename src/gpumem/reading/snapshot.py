"""The built-in snapshot: real metadata of well-known models, for when the Hub can't answer.

`data/snapshot/<org>__<name>.json.gz` (one RepoMetadata dict per repo, `source` "snapshot", `revision`
the Hub commit it was taken from where known) is built by `python -m gpumem_dev.build_snapshot` from the real Hub
metadata in the repository's `fixtures/hub/`. Only the requested repo's file is read.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from ..model.types import RepoMetadata

SNAPSHOT_DIR = Path(__file__).parent.parent / "data" / "snapshot"
# How to get live data instead, by why the snapshot answered: (the hint, the parameters it names).
LIVE_DATA_HINT = {
    "offline": ("for live data, run without offline / HF_HUB_OFFLINE=1", ("offline",)),
    "unreachable": ("for live data, run again with network access", ()),
    "gated": ("for live data, accept the licence on the Hub and pass token or set HF_TOKEN", ("token",)),
}
_SUFFIX = ".json.gz"


def snapshot_repo_ids() -> list[str]:
    """Repo ids the snapshot holds."""
    return sorted(p.name.removesuffix(_SUFFIX).replace("__", "/", 1) for p in SNAPSHOT_DIR.glob("*" + _SUFFIX))


def load_snapshot(repo_id: str) -> RepoMetadata | None:
    """The snapshot's metadata for a repo (matched case-insensitively), or None."""
    wanted = repo_id.lower()
    match = next((r for r in snapshot_repo_ids() if r.lower() == wanted), None)
    if match is None:
        return None
    path = SNAPSHOT_DIR / (match.replace("/", "__") + _SUFFIX)
    return RepoMetadata.from_dict(json.loads(gzip.decompress(path.read_bytes())))
