"""Predicted per-GPU peak vs the H200 measurements: every serve row within 10% (scripts/accuracy.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "accuracy.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpumem_accuracy", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ROWS = load_script().rows()


def test_every_measured_row_is_covered():
    calibration = {r["model"] for r in ROWS if r["set"] == "calibration"}
    held_out = {r["model"] for r in ROWS if r["set"] == "held-out"}
    assert len(ROWS) == 18
    assert calibration == {"Llama-2-7b-hf", "Meta-Llama-3-8B", "Mistral-7B-v0.1"}
    assert held_out == {"Qwen2.5-7B", "Phi-3-mini-4k-instruct", "gpt2", "Mixtral-8x7B-v0.1"}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['set']}-{r['model']}-{r['batch']}x{r['seq']}")
def test_total_within_ten_percent(row):
    assert abs(row["error_pct"]) < 10
    assert row["kv_predicted"] == row["kv_measured"]


def test_script_prints_the_table(capsys):
    assert load_script().main() == 0
    out = capsys.readouterr().out
    assert "predicted GB" in out and "Mistral-7B-v0.1" in out


def test_mistral_with_its_4096_window_matches_the_measured_prefill():
    # Mistral-7B-v0.1 publishes sliding_window 4096; the H200 rows ran it with the window off, which at 4096 and
    # 2048 tokens per sequence attends the same tokens. transformers keeps the whole prompt's K/V during prefill
    # (the sliding layer stores a view of it), so the window changes nothing here; the old S x S score term was 49%
    # high at 8 x 4096.
    windowed = [r for r in load_script().rows(sliding_window={"Mistral-7B-v0.1": 4096}) if r["model"] == "Mistral-7B-v0.1"]
    assert len(windowed) == 3
    assert all(abs(r["error_pct"]) < 5 for r in windowed)


def test_sliding_window_models_within_five_percent():
    assert all(abs(r["error_pct"]) < 5 for r in ROWS if r["model"] in ("Phi-3-mini-4k-instruct", "Mistral-7B-v0.1"))
