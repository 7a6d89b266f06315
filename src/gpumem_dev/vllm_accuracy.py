"""Predicted vs logged vLLM KV pool ("Available KV cache memory") and loaded weights, for every startup log kept
in fixtures/measurements: the shared file (vllm-public-logs.jsonl, which the engine constants were fitted on)
and the held-out file (vllm-heldout-logs.jsonl, never used to fit). Prints one table per set and the errors.

Weights are predicted from the model's tensors.json manifest where fixtures/hub has one ("predicted"), else, for an
unquantized Llama / Qwen2 / Qwen3 / Qwen3-MoE checkpoint, from bf16 tensors built from its config's shape keys
("shapes", the layout of those transformers classes); otherwise the logged weights are used and the row says so
("log": the row then checks the rest of the budget).

    python scripts/vllm_accuracy.py
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from dataclasses import dataclass

from gpumem.model.architecture import parse_architecture
from gpumem.model.params import summarize_weights
from gpumem.model.types import ModelSummary, TensorInfo, WeightCount
from gpumem.planning.engines import GpuTarget
from gpumem.planning.memory import ServingOptions, estimate_serving, kv_pool_bytes
from gpumem_dev.fixtures import ROOT, manifest_tensors

MEASUREMENTS = ROOT / "fixtures" / "measurements"
GIB = 2**30

# How each shared log is read: the vLLM version bucket, the GPU (catalog name, CUDA-visible total in GiB as
# logged or as the catalog gives it), the model key of vllm-log-models.json, and settings the row implies.
# Rows without a KV figure, or with a model whose shape is unknown, are checked on what they do show.
SHARED = {
    "vllm-pr10511-llama3-8b-tp1": dict(version="0.6", gpu="H100 SXM", model="meta-llama/Meta-Llama-3-8B"),
    "vllm-pr10511-llama3-8b-tp2": dict(version="0.6", gpu="H100 SXM", model="meta-llama/Meta-Llama-3-8B"),
    "vllm-issue10517-llama31-8b-3090-20k": dict(version="0.6", gpu="RTX 3090", model="meta-llama/Llama-3.1-8B-Instruct"),
    "vllm-issue10517-llama31-8b-3090-29k": dict(version="0.6", gpu="RTX 3090", model="meta-llama/Llama-3.1-8B-Instruct"),
    "vllm-pr17122-llama31-8b-l40s": dict(version="0.8", gpu="L40S", model="meta-llama/Llama-3.1-8B-Instruct"),
    "vllm-issue17469-qwen3-30b-a3b-4xa10": dict(version="0.8", gpu="A10", model="Qwen/Qwen3-30B-A3B"),
    "vllm-issue15815-qwen25-32b-2xl40s": dict(version="0.8", gpu="L40S", model="Qwen2.5-32B-Instruct", v0=True),
    "vllm-issue21348-qwen3-235b-fp8-4xh100": dict(version="0.10", gpu="H100 SXM", model="Qwen/Qwen3-235B-A22B-FP8",
                                                 max_model_len=40960, flashinfer_sampler=False),
    "vllm-pr12569-llama31-70b-w8a8": dict(version="0.8", gpu="H100 SXM", model="neuralmagic/Meta-Llama-3.1-70B-Instruct-quantized.w8a8"),
    # Its columns satisfy pool = total x util - the rest only at util 0.95 (75.22 / 79.18): read as 0.95.
    "llmd-benchmark-gpt-oss-120b-tp1": dict(version="0.11", gpu="H100 SXM", model="openai/gpt-oss-120b",
                                            flashinfer_sampler=False, util=0.95),
    "llmd-benchmark-llama-3.3-70b-instruct-fp8-dynamic-tp2": dict(version="0.11", gpu="H100 SXM", model="RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", flashinfer_sampler=False),
    "llmd-benchmark-llama-3.3-70b-instruct-fp8-dynamic-tp1": dict(version="0.11", gpu="H100 SXM", model="RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", flashinfer_sampler=False),
    "llmd-benchmark-qwen3-0.6b-tp1": dict(version="0.11", gpu="H100 SXM", model="Qwen/Qwen3-0.6B", flashinfer_sampler=False),
    "llmd-benchmark-qwen3-32b-tp1": dict(version="0.11", gpu="H100 SXM", model="Qwen/Qwen3-32B", flashinfer_sampler=False),
    "llmd-benchmark-qwen3-32b-tp2": dict(version="0.11", gpu="H100 SXM", model="Qwen/Qwen3-32B", flashinfer_sampler=False),
    "llmd-benchmark-mistral-small-3.2-24b-instruct-2506-tp1": dict(version="0.11", gpu="H100 SXM", model="mistralai/Mistral-Small-3.2-24B-Instruct-2506", flashinfer_sampler=False),
    "dennislee22-gpt-oss-120b-4xa100": dict(version="0.10", gpu="A100 80GB", model="openai/gpt-oss-120b", flashinfer_sampler=True),
    "llmd-planner-v0.19-llama-3.1-8b-instruct-tp1": dict(version="0.19", gpu="H100 SXM", model="meta-llama/Llama-3.1-8B-Instruct"),
    "llmd-planner-v0.19-llama-3.1-8b-instruct-tp2": dict(version="0.19", gpu="H100 SXM", model="meta-llama/Llama-3.1-8B-Instruct"),
    "llmd-planner-v0.19-llama-3.1-8b-instruct-tp4": dict(version="0.19", gpu="H100 SXM", model="meta-llama/Llama-3.1-8B-Instruct"),
}
# The CUDA-visible totals the logs print, where they print one (GiB); otherwise the catalog's.
LOGGED_TOTAL_KEYS = ("total_gpu_memory_GiB",)
KV_KEYS = ("available_kv_cache_GiB", "kv_cache_GiB", "kv_cache_size_GiB", "actual_kv_GiB")
WEIGHT_KEYS = ("model_loading_GiB", "model_weights_GiB", "model_weights_GB_as_logged", "actual_weight_GiB")


@dataclass(frozen=True)
class Row:
    """One log compared: what was logged, what gpumem predicts, and on what basis."""

    set: str
    id: str
    source: str
    model: str
    version: str
    gpu: str
    tp: int
    util: float
    logged_kv_gib: float | None
    predicted_kv_gib: float | None
    logged_weights_gib: float | None
    predicted_weights_gib: float | None
    weights_basis: str  # "predicted" (tensor manifest), "shapes" (built from the config) or "log"

    @property
    def kv_error_gib(self) -> float | None:
        if self.logged_kv_gib is None or self.predicted_kv_gib is None:
            return None
        return self.predicted_kv_gib - self.logged_kv_gib

    @property
    def kv_error_pct(self) -> float | None:
        """Relative error of a started engine's pool (None for a failed start: pool <= 0, see kv_error_gib)."""
        if self.logged_kv_gib is None or self.predicted_kv_gib is None or self.logged_kv_gib <= 0:
            return None
        return 100 * (self.predicted_kv_gib - self.logged_kv_gib) / self.logged_kv_gib

    @property
    def weights_error_pct(self) -> float | None:
        if self.logged_weights_gib is None or self.predicted_weights_gib is None or self.weights_basis == "log":
            return None
        return 100 * (self.predicted_weights_gib - self.logged_weights_gib) / self.logged_weights_gib


