"""The seed formula, exact KV bytes, TP rules, the serving breakdown and vLLM capacity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FIXTURES, load_fixture_json, manifest_tensors
from test_architecture import real_config

from gpumem.errors import UsageError
from gpumem.model.architecture import parse_architecture
from gpumem.model.params import summarize_weights
from gpumem.model.types import ModelSummary
from gpumem.planning.engines import EngineConstants
from gpumem.planning.memory import (
    FormulaResult,
    ServingOptions,
    active_parameters,
    capacity,
    estimate_serving,
    formula_memory_gb,
    kv_bytes_per_sequence,
    kv_bytes_per_token,
    weights_per_gpu,
)
from gpumem_dev.fakehub.layouts import gptq, quantize


def weight_count(folder: str) -> tuple[list, ModelSummary]:
    """Tensors of a manifest and their summary (buffers excluded from parameters, no config: untied)."""
    tensors = manifest_tensors(folder)
    summary = summarize_weights(tensors)
    params = sum(t.numel for t in tensors if "inv_freq" not in t.name and not t.name.endswith(".attn.bias"))
    assert summary.count.parameters == params and summary.count.weight_bytes == sum(t.nbytes for t in tensors)
    return tensors, summary


@pytest.mark.parametrize("params,bits,expected", [(70e9, 16, 168.0), (70e9, 4, 42.0), (70e9, 8, 84.0)])
def test_formula(params, bits, expected):
    assert formula_memory_gb(int(params), bits) == pytest.approx(expected)
    assert FormulaResult.compute(int(params), bits).to_dict() == {"bits": bits, "overhead": 1.2,
                                                                  "memory_gb": pytest.approx(expected)}


@pytest.mark.parametrize("name,expected", [
    ("meta-llama__Llama-2-7b-hf", 524_288),
    ("meta-llama__Llama-3.1-8B", 131_072),
    ("Qwen__Qwen2.5-7B", 57_344),
    ("deepseek-ai__DeepSeek-R1", 70_272),  # DeepSeek-V3 architecture: MLA 61 x 576 x 2
    ("meta-llama__Llama-2-70b-chat-hf", 327_680),
    ("openai-community__gpt2", 36_864),
])
def test_kv_bytes_per_token_exact(name, expected):
    assert kv_bytes_per_token(parse_architecture(real_config(name)), 2) == expected


def measurement_rows() -> list[dict]:
    lines = (FIXTURES / "measurements" / "h200-transformers-bf16.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.mark.parametrize("row", [r for r in measurement_rows() if r["kind"] == "serve"],
                         ids=lambda r: f"{r['model']}-{r['batch']}x{r['seq']}")
def test_kv_matches_measured_cache_bytes(row):
    config = next(r["config"] for r in measurement_rows() if r.get("model") == row["model"] and r["kind"] == "weights")
    arch = parse_architecture(config)
    options = ServingOptions(engine="transformers", context=row["seq"], kv_dtype="bf16")
    assert kv_bytes_per_sequence(arch, row["seq"], options) * row["batch"] == row["kv_bytes_measured"]


def test_fp8_halves_the_cache():
    arch = parse_architecture(real_config("meta-llama__Llama-3.1-8B"))
    assert kv_bytes_per_token(arch, 1) * 2 == kv_bytes_per_token(arch, 2)


@pytest.mark.parametrize("tp,expected", [(1, 327_680), (2, 163_840), (8, 40_960)])
def test_kv_heads_split_over_tp(tp, expected):
    arch = parse_architecture(real_config("meta-llama__Llama-2-70b-chat-hf"))  # 8 KV heads
    assert kv_bytes_per_token(arch, 2, tp) == expected


def test_kv_heads_replicated_when_tp_exceeds_them():
    arch = parse_architecture(real_config("Qwen__Qwen3-30B-A3B"))  # 4 KV heads: TP 8 keeps one per GPU
    assert kv_bytes_per_token(arch, 2, 8) == kv_bytes_per_token(arch, 2, 4) == 48 * 2 * 1 * 128 * 2


def test_mla_cache_replicated_on_every_rank():
    arch = parse_architecture(real_config("deepseek-ai__DeepSeek-R1"))
    assert kv_bytes_per_token(arch, 2, 8) == kv_bytes_per_token(arch, 2, 1) == 70_272


def test_tp_not_dividing_attention_heads_is_a_usage_error():
    tensors, summary = weight_count("meta-llama__Llama-2-70b-chat-hf")
    arch = parse_architecture(real_config("meta-llama__Llama-2-70b-chat-hf"))
    with pytest.raises(UsageError, match="^tp 3 does not divide the model's 64 attention heads"):
        estimate_serving(summary, arch, ServingOptions(tp=3))


def test_tp_multiple_of_kv_heads_is_allowed():
    tensors, summary = weight_count("meta-llama__Llama-2-70b-chat-hf")
    arch = parse_architecture(real_config("meta-llama__Llama-2-70b-chat-hf"))  # 64 heads, 8 KV heads
    assert estimate_serving(summary, arch, ServingOptions(tp=16)).kv_bytes_per_token == 80 * 2 * 128 * 2


def test_sliding_layers_hold_at_most_the_window():
    arch = parse_architecture(real_config("openai__gpt-oss-20b"))  # 12 full + 12 sliding(128) layers
    per_layer = 2 * 8 * 64 * 2
    hf = ServingOptions(engine="transformers", context=32768)
    # transformers keeps window - 1 tokens (measured on Phi-3-mini: 2,046 of its 2,047-token window)
    assert kv_bytes_per_sequence(arch, 32768, hf) == per_layer * (12 * 32768 + 12 * 127)
    vllm = ServingOptions(engine="vllm", context=32768, max_num_batched_tokens=8192)
    # vLLM's hybrid allocator: window - 1 + one chunk, in 16-token blocks, plus one block (kv_cache_interface.py)
    assert kv_bytes_per_sequence(arch, 32768, vllm) == per_layer * (12 * 32768 + 12 * (16 * 520 + 16))


def test_gemma2_sliding_layers_cap_at_the_window():
    arch = parse_architecture(real_config("google__gemma-2-9b-it"))  # 21 full + 21 sliding(4096) layers
    per_layer = 2 * 8 * 256 * 2
    hf = ServingOptions(engine="transformers", context=8192)
    assert kv_bytes_per_sequence(arch, 8192, hf) == per_layer * (21 * 8192 + 21 * 4095)
    assert kv_bytes_per_sequence(arch, 2048, hf) == per_layer * 42 * 2048  # under the window: every layer grows


def test_embedding_model_keeps_no_cache():
    arch = parse_architecture(real_config("sentence-transformers__all-MiniLM-L6-v2"))
    options = ServingOptions(engine="transformers", context=512)
    assert kv_bytes_per_token(arch, 2) == kv_bytes_per_sequence(arch, 512, options) == 0


def test_mixtral_active_parameters_match_published():
    tensors, summary = weight_count("mistralai__Mixtral-8x7B-v0.1")
    arch = parse_architecture(real_config("mistralai__Mixtral-8x7B-v0.1"))
    assert summary.count.parameters == 46_702_792_704
    assert active_parameters(summary, arch) == 12_879_925_248


def test_dense_active_parameters_equal_parameters():
    tensors, summary = weight_count("meta-llama__Llama-2-7b-hf")
    arch = parse_architecture(real_config("meta-llama__Llama-2-7b-hf"))
    assert active_parameters(summary, arch) == summary.count.parameters == 6_738_415_616


def test_tp_splits_linears_and_vocab_but_replicates_norms():
    tensors, summary = weight_count("meta-llama__Llama-2-70b-chat-hf")
    norms = sum(t.nbytes for t in tensors if "norm" in t.name)
    buffers = sum(t.nbytes for t in tensors if "inv_freq" in t.name)
    rest = summary.count.weight_bytes - norms - buffers
    assert weights_per_gpu(summary, 1) == rest + norms
    assert weights_per_gpu(summary, 2) == rest // 2 + norms


def test_bits_reweigh_every_parameter():
    tensors, summary = weight_count("meta-llama__Llama-2-70b-chat-hf")
    params = summary.count.parameters
    assert weights_per_gpu(summary, 1, bits=16) == params * 2
    # Below 16 bit a GPTQ layout: 16-bit embeddings and lm_head (2 x 262M), group-128 scales, zeros and g_idx
    embeddings = 2 * 32000 * 8192 * 2
    assert params // 2 + embeddings * 3 // 4 < weights_per_gpu(summary, 1, bits=4) < params // 2 * 1.06 + embeddings


def test_breakdown_dict_shape_and_total():
    tensors, summary = weight_count("meta-llama__Llama-2-70b-chat-hf")
    arch = parse_architecture(real_config("meta-llama__Llama-2-70b-chat-hf"))
    data = estimate_serving(summary, arch, ServingOptions(tp=2)).to_dict()
    per_gpu = data["per_gpu"]
    assert set(per_gpu) == {"weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes", "total_bytes"}
    assert all(isinstance(v, int) for v in per_gpu.values())
    assert per_gpu["total_bytes"] == sum(v for k, v in per_gpu.items() if k != "total_bytes")
    assert {"engine", "context", "concurrency", "kv_dtype", "tp", "kv_bytes_per_token",
            "active_parameters"} <= set(data)
    assert per_gpu["kv_cache_bytes"] == 4096 * 163_840
    assert per_gpu["overhead_bytes"] > EngineConstants("").cuda_context_bytes  # vLLM + NCCL on top of the CUDA context


def test_context_capped_at_model_maximum_with_a_note():
    tensors, summary = weight_count("meta-llama__Llama-2-7b-hf")
    arch = parse_architecture(real_config("meta-llama__Llama-2-7b-hf"))
    estimate = estimate_serving(summary, arch, ServingOptions(context=32768))
    assert estimate.context == 4096 and "capped" in estimate.notes[0]


def test_without_architecture_weights_only_with_reason():
    tensors, summary = weight_count("meta-llama__Llama-2-7b-hf")
    estimate = estimate_serving(summary, None, ServingOptions())
    assert estimate.kv_cache_bytes == estimate.activation_bytes == 0
    assert estimate.weights_bytes == 13_476_831_232 and "config.json" in estimate.notes[0]


def test_vllm_max_concurrency_on_two_a100_80gb():
    # memory-model.md: Llama-2-70B BF16 on 2 x A100-80GB keeps about 4-5.5 GiB per GPU for KV, 26-36k tokens (vLLM
    # before 0.20, whose CUDA graphs sat beside the budget).
    tensors, summary = weight_count("meta-llama__Llama-2-70b-chat-hf")
    arch = parse_architecture(real_config("meta-llama__Llama-2-70b-chat-hf"))
    options = ServingOptions(tp=2, engine_version="0.19")
    estimate = estimate_serving(summary, arch, options)
    cap = capacity(estimate, arch, options, 81920 * 2**20)
    assert 4 * 2**30 <= cap.kv_pool_bytes <= 5.5 * 2**30
    assert cap.max_concurrency == cap.kv_pool_bytes // (4096 * 163_840)
    assert 26_000 <= cap.max_concurrency * 4096 <= 36_000


def test_largest_context_when_one_sequence_does_not_fit():
    tensors, summary = weight_count("meta-llama__Llama-2-7b-hf")
    arch = parse_architecture(real_config("meta-llama__Llama-2-7b-hf"))
    options = ServingOptions(context=4096)
    estimate = estimate_serving(summary, arch, options)
    # vLLM holds its CUDA context and graphs beside the budget: only the rest must fit in usable x 0.9
    outside = options.engine_model.overhead_outside_budget(options)
    usable = int((estimate.non_kv_bytes - outside + 1000 * 524_288) / 0.9) + 1
    cap = capacity(estimate, arch, options, usable)
    assert cap.max_concurrency == 0 and cap.largest_context == 1000


def test_largest_context_counts_the_sdpa_math_path_of_sliding_models():
    # Regression: under transformers the per-sequence cost that made one 4096-token Phi-3 sequence not fit
    # holds S x S attention scores; the longest-context search left them out and answered 4096 itself.
    tensors, summary = weight_count("microsoft__Phi-3-mini-4k-instruct")
    arch = parse_architecture(real_config("microsoft__Phi-3-mini-4k-instruct"))  # sliding window 2047
    options = ServingOptions(engine="transformers", context=4096)
    estimate = estimate_serving(summary, arch, options)
    per_seq = estimate.kv_bytes_per_sequence + estimate.activation_bytes_per_sequence
    cap = capacity(estimate, arch, options, estimate.weights_bytes + estimate.overhead_bytes + per_seq - 1)
    assert cap.max_concurrency == 0 and cap.largest_context is not None and cap.largest_context < 4096

    def cost(tokens: int) -> int:  # what capacity() charges one sequence of `tokens`
        at = estimate_serving(summary, arch, ServingOptions(engine="transformers", context=tokens))
        return at.kv_bytes_per_sequence + at.activation_bytes_per_sequence
    assert cost(cap.largest_context) <= cap.kv_pool_bytes < cost(cap.largest_context + 1)


@pytest.mark.parametrize("bits", [3, 4, 8])
def test_packed_gptq_unpacks_at_its_own_bits(bits):
    # Regression: I32 storage was taken as 8 parameters per element whatever the bits (8-bit GPTQ doubled).
    config = load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json")
    layout = quantize(manifest_tensors("meta-llama__Llama-2-7b-hf"), lambda s, o, i: gptq(s, o, i, bits))
    summary = summarize_weights(layout, config, {"bits": bits, "group_size": 128})
    count = summary.count
    assert count.quantization.method == "gptq" and count.quantization.bits == bits
    assert count.parameters == 6_738_415_616
    assert sum(c.parameters * c.count for c in summary.classes) == summary.count.parameters
    assert weights_per_gpu(summary, 1, bits=16) == 2 * summary.count.parameters
    assert active_parameters(summary, parse_architecture(config)) == summary.count.parameters


@pytest.mark.parametrize("kwargs", [{"engine": "tgi"}, {"kv_dtype": "int4"}, {"context": 0}, {"tp": 0}])
def test_bad_options_are_usage_errors(kwargs):
    with pytest.raises(UsageError):
        ServingOptions(**kwargs)


def test_gpt2_breakdown_from_hub_fixture():
    config = load_fixture_json("openai-community__gpt2", "config.json")
    tensors, summary = weight_count("openai-community__gpt2")
    estimate = estimate_serving(summary, parse_architecture(config), ServingOptions(context=512))
    assert summary.count.parameters == 124_439_808
    # vLLM's dtype auto loads the F32 checkpoint in 16 bit (issue 11); transformers keeps F32, and torch's caching
    # allocator holds the 154,389,504-byte F32 wte in a 148 MiB segment it does not split (799,744 B more)
    assert estimate.weights_bytes == 124_439_808 * 2 and estimate.kv_cache_bytes == 512 * 36_864
    hf = estimate_serving(summary, parse_architecture(config), ServingOptions(engine="transformers"))
    assert hf.weights_bytes == 124_439_808 * 4 + 148 * 2**20 - 154_389_504


def test_bits_what_if_lays_weights_out_as_a_real_gptq_checkpoint():
    # meta-llama/Llama-2-13b-hf at --bits 4 against TheBloke/Llama-2-13B-chat-GPTQ's stored tensors (the snapshot):
    # the 16-bit checkpoint is rebuilt from the GPTQ repo's config (same shapes; 13,015,864,320 parameters, the
    # Hub's published count for Llama-2-13b-hf) and laid out with 16-bit embeddings / lm_head / norms and group-128
    # qweight, qzeros, scales and g_idx.
    import gzip

    from gpumem.model.safetensors_header import DTYPE_BITS
    from gpumem_dev import accuracy

    root = Path(__file__).resolve().parent.parent
    config = json.loads((root / "fixtures" / "hub" / "TheBloke__Llama-2-13B-chat-GPTQ" / "config.json").read_text())
    config.pop("quantization_config", None)
    summary = summarize_weights(accuracy.llama_shaped_tensors(config), config)
    assert summary.count.parameters == 13_015_864_320
    snapshot = json.loads(gzip.open(root / "src" / "gpumem" / "data" / "snapshot" /
                                    "TheBloke__Llama-2-13B-chat-GPTQ.json.gz").read())
    stored = 0
    for _name, dtype, shape, *_ in snapshot["weight_sets"][0]["tensors"]:
        numel = 1
        for dim in shape:
            numel *= dim
        stored += numel * DTYPE_BITS[dtype] // 8
    assert stored == 7_259_279_360
    assert weights_per_gpu(summary, 1, 4) == pytest.approx(stored, rel=0.03)
    assert abs(weights_per_gpu(summary, 1, 4) - stored) / stored < 0.001  # 7,255,009,280: -0.06%
    assert weights_per_gpu(summary, 1, 16) == 13_015_864_320 * 2  # 16 bit and above: every parameter at the width
