"""vLLM startup logs people posted, reproduced at each log's version defaults (gpumem_dev.vllm_accuracy).

The shared file is the fitting set: every log is checked on what it shows (KV pool, loaded weights, the
budget identity). The held-out file was never used to fit: the issue's bounds hold there.
"""

from __future__ import annotations

import json

import pytest

from gpumem_dev import vllm_accuracy as ACCURACY
from gpumem_dev.fixtures import FIXTURES, ROOT

SHARED_FILE = FIXTURES / "measurements" / "vllm-public-logs.jsonl"
FITTED = {r.id: r for r in ACCURACY.shared_rows()}
HELD_OUT = ACCURACY.heldout_rows()
SHARED_LOGS = [json.loads(line) for line in SHARED_FILE.read_text().splitlines() if line.strip()]

# KV-pool tolerance per fitted log (|predicted - logged| / logged). Known misses, with why:
KV_TOLERANCE = {
    # Mistral-Small-3.2 is multimodal (Mistral3ForConditionalGeneration): its profile peak (2.12 GiB) is well under
    # the text-only sampler figure for 1024 sequences; the multimodal profile path is not modelled.
    "llmd-benchmark-mistral-small-3.2-24b-instruct-2506-tp1": 0.10,
    # The 0.6.5.dev build of PR #10511 counted 1.79 GiB of non-torch memory at TP 1 (later versions: 0.13-0.35).
    "vllm-pr10511-llama3-8b-tp1": 0.035,
    "vllm-issue15815-qwen25-32b-2xl40s": 0.055,
    "vllm-issue10517-llama31-8b-3090-29k": 0.035,  # V0 0.6.4: a 29,000-token profile batch, forward share 0.93  # V0 in 0.8.x at TP 2 on L40S (non-torch 0.3 GiB, activation 1.26)
}


@pytest.mark.parametrize("log", SHARED_LOGS, ids=lambda r: r["id"])
def test_every_shared_log_is_reproduced_on_what_it_shows(log):
    row = FITTED.get(log["id"])
    if row is None:  # a log without a KV pool or weights figure for a known model: checked on what it holds
        assert log["id"] in ACCURACY_ONLY_SHOWS, f"{log['id']} is neither reproduced nor listed as partial"
        ACCURACY_ONLY_SHOWS[log["id"]](log)
        return
    if row.logged_kv_gib is not None and row.predicted_kv_gib is not None:
        if row.logged_kv_gib > 0:
            assert abs(row.kv_error_pct) <= 100 * KV_TOLERANCE.get(row.id, 0.03), row
        else:  # a failed start: the same deficit within 0.2 GiB
            assert abs(row.kv_error_gib) <= 0.2, row
    if row.weights_error_pct is not None:
        assert abs(row.weights_error_pct) <= 1.0, row


def _budget_identity(log):
    """Logs that print every term: budget = weights + activation + non-torch + KV, to 0.02 GiB."""
    r = log["reported"]
    budget = r["total_gpu_memory_GiB"] * log["gpu_memory_utilization"]
    assert budget == pytest.approx(r["instance_can_use_GiB"], abs=0.01)
    weights = r.get("model_weights_GiB", r.get("model_weights_GB_as_logged"))
    kv = r.get("kv_cache_GiB", r.get("available_kv_cache_GiB"))
    assert weights + r["activation_peak_GiB"] + r.get("non_torch_GiB", r.get("non_torch_memory_GiB")) + kv == \
        pytest.approx(budget, abs=0.02)


def _blocks(log):
    """V0 block counts (0.2.x): the per-token KV bytes the model gives, at 16 tokens a block."""
    r = log["reported"]
    per_token = {"meta-llama/Llama-2-7b-hf": 524_288, "meta-llama/Llama-2-70b-hf": 81_920}[log["model"]]
    assert r["gpu_blocks_after_fix"] * 16 * per_token / 2**30 < 0.9 * 80


def _cuda_total(log):
    """A10's CUDA-visible total in the catalog is the one the log prints."""
    from gpumem.planning.gpus import find_gpu

    assert find_gpu("A10").usable_bytes / 2**30 == pytest.approx(log["reported"]["torch_total_capacity_GiB"], abs=0.005)


def _graphs_on_top(log):
    """V0 CUDA graphs sit on top of the budget: nvidia-smi shows them beyond 0.9 x total."""
    r = log["reported"]
    assert r["nvidia_smi_used_MiB_with_cudagraphs"] - r["nvidia_smi_used_MiB_enforce_eager"] == \
        r["cuda_graph_MiB_outside_budget"]


