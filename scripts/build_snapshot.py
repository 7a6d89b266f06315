"""Build src/gpumem/data/snapshot.json.gz from the real Hub metadata in fixtures/hub/.

Run after changing fixtures/hub:  python scripts/build_snapshot.py
Only folders with a tensor manifest (tensors.json) and a config.json become entries; the one alias
is meta-llama/Llama-2-70b-hf, whose tensors are those of the -chat repo (same names and shapes, see
fixtures/hub/SOURCES.md).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from gpumem.safetensors_header import DTYPE_BITS
from gpumem.types import RepoMetadata, TensorInfo, WeightSet

ROOT = Path(__file__).resolve().parent.parent
HUB = ROOT / "fixtures" / "hub"
OUT = ROOT / "src" / "gpumem" / "data" / "snapshot.json.gz"
# Repos whose tensors are another folder's (same architecture and shapes). Each alias with a saved Hub
# model-info must have the same `safetensors.total` as the manifest: checked below, not assumed.
ALIASES = {
    "meta-llama/Llama-2-70b-hf": "meta-llama__Llama-2-70b-chat-hf",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama__Llama-3.1-8B",
    "meta-llama/Meta-Llama-3-8B": "meta-llama__Llama-3.1-8B",
    "Qwen/Qwen2.5-7B-Instruct": "Qwen__Qwen2.5-7B",
}


def _read(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def build_entry(repo_id: str, folder: Path) -> RepoMetadata:
    """One snapshot entry from a fixture folder (for an alias: the alias's own model info, if saved)."""
    manifest = _read(folder, "tensors.json")
    info = _read(HUB / repo_id.replace("/", "__"), "hf_api_model_info.json")
    index = _read(folder, "model.safetensors.index.json")
    shards = manifest.get("shards") or (index or {}).get("weight_map") or {}
    listed = [s["rfilename"] for s in (info or {}).get("siblings", [])]
    weight_files = sorted({*shards.values()} or {f for f in listed if f.endswith(".safetensors")} or {"model.safetensors"})
    single = weight_files[0] if len(weight_files) == 1 else ""  # multi-shard split unrecorded: file left blank
    tensors = tuple(
        TensorInfo(name, dtype, tuple(shape), _nbytes(dtype, shape), shards.get(name, single))
        for name, (dtype, shape) in manifest["tensors"].items()
    )
    weights = WeightSet("", "safetensors", tuple(weight_files), tensors, _read(folder, "config.json"))
    revision = (info or {}).get("sha") or "unrecorded"
    note = f"snapshot revision {revision}; provenance in fixtures/hub/SOURCES.md"
    if folder.name != repo_id.replace("/", "__"):
        hub_total = ((info or {}).get("safetensors") or {}).get("total")
        stored = sum(t.numel for t in tensors)
        if hub_total is not None and hub_total != stored:
            raise SystemExit(f"{repo_id}: the Hub's total {hub_total:,} differs from {folder.name}'s {stored:,}")
        note += f"; tensors and config.json of {folder.name.replace('__', '/')} (same architecture and shapes)"
    return RepoMetadata(repo_id, revision, "snapshot", (weights,), tuple(listed or weight_files), (note,))


def _nbytes(dtype: str, shape: list[int]) -> int:
    numel = 1
    for dim in shape:
        numel *= dim
    return numel * DTYPE_BITS[dtype] // 8


def main() -> None:
    """Write the snapshot file and print what it holds."""
    entries = {}
    sources = {f.name.replace("__", "/"): f for f in sorted(HUB.iterdir()) if (f / "tensors.json").exists()}
    sources.update({alias: HUB / folder for alias, folder in ALIASES.items()})
    for repo_id, folder in sorted(sources.items()):
        entries[repo_id] = build_entry(repo_id, folder).to_dict()
    payload = json.dumps(entries, separators=(",", ":"), sort_keys=True).encode()
    OUT.write_bytes(gzip.compress(payload, mtime=0))
    print(f"{OUT.relative_to(ROOT)}: {len(entries)} repos, {OUT.stat().st_size:,} bytes: {', '.join(entries)}")


if __name__ == "__main__":
    main()