def _models() -> dict:
    return json.loads((MEASUREMENTS / "vllm-log-models.json").read_text())


def _config(entry: dict) -> dict:
    if "config_file" in entry:
        return json.loads((ROOT / entry["config_file"]).read_text())
    return entry["config"]


SHAPED_TYPES = ("llama", "qwen2", "qwen3", "qwen3_moe")


def shaped_tensors(config: dict) -> list[TensorInfo]:
    """Bf16 tensors of an unquantized Llama / Qwen2 (q/k/v biases) / Qwen3 (q/k norms) / Qwen3-MoE checkpoint with
    the config's shapes, named as the transformers classes name them."""
    h, layers, v = config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]
    d = config.get("head_dim") or h // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * d, config["num_key_value_heads"] * d
    kind = config["model_type"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h), "model.norm.weight": (h,)}
    if not config.get("tie_word_embeddings"):
        shapes["lm_head.weight"] = (v, h)
    for n in range(layers):
        p = f"model.layers.{n}."
        shapes |= {p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
                   p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
                   p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,)}
        if kind == "qwen2":
            shapes |= {p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,), p + "self_attn.v_proj.bias": (kv,)}
        if kind in ("qwen3", "qwen3_moe"):
            shapes |= {p + "self_attn.q_norm.weight": (d,), p + "self_attn.k_norm.weight": (d,)}
        if kind == "qwen3_moe":
            experts, i = config["num_experts"], config["moe_intermediate_size"]
            shapes[p + "mlp.gate.weight"] = (experts, h)
            for e in range(experts):
                x = f"{p}mlp.experts.{e}."
                shapes |= {x + "gate_proj.weight": (i, h), x + "up_proj.weight": (i, h), x + "down_proj.weight": (h, i)}
        else:
            i = config["intermediate_size"]
            shapes |= {p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h), p + "mlp.down_proj.weight": (h, i)}
    return [TensorInfo(name, "BF16", shape, 2 * math.prod(shape)) for name, shape in shapes.items()]