def _weights_only(log):
    """A per-rank weight figure of a checkpoint gpumem has no manifest for: recorded, not predicted."""
    r = log["reported"]
    assert r.get("model_weights_GB_as_logged_per_rank", r.get("model_weights_GB_as_logged")) > 0


ACCURACY_ONLY_SHOWS = {
    "vllm-pr2031-llama2-7b-a100": _blocks, "vllm-pr2031-llama2-70b-4xa100": _blocks,
    "vllm-pr14447-3090-util099": _budget_identity, "vllm-issue13882-qwen25-7b-quant-rtx4060": _budget_identity,
    "vllm-pr12126-llama32-11b-vision-h100": _budget_identity, "mellea-pr416-small-model-h100": _budget_identity,
    "qwen3-issue1387-qwen3-30b-a3b-4xa10-oom": _cuda_total, "vllm-issue7553-yi-34b-4x4090-cudagraph": _graphs_on_top,
    "vllm-issue6746-llama31-405b-fp8-8xh100": _weights_only, "vllm-pr10909-bamba-9b": _weights_only,
    "myoceane-gemma-4-26b-a4b-a100": lambda log: pytest.skip("Gemma-4's shape is not in fixtures (no config found)"),
}


HELD_OUT_FILE = FIXTURES / "measurements" / "vllm-heldout-logs.jsonl"
HELD_OUT_LOGS = [json.loads(line) for line in HELD_OUT_FILE.read_text().splitlines() if line.strip()]


def test_heldout_logs_are_kept_out_of_the_fitting():
    """No held-out log is in the shared (fitting) file or read by the fitted table, and each keeps its evidence."""
    shared = {log["id"] for log in SHARED_LOGS} | set(ACCURACY.SHARED)
    ids = [log["id"] for log in HELD_OUT_LOGS]
    assert len(ids) == len(set(ids)) and not shared & set(ids)
    for log in HELD_OUT_LOGS:
        assert log["source"].startswith("https://") and log["quote"].strip(), log["id"]
        assert "Available KV cache memory" in log["quote"] or "kv_cache_memory_gib" in log["quote"] \
            or "Available KV cache" in log["quote"], log["id"]


def test_heldout_logs_span_versions_gpus_tp_and_utilization():
    """The held-out set covers what the issue asks: vLLM 0.10-0.19, several GPUs, TP 1-4, utilization 0.25-0.95."""
    rows = [r for r in HELD_OUT if r.kv_error_pct is not None]
    assert len(rows) >= 15
    assert {"0.10", "0.11", "0.15", "0.16", "0.17", "0.18", "0.19"} <= {r.version for r in rows}
    assert {"A100 80GB", "A100 40GB", "H100 SXM"} <= {r.gpu for r in rows}
    assert {1, 2, 4} <= {r.tp for r in rows}
    assert min(r.util for r in rows) <= 0.25 and max(r.util for r in rows) >= 0.95


@pytest.mark.parametrize("row", HELD_OUT, ids=lambda r: r.id)
def test_every_heldout_log_within_8_percent(row):
    """Each held-out pool within 8% of the logged "Available KV cache memory"; predicted weights within 3%."""
    assert row.kv_error_pct is not None, row
    assert abs(row.kv_error_pct) <= 8.0, row
    if row.weights_error_pct is not None:
        assert abs(row.weights_error_pct) <= 3.0, row


def test_heldout_logs_include_sources_the_fit_never_saw():
    """Some held-out logs come from repositories or sites with no log in the fitting set; they meet the bounds too."""
    fitted = {ACCURACY.source_key(log["source"]) for log in SHARED_LOGS}
    own = [r for r in HELD_OUT if ACCURACY.source_key(r.source) not in fitted]
    assert len({ACCURACY.source_key(r.source) for r in own}) >= 4
    assert max(abs(r.kv_error_pct) for r in own) <= 8.0


def test_heldout_logs_meet_the_issue_bounds():
    """Issue 11: KV pool within 8% on every held-out log and within 3% at the median; loaded weights within 3%."""
    s = ACCURACY.summary(HELD_OUT)
    assert s["kv_rows"] == len(HELD_OUT) and s["kv_worst"] <= 8.0 and s["kv_median"] <= 3.0
    assert s["weight_rows"] >= 10 and s["weights_worst"] <= 3.0


def test_fitted_set_summary_matches_docs():
    s = ACCURACY.summary(list(FITTED.values()))
    assert s["kv_rows"] >= 12 and s["kv_median"] <= 1.5 and s["weights_worst"] <= 1.0


def test_docs_accuracy_page_is_the_scripts_output(capsys):
    ACCURACY.main()
    out = capsys.readouterr().out.strip()
    assert out in (ROOT / "docs" / "accuracy.md").read_text()
