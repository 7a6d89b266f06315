"""Where the repository's fixtures are, and loaders for the real-model manifests in fixtures/hub."""

from __future__ import annotations

import json
from pathlib import Path

from gpumem.model.safetensors_header import DTYPE_BITS
from gpumem.model.types import TensorInfo

ROOT = Path(__file__).resolve().parents[2]  # the checkout: this package is never installed elsewhere
FIXTURES = ROOT / "fixtures"
HUB_FIXTURES = FIXTURES / "hub"


def load_fixture_json(folder: str, name: str) -> dict:
    """Read one JSON file of a real-model fixture folder, e.g. ('openai-community__gpt2', 'config.json')."""
    return json.loads((HUB_FIXTURES / folder / name).read_text())


def manifest_tensors(folder: str) -> list[TensorInfo]:
    """TensorInfo for every tensor of a fixture's tensors.json manifest (file = its shard or model.safetensors)."""
    manifest = load_fixture_json(folder, "tensors.json")
    shards = manifest.get("shards") or {}
    tensors = []
    for name, (dtype, shape) in manifest["tensors"].items():
        numel = 1
        for dim in shape:
            numel *= dim
        tensors.append(TensorInfo(name, dtype, tuple(shape), numel * DTYPE_BITS[dtype] // 8,
                                  shards.get(name, "model.safetensors")))
    return tensors
