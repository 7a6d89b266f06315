"""gpt-oss (MXFP4) loaded weights under vLLM against the logged "Model loading took" of six startup logs.

The stored tensors come from a public listing of openai/gpt-oss-120b's checkpoint (fixtures/quant/
openai__gpt-oss-120b/tensors.json, source inside): 687 tensors, 60.77 GiB. gpt-oss-20b has the same tensors with
its own expert count and layer count (its real config.json, fixtures/configs). vLLM pads MXFP4 experts for its
kernel (engines/vllm.py `mxfp4_padding`); the logs' loaded weights must be within 3%.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpumem.model.architecture import parse_architecture
from gpumem.model.params import summarize_weights
from gpumem.model.safetensors_header import DTYPE_BITS
from gpumem.model.types import TensorInfo
from gpumem.planning.engines import GpuTarget, get_engine
from gpumem.planning.memory import ServingOptions

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
LISTING = json.loads((FIXTURES / "quant" / "openai__gpt-oss-120b" / "tensors.json").read_text())
GIB = 2**30


def _config(model: str) -> dict:
    """The model's config.json (shape keys) with the Hub's MXFP4 quantization_config."""
    if model == "openai/gpt-oss-120b":
        config = json.loads((FIXTURES / "measurements" / "vllm-log-models.json").read_text())[model]["config"]
    else:
        config = json.loads((FIXTURES / "configs" / "openai__gpt-oss-20b.json").read_text())
    quant = json.loads((FIXTURES / "quant" / "openai__gpt-oss-20b" / "quantization_config.json").read_text())
    return {**config, "quantization_config": quant}


def _tensor(name: str, dtype: str, shape: list[int]) -> TensorInfo:
    elements = 1
    for dim in shape:
        elements *= dim
    return TensorInfo(name, dtype, tuple(shape), elements * DTYPE_BITS[dtype] // 8)


def stored_tensors(config: dict) -> list[TensorInfo]:
    """The listing's tensors for a gpt-oss config: its layers, and its experts as the leading dim of mlp.*."""
    experts = config["num_local_experts"]
    tensors = [_tensor(name, dtype, shape) for name, (dtype, shape) in LISTING["outside_layers"].items()]
    for layer in range(config["num_hidden_layers"]):
        for name, (dtype, shape) in LISTING["per_layer"].items():
            if ".mlp." in name:
                shape = [experts, *shape[1:]]
            tensors.append(_tensor(name.replace("#", str(layer)), dtype, shape))
    return tensors


def test_the_listing_is_the_published_checkpoint():
    config = _config("openai/gpt-oss-120b")
    assert config["num_local_experts"] == 128 and LISTING["num_hidden_layers"] == config["num_hidden_layers"]
    tensors = stored_tensors(config)
    summary = summarize_weights(tensors, config)
    assert len(tensors) == LISTING["tensor_count"] == 687
    assert summary.count.parameters == 116_829_156_672  # "116.8B total parameters" (model card)
    assert summary.count.quantization is not None and summary.count.quantization.method == "mxfp4"
    assert round(summary.count.weight_bytes / GIB, 2) == 60.77  # "checkpoints are ~60.8 GiB"
    small = summarize_weights(stored_tensors(_config("openai/gpt-oss-20b")), _config("openai/gpt-oss-20b"))
    assert small.count.parameters == 20_914_757_184  # "20.9B" (model card)


# (log id, model, vLLM version, GPU, CUDA total GiB, TP, logged "Model loading took" GiB per rank)
LOGS = [
    ("llmd-benchmark-gpt-oss-120b-tp1", "openai/gpt-oss-120b", "0.11", "H100 SXM", 79.18, 1, 64.38),
    ("dennislee22-gpt-oss-120b-4xa100", "openai/gpt-oss-120b", "0.10", "A100 80GB", 79.15, 4, 17.2217),
    ("llmd-benchmark-gpt-oss-20b-tp1", "openai/gpt-oss-20b", "0.11", "H100 SXM", 79.18, 1, 13.47),
    ("llmd-planner-v0.19-gpt-oss-20b-tp1", "openai/gpt-oss-20b", "0.19", "H100 SXM", 79.19, 1, 13.64),
    ("llmd-planner-v0.19-gpt-oss-20b-tp2-util09", "openai/gpt-oss-20b", "0.19", "H100 SXM", 79.19, 2, 7.01),
    ("myoceane-gpt-oss-20b-a100-util065", "openai/gpt-oss-20b", "0.19", "A100 80GB", 79.15, 1, 13.72),
]


@pytest.mark.parametrize("log_id,model,version,gpu,total_gib,tp,logged_gib", LOGS, ids=[log[0] for log in LOGS])
def test_loaded_weights_match_the_log(log_id, model, version, gpu, total_gib, tp, logged_gib):
    # The logged figures are the fixtures' own (vllm-public-logs.jsonl / vllm-heldout-logs.jsonl).
    rows = [json.loads(line) for name in ("vllm-public-logs.jsonl", "vllm-heldout-logs.jsonl")
            for line in (FIXTURES / "measurements" / name).read_text().splitlines() if line.strip()]
    (row,) = [r for r in rows if r["id"] == log_id]
    assert row["reported"]["model_loading_GiB"] == logged_gib
    config = _config(model)
    summary = summarize_weights(stored_tensors(config), config)
    options = ServingOptions(engine="vllm", engine_version=version, tp=tp, gpu=GpuTarget(gpu, int(total_gib * GIB)))
    vllm, arch = get_engine("vllm"), parse_architecture(config)
    predicted = vllm.loaded_weights(vllm.loaded_summary(summary, arch), arch, options) / GIB
    assert abs(predicted - logged_gib) / logged_gib < 0.03
