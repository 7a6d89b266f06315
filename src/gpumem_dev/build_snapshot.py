"""Build src/gpumem/data/snapshot/ (one gzip JSON per repo) from the real Hub metadata in fixtures/hub/.

Run after changing fixtures/hub:  PYTHONPATH=src python -m gpumem_dev.build_snapshot
Entries: every folder with a tensor manifest (tensors.json) and config.json; the aliases below (same
architecture and shapes, checked against the Hub's own totals where saved); and the pre-quantized repos
of fixtures/hub, whose tensors are built from their real config and index with each method's documented
packing (gpumem_dev/fakehub/layouts.py; their counts are asserted in tests/test_quantization.py).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from gpumem.model.safetensors_header import DTYPE_BITS
from gpumem.model.types import RepoMetadata, TensorInfo, WeightSet

from .fakehub import layouts  # the documented packings, shared with the tests
from .fixtures import HUB_FIXTURES as HUB
from .fixtures import ROOT

OUT = ROOT / "src" / "gpumem" / "data" / "snapshot"

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
    notes: tuple[str, ...] = ()  # the revision is in the report itself; sources are in the repository's fixtures
    if folder.name != repo_id.replace("/", "__"):
        hub_total = ((info or {}).get("safetensors") or {}).get("total")
        stored = sum(t.numel for t in tensors)
        if hub_total is not None and hub_total != stored:
            raise SystemExit(f"{repo_id}: the Hub's total {hub_total:,} differs from {folder.name}'s {stored:,}")
        notes = (f"snapshot: tensors and config.json of {folder.name.replace('__', '/')} (same architecture and "
                 "shapes)",)
    return RepoMetadata(repo_id, revision, "snapshot", (weights,), tuple(listed or weight_files), notes)


def _nbytes(dtype: str, shape: list[int]) -> int:
    numel = 1
    for dim in shape:
        numel *= dim
    return numel * DTYPE_BITS[dtype] // 8


def build_quantized(repo_id: str) -> RepoMetadata:
    """A pre-quantized fixture repo: real config (+ quantize_config / index), tensors from its packing."""
    folder = HUB / repo_id.replace("/", "__")
    config, index = _read(folder, "config.json"), _read(folder, "model.safetensors.index.json")
    quantize_config = _read(folder, "quantize_config.json")
    if repo_id == "TheBloke/Llama-2-13B-chat-GPTQ":
        tensors = layouts.quantize(layouts.llama2_13b_layout(config), layouts.gptq)
    elif repo_id == "deepseek-ai/DeepSeek-R1":
        tensors = layouts.deepseek_v3_layout(config)
    else:  # bitsandbytes int8 on Llama-3.1-8B shapes, names from the real index
        shapes = {name: tuple(shape) for name, (_, shape) in _read(HUB / "meta-llama__Llama-3.1-8B",
                                                                   "tensors.json")["tensors"].items()}
        tensors = layouts.bnb_int8_layout(index, shapes)
    shards = (index or {}).get("weight_map") or {}
    files = tuple(sorted(set(shards.values()))) or SHARD_NAMES.get(repo_id, ("model.safetensors",))
    tensors = tuple(TensorInfo(t.name, t.dtype, t.shape, t.nbytes, shards.get(t.name, files[0] if len(files) == 1 else ""))
                    for t in tensors)
    note = ("snapshot built from the real config with the method's documented packing (exact names and shapes "
            "unverified against the Hub)")
    return RepoMetadata(repo_id, "unrecorded", "snapshot",
                        (WeightSet("", "safetensors", files, tensors, config, quantize_config),), files, (note,))


# Shard names known from fixtures/hub/SOURCES.md where no index is saved (which tensor is in which: unrecorded).
SHARD_NAMES = {"deepseek-ai/DeepSeek-R1": tuple(f"model-{i:05d}-of-000163.safetensors" for i in range(1, 164))}
QUANTIZED = ("TheBloke/Llama-2-13B-chat-GPTQ", "deepseek-ai/DeepSeek-R1",
             "IrfanUruchi/Llama-3.1-8B-Computer-Networks-LLM")


def entries() -> dict[str, RepoMetadata]:
    """Every snapshot entry, by repo id."""
    sources = {f.name.replace("__", "/"): f for f in sorted(HUB.iterdir()) if (f / "tensors.json").exists()}
    sources.update({alias: HUB / folder for alias, folder in ALIASES.items()})
    built = {repo_id: build_entry(repo_id, folder) for repo_id, folder in sorted(sources.items())}
    built.update({repo_id: build_quantized(repo_id) for repo_id in QUANTIZED})
    return built


def file_name(repo_id: str) -> str:
    """The snapshot file of a repo."""
    return repo_id.replace("/", "__") + ".json.gz"


def main() -> None:
    """Write one file per repo (replacing the folder) and print what it holds."""
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json.gz"):
        old.unlink()
    for repo_id, metadata in entries().items():
        payload = json.dumps(metadata.to_dict(), separators=(",", ":"), sort_keys=True).encode()
        (OUT / file_name(repo_id)).write_bytes(gzip.compress(payload, mtime=0))
    files = sorted(OUT.glob("*.json.gz"))
    print(f"{OUT.relative_to(ROOT)}: {len(files)} repos, {sum(f.stat().st_size for f in files):,} bytes")


if __name__ == "__main__":
    main()
