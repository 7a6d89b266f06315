"""Predicted per-GPU peak vs the H200 measurements: every serve row within 5% (gpumem_dev.accuracy)."""

from __future__ import annotations

import json

import pytest

from gpumem.model.architecture import parse_architecture
from gpumem.model.params import summarize_weights
from gpumem.planning.engines import MIB
from gpumem.planning.memory import ServingOptions
from gpumem_dev import accuracy
from gpumem_dev.fixtures import FIXTURES, HUB_FIXTURES

ROWS = accuracy.rows()


def test_every_measured_row_is_covered():
    calibration = {r["model"] for r in ROWS if r["set"] == "calibration"}
    held_out = {r["model"] for r in ROWS if r["set"] == "held-out"}
    assert len(ROWS) == 18
    assert calibration == {"Llama-2-7b-hf", "Meta-Llama-3-8B", "Mistral-7B-v0.1"}
    assert held_out == {"Qwen2.5-7B", "Phi-3-mini-4k-instruct", "gpt2", "Mixtral-8x7B-v0.1"}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['set']}-{r['model']}-{r['batch']}x{r['seq']}")
def test_total_within_five_percent(row):
    assert abs(row["error_pct"]) < 5
    assert row["kv_predicted"] == row["kv_measured"]


def test_script_prints_the_table(capsys):
    assert accuracy.main() == 0
    out = capsys.readouterr().out
    assert "predicted GB" in out and "Mistral-7B-v0.1" in out


def test_mistral_with_its_4096_window_matches_the_measured_prefill():
    # Mistral-7B-v0.1 publishes sliding_window 4096; the H200 rows ran it with the window off, which at 4096 and
    # 2048 tokens per sequence attends the same tokens. transformers keeps the whole prompt's K/V during prefill
    # (the sliding layer stores a view of it), so the window changes nothing here; the old S x S score term was 49%
    # high at 8 x 4096.
    windowed = [r for r in accuracy.rows(sliding_window={"Mistral-7B-v0.1": 4096}) if r["model"] == "Mistral-7B-v0.1"]
    assert len(windowed) == 3
    assert all(abs(r["error_pct"]) < 5 for r in windowed)


def test_sliding_window_models_within_five_percent():
    assert all(abs(r["error_pct"]) < 5 for r in ROWS if r["model"] in ("Phi-3-mini-4k-instruct", "Mistral-7B-v0.1"))


HELD_OUT = FIXTURES / "measurements" / "h200-heldout-transformers-bf16.jsonl"


def _measured(kind: str, model: str) -> list[dict]:
    rows = [json.loads(line) for line in HELD_OUT.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["kind"] == kind and r["model"] == model]


@pytest.mark.parametrize("model,earlier_workspace_mib,unmodelled_mib", [
    ("Qwen2.5-7B", 0, 0),  # measured first: 84 MLP matrices of 129.5 MiB in 130 MiB segments, +43 MiB
    ("Phi-3-mini-4k-instruct", 33, 0),
    ("gpt2", 33, 5.75),  # medium tensors packed into 20 MiB segments (construction order), not modelled
    ("Mixtral-8x7B-v0.1", 33, 0),
])  # fmt: skip
def test_loaded_weights_are_what_the_caching_allocator_holds(model, earlier_workspace_mib, unmodelled_mib):
    # memory_allocated() after building each model: its weights as the allocator rounds them, plus the cuBLAS and
    # cuBLASLt workspaces (33 MiB on an H200) the models measured before it left allocated.
    folder = accuracy.MANIFESTS[model]
    config = json.loads((HUB_FIXTURES / folder / "config.json").read_text())
    options = ServingOptions(engine="transformers", kv_dtype="bf16")
    predicted = options.engine_model.loaded_weights(summarize_weights(accuracy.manifest_tensors(folder), config),
                                                    parse_architecture(config), options, bits=16)
    (measured,) = _measured("weights", model)
    unexplained = measured["allocated_bytes"] - predicted - earlier_workspace_mib * MIB - int(unmodelled_mib * MIB)
    assert abs(unexplained) < 4096


def test_gpt2_prefill_holds_what_its_modeling_code_keeps_alive():
    # 4 intermediate + 5 hidden bf16 tensors per token and one (1, S, 768) position-embedding tensor: to the byte
    # at 8 x 1024 but for 8 KiB; 1 x 1024 leaves 0.27 MB of allocator rounding on 1.5-6 MiB tensors.
    for row in (r for r in ROWS if r["model"] == "gpt2"):
        (serve,) = [s for s in _measured("serve", "gpt2") if s["batch"] == row["batch"]]
        options = ServingOptions(engine="transformers", kv_dtype="bf16", context=row["seq"],
                                 concurrency=row["batch"])
        config = json.loads((HUB_FIXTURES / "openai-community__gpt2" / "config.json")
                            .read_text())
        peak, _ = options.engine_model.activation_peak(parse_architecture(config), options, row["seq"])
        logits = row["batch"] * 50257 * 4  # gpumem's fp32 last-position logits
        transient = serve["prefill_peak_over_weights_bytes"] - serve["kv_bytes_measured"]
        assert 0 <= transient - (peak - logits) < 300_000