def _catalog_total(name: str) -> int:
    from gpumem.planning.gpus import find_gpu

    return find_gpu(name).usable_bytes


def predict(row: dict, how: dict, label: str, entry: dict | None) -> Row:
    """Predicted pool and weights for one log."""
    reported = row["reported"]
    logged_total = next((reported[k] for k in LOGGED_TOTAL_KEYS if reported.get(k)), None)
    total = int(logged_total * GIB) if logged_total else _catalog_total(how["gpu"])
    logged_kv = next((reported[k] for k in KV_KEYS if reported.get(k) is not None), None)
    logged_w = next((reported[k] for k in WEIGHT_KEYS if reported.get(k) is not None), None)
    if logged_w is None and reported.get("model_weights_GB_as_logged_per_rank"):
        logged_w = reported["model_weights_GB_as_logged_per_rank"]
    tp = row.get("tp") or 1
    util = how.get("util") or row.get("gpu_memory_utilization") or 0.9
    context = how.get("max_model_len") or row.get("max_model_len") or 8192
    predicted_kv = predicted_w = None
    basis = "log"
    if entry is not None:
        config = _config(entry)
        arch = parse_architecture(config)
        options = ServingOptions(engine="vllm", engine_version=how["version"], context=context, tp=tp,
                                 gpu_memory_utilization=util, gpu=GpuTarget(how["gpu"], total),
                                 max_num_batched_tokens=row.get("max_num_batched_tokens"),
                                 max_num_seqs=row.get("max_num_seqs"),
                                 enforce_eager=bool(row.get("enforce_eager")),
                                 flashinfer_sampler=how.get("flashinfer_sampler", row.get("flashinfer_sampler")))
        if "tensors" in entry:
            summary = summarize_weights(manifest_tensors(entry["tensors"]), config)
            estimate = estimate_serving(summary, arch, options)
            basis = "predicted"
        elif config.get("model_type") in SHAPED_TYPES and "quantization_config" not in config and not entry.get("quantized"):
            estimate = estimate_serving(summarize_weights(shaped_tensors(config), config), arch, options)
            basis = "shapes"
        elif logged_w is not None:  # the logged per-rank bytes, as a summary without tensor classes
            logged = WeightCount(None, {}, int(logged_w * GIB) * tp)
            estimate = estimate_serving(ModelSummary(logged), arch, options)
        else:
            estimate = None
        if estimate is not None:
            predicted_w = estimate.weights_bytes / GIB
            predicted_kv = kv_pool_bytes(estimate, options, total) / GIB
    return Row(label, row["id"], row["source"], row["model"], how["version"], how["gpu"], tp, util,
               logged_kv, predicted_kv, logged_w, predicted_w, basis)


def shared_rows() -> list[Row]:
    """The fitting set, as SHARED reads each log."""
    models = _models()
    lines = _lines("vllm-public-logs.jsonl")
    out = []
    for row in lines:
        how = SHARED.get(row["id"])
        if how is None:
            continue
        out.append(predict(row, how, "fitted", models.get(how["model"])))
    return out


