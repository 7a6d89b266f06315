"""SGLang startup logs people posted (fixtures/measurements/sglang-public-logs.jsonl): the default
`mem_fraction_static` per version and GPU, and the KV pool rule `tokens = (free_after - free_before x (1 - f)) //
cell` that engines/sglang.py models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpumem.model.architecture import parse_architecture
from gpumem.planning.engines import GpuTarget, get_engine
from gpumem.planning.memory import ServingOptions, kv_bytes_per_token

LOGS = {r["id"]: r for r in (json.loads(x) for x in (Path(__file__).resolve().parent.parent / "fixtures" /
        "measurements" / "sglang-public-logs.jsonl").read_text().splitlines() if x.strip())}
SGLANG = get_engine("sglang")
MIB = 2**20


@pytest.mark.parametrize("version,gpu_mib,tp,fraction", [
    ("0.4.2", 81559, 1, 0.88),  # docs builds on H100 (rows 1-3), RTX 3090 (row 6)
    ("0.4.3", 23034, 4, 0.85),  # 4 x L4 in 0.4.3.post4 (row 7)
    ("0.4.9", 24564, 1, 0.879),  # 24 GB card, 0.4.8-0.5.2 band rule (Thesis log, row 5)
    ("0.4.10", 16303, 1, 0.818),  # RTX 5080 16 GB (row 11)
    ("0.5.3", 81559, 1, 0.835),  # H100 in 2026 docs CI (reference/sglang-memory.md)
    ("0.5.3", 143771, 1, 0.907),  # H200 docs CI
    ("0.5.3", 46068, 1, 0.851),  # L40S, PR #13023's server_args
    ("0.5.3", 294912, 1, 0.911),  # 288 GB AMD (row 16, logged 0.911)
])  # fmt: skip
def test_default_fraction_per_version_and_gpu(version, gpu_mib, tp, fraction):
    options = ServingOptions(engine="sglang", engine_version=version, tp=tp,
                             gpu=GpuTarget("gpu", gpu_mib * MIB, gpu_mib * MIB))
    assert SGLANG.mem_fraction_static(options) == pytest.approx(fraction, abs=0.0015)


@pytest.mark.parametrize("log_id,config,tp", [
    ("sgl-docs-2025-01-23-llama32-1b-h100", None, 1),
    ("jerryzsj-r1-distill-qwen7b-rtx3090", "fixtures/hub/Qwen__Qwen2.5-7B/config.json", 1),
    ("llms-in-clouds-qwq32b-4xL4-tp4", None, 4),
    ("qwen3-14b-4xrtx4090-tp4-mem0.8", None, 4),
    ("qwen3-0.6b-rtx5080-16gb", None, 1),
    ("qwen25-0.5b-16gb-pd-prefill-mem0.15", None, 1),
    ("augmxnt-mi300x-llama3-8b-bench-latency", "fixtures/hub/meta-llama__Llama-3.1-8B/config.json", 1),
])  # fmt: skip
def test_kv_tokens_follow_the_free_memory_rule(log_id, config, tp):
    log = LOGS[log_id]
    r = log["reported"]
    before = r.get("avail_mem_before_load_GB") or r["avail_mem_after_load_GB"] + r["weights_mem_usage_GB"]
    fraction = log["mem_fraction_static"] or {"jerryzsj-r1-distill-qwen7b-rtx3090": 0.88}.get(log_id) or \
        (0.879 if "24" in log["gpu"] else 0.818)
    rest_gib = r["avail_mem_after_load_GB"] - before * (1 - fraction)
    tokens = r.get("max_total_num_tokens") or r["kv_tokens"]
    if config is not None:  # the cell size from the real config, at the log's TP
        arch = parse_architecture(json.loads((Path(__file__).resolve().parent.parent / config).read_text()))
        cell = kv_bytes_per_token(arch, 2, tp)
    else:  # the cell size the log's own K/V sizes give (K + V GiB over tokens)
        cell = (r["k_size_GB"] + r["v_size_GB"]) * 2**30 / tokens
    assert rest_gib * 2**30 / cell == pytest.approx(tokens, rel=0.01)


def test_sglang_pool_is_the_fraction_of_free_memory_less_weights():
    h100 = GpuTarget("H100 SXM", int(79.19 * 2**30), 81559 * MIB)
    options = ServingOptions(engine="sglang", gpu=h100, mem_fraction_static=0.88)
    assert SGLANG.budget(h100.total_bytes, options) == int((h100.total_bytes - int(0.38 * 2**30)) * 0.88)
    assert SGLANG.command("Qwen/Qwen3-8B", options, 1).startswith("python -m sglang.launch_server --model-path")
