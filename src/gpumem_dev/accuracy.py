"""Print gpumem's predicted peak GPU memory against the H200 measurements (transformers engine, bf16 KV).

Two measurement files: h200-transformers-bf16.jsonl (the calibration set the activation constants were
fitted on) and h200-heldout-transformers-bf16.jsonl (models the fit never saw, measured with
scripts/measure_gpu.py). For every `serve` row: predicted per-GPU total
(weights + KV + activation peak + context overhead) vs measured `weights_bytes +
prefill_peak_over_weights_bytes + context_overhead_bytes`. Weights come from the model's tensors.json
manifest in fixtures/hub when there is one, else from Llama-shaped tensors built from the measured
config (embeddings, q/k/v/o, gate/up/down, two norms per layer, final norm, lm_head, all bf16).

    python scripts/accuracy.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gpumem.model.architecture import parse_architecture
from gpumem.model.params import summarize_weights
from gpumem.model.types import TensorInfo
from gpumem.planning.memory import ServingOptions, estimate_serving
from gpumem_dev.fixtures import ROOT, manifest_tensors

MEASUREMENTS = {"calibration": ROOT / "fixtures" / "measurements" / "h200-transformers-bf16.jsonl",
                "held-out": ROOT / "fixtures" / "measurements" / "h200-heldout-transformers-bf16.jsonl"}
MANIFESTS = {"Llama-2-7b-hf": "meta-llama__Llama-2-7b-hf", "Meta-Llama-3-8B": "meta-llama__Llama-3.1-8B",
             "Qwen2.5-7B": "Qwen__Qwen2.5-7B", "Phi-3-mini-4k-instruct": "microsoft__Phi-3-mini-4k-instruct",
             "gpt2": "openai-community__gpt2", "Mixtral-8x7B-v0.1": "mistralai__Mixtral-8x7B-v0.1"}


def llama_shaped_tensors(config: dict) -> list[TensorInfo]:
    """Bf16 tensors of a Llama-style decoder with the config's shapes (no biases, untied lm_head)."""
    arch = parse_architecture(config)
    h, i, v, d = arch.hidden_size, arch.intermediate_size, arch.vocab_size, arch.head_dim
    q, kv = arch.num_attention_heads * d, arch.num_kv_heads * d
    shapes = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,), "lm_head.weight": (v, h)}
    for n in range(arch.num_layers):
        p = f"model.layers.{n}."
        shapes |= {p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
                   p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
                   p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                   p + "mlp.down_proj.weight": (h, i), p + "input_layernorm.weight": (h,),
                   p + "post_attention_layernorm.weight": (h,)}
    return [TensorInfo(name, "BF16", shape, 2 * _prod(shape)) for name, shape in shapes.items()]


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for dim in shape:
        out *= dim
    return out


def rows(sliding_window: dict[str, int] | None = None) -> list[dict]:
    """One dict per serve row of both files: set, model, batch, seq, predicted and measured bytes, error %.

    `sliding_window` sets a model's window in its measured config (a what-if: the H200 rows ran Mistral-7B-v0.1
    without its published 4096 window).
    """
    return [row for label, path in MEASUREMENTS.items() for row in _rows(label, path, sliding_window or {})]


def _rows(label: str, path: Path, sliding_window: dict[str, int]) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    device = next(r for r in lines if r["kind"] == "device")
    out = []
    for row in (r for r in lines if r["kind"] == "serve"):
        folder = MANIFESTS.get(row["model"])
        config = next((r["config"] for r in lines if r["kind"] == "weights" and r["model"] == row["model"]
                       and "config" in r), None) or json.loads((ROOT / "fixtures" / "hub" / folder / "config.json").read_text())
        if row["model"] in sliding_window:
            config = {**config, "sliding_window": sliding_window[row["model"]]}
        tensors = manifest_tensors(folder) if folder else llama_shaped_tensors(config)
        summary = summarize_weights(tensors, config)
        options = ServingOptions(engine="transformers", context=row["seq"], concurrency=row["batch"],
                                 kv_dtype="bf16")
        # The measurements load every model in bf16 (gpt2's checkpoint is F32): the 16-bit what-if.
        estimate = estimate_serving(summary, parse_architecture(config), options, bits=16)
        measured = row["weights_bytes"] + row["prefill_peak_over_weights_bytes"] + device["context_overhead_bytes"]
        out.append({"set": label, "model": row["model"], "batch": row["batch"], "seq": row["seq"],
                    "predicted": estimate.total_bytes, "measured": measured,
                    "kv_predicted": estimate.kv_cache_bytes, "kv_measured": row["kv_bytes_measured"],
                    "error_pct": 100 * (estimate.total_bytes - measured) / measured})
    return out


def main() -> int:
    """Print the table; exit 1 if any row is off by 5% or more."""
    table = rows()
    print(f"{'set':<11} {'model':<22} {'batch':>5} {'seq':>6} {'predicted GB':>13} {'measured GB':>12} {'error %':>8}")
    for r in table:
        print(f"{r['set']:<11} {r['model']:<22} {r['batch']:>5} {r['seq']:>6} {r['predicted'] / 1e9:>13.3f} "
              f"{r['measured'] / 1e9:>12.3f} {r['error_pct']:>+8.2f}")
    for label in MEASUREMENTS:
        errors = sorted(abs(r["error_pct"]) for r in table if r["set"] == label)
        print(f"{label}: worst error {errors[-1]:.2f}%, median {errors[len(errors) // 2]:.2f}% over {len(errors)} rows")
    return 0 if max(abs(r["error_pct"]) for r in table) < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