def heldout_rows() -> list[Row]:
    """The held-out logs; each row names its version, GPU and settings itself."""
    models = _models()
    lines = _lines("vllm-heldout-logs.jsonl")
    out = []
    for row in lines:
        version = ".".join(row["vllm_version"].split(".")[:2])
        how = {"version": version, "gpu": row["gpu"], "model": row["model"]}
        out.append(predict(row, how, "held-out", models[row["model"]]))
    return out


def _lines(name: str) -> list[dict]:
    return [json.loads(x) for x in (MEASUREMENTS / name).read_text().splitlines() if x.strip()]


def summary(rows: list[Row]) -> dict:
    """Median / worst absolute KV-pool and weight errors (%) over rows that have them."""
    kv = [abs(r.kv_error_pct) for r in rows if r.kv_error_pct is not None]
    w = [abs(r.weights_error_pct) for r in rows if r.weights_error_pct is not None]
    return {"kv_rows": len(kv), "kv_median": statistics.median(kv) if kv else None, "kv_worst": max(kv, default=None),
            "weight_rows": len(w), "weights_worst": max(w, default=None)}


def _weights_cell(r: Row) -> str:
    """Predicted weights, marked * when built from the config's shapes; "log" when the logged figure was used."""
    if r.weights_basis == "log":
        return "log"
    return _fmt(r.predicted_weights_gib) + ("*" if r.weights_basis == "shapes" else "")


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def main() -> int:
    """Print both tables and their summaries."""
    for label, rows in (("fitted (shared logs)", shared_rows()), ("held out", heldout_rows())):
        print(f"## {label}")
        print("| log | vLLM | GPU x TP | util | KV logged GiB | KV predicted | error GiB | error % | weights logged GiB "
              "| predicted | error % |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print(f"| [{r.id}]({r.source.split(' ')[0]}) | {r.version} | {r.gpu} x {r.tp} | {r.util} | "
                  f"{_fmt(r.logged_kv_gib)} | {_fmt(r.predicted_kv_gib)} | {_fmt(r.kv_error_gib, '+.2f')} | "
                  f"{_fmt(r.kv_error_pct, '+.1f')} | "
                  f"{_fmt(r.logged_weights_gib)} | {_weights_cell(r)} | "
                  f"{_fmt(r.weights_error_pct, '+.1f')} |")
        s = summary(rows)
        print(f"\nKV pool: {s['kv_rows']} logs, median |error| {_fmt(s['kv_median'])}%, worst {_fmt(s['kv_worst'])}%; "
              f"weights: {s['weight_rows']} logs, worst {_fmt(s['weights_worst'])}%")
        print(coverage(rows))
        if label == "held out":
            fitted_sources = {source_key(log["source"]) for log in _lines("vllm-public-logs.jsonl")}
            own = summary([r for r in rows if source_key(r.source) not in fitted_sources])
            print(f"from sources with no fitted log: KV pool {own['kv_rows']} logs, median |error| "
                  f"{_fmt(own['kv_median'])}%, worst {_fmt(own['kv_worst'])}%")
        print()
    print("Weights: * = built from the config's shapes (no tensor manifest); log = the logged figure was used.")
    return 0


def source_key(source: str) -> str:
    """Where a log comes from: a GitHub repository (owner/name) or a web site."""
    parts = source.split(" ")[0].removeprefix("https://").removeprefix("http://").split("/")
    return "/".join(parts[:3]) if parts[0] == "github.com" else parts[0]


def coverage(rows: list[Row]) -> str:
    """Which versions, GPUs, TP sizes and utilizations the rows with a KV comparison span, with counts."""
    kv = [r for r in rows if r.kv_error_pct is not None]

    def counts(values: list) -> str:
        return ", ".join(f"{v} ({values.count(v)})" for v in sorted(set(values), key=_sort_key))

    return (f"versions: {counts([r.version for r in kv])}; GPUs: {counts([r.gpu for r in kv])}; "
            f"TP: {counts([r.tp for r in kv])}; utilization {min(r.util for r in kv):g}-{max(r.util for r in kv):g}")


def _sort_key(value: object) -> tuple:
    if isinstance(value, str) and value.replace(".", "").isdigit():
        return (0, tuple(int(x) for x in value.split(".")), "")
    return (1, (), str(value))


if __name__ == "__main__":
    sys.exit(main())
