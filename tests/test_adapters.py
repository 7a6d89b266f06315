"""PEFT adapters: config parsing, PEFT's targeting rules, exact counts against real adapter headers, shape
checks against the base, and vLLM's LoRA slots."""

from __future__ import annotations

import json
import re

import pytest
from conftest import FIXTURES, load_fixture_json, manifest_tensors

from gpumem.errors import ExitCode
from gpumem.model.adapters import (
    AdapterError,
    LoraConfig,
    base_modules,
    lora_layers,
    parse_adapter_config,
    read_adapter,
    trainable_parameters,
)
from gpumem.model.safetensors_header import parse_header
from gpumem.planning.engines.vllm import adapter_names, lora_flags, lora_slots, max_lora_rank

ADAPTERS = FIXTURES / "adapters"


def adapter_config(folder: str) -> LoraConfig:
    return parse_adapter_config(json.loads((ADAPTERS / folder / "adapter_config.json").read_text()))


def adapter_tensors(folder: str):
    header = (ADAPTERS / folder / "adapter_model.safetensors.header").read_bytes()
    return parse_header(header, "adapter_model.safetensors", None).tensors


def modules_of(folder: str):
    return base_modules(manifest_tensors(folder), load_fixture_json(folder, "config.json").get("model_type"))


GPT2 = "openai-community__gpt2"
LLAMA_31_8B = "meta-llama__Llama-3.1-8B"


@pytest.mark.parametrize(("folder", "lora_parameters", "extra"), [
    ("abrhaleyarefaine1997__gpt2-tigrinya-lora", 811_008, 0),  # c_attn + c_proj: attention and MLP c_proj
    ("Rehman54454__gpt2-qlora", 442_368, 0),  # attn.c_attn + attn.c_proj: the dotted suffix leaves mlp.c_proj out
    ("anirudh-ak__peft-gpt2", 294_912, 6 * 768),  # SEQ_CLS: PEFT also saves the 6-class `score` head
])
def test_trainable_count_matches_real_adapter_headers(folder, lora_parameters, extra):
    config = adapter_config(folder)
    tensors = adapter_tensors(folder)
    base = modules_of(GPT2)
    assert trainable_parameters(base, config) == lora_parameters
    adapter = read_adapter(folder, config, tensors, base, "openai-community/gpt2")
    assert adapter.parameters == sum(t.numel for t in tensors) == lora_parameters + extra
    assert adapter.weight_bytes == 4 * adapter.parameters  # saved in F32
    assert adapter.lora_modules == len(lora_layers(base, config))


@pytest.mark.parametrize("folder", sorted(p.name for p in (ADAPTERS / "lfs").iterdir()))
def test_predicted_bytes_fall_one_header_short_of_real_lfs_sizes(folder):
    """Real 7-8B adapters kept in Git LFS: the pointer's size = 8 + header + tensor bytes (F32 here)."""
    config = parse_adapter_config(json.loads((ADAPTERS / "lfs" / folder / "adapter_config.json").read_text()))
    pointer = (ADAPTERS / "lfs" / folder / "adapter_model.safetensors.lfs-pointer").read_text()
    size = int(re.search(r"^size (\d+)$", pointer, re.MULTILINE).group(1))
    base = modules_of(LLAMA_31_8B)  # Llama-3.1-8B and Mistral-7B share every projection shape
    predicted = 4 * trainable_parameters(base, config)
    tensors = 2 * len(lora_layers(base, config))
    assert 100 * tensors < size - predicted < 200 * tensors


def test_all_linear_is_every_linear_but_the_output_head():
    base = modules_of(LLAMA_31_8B)
    config = LoraConfig(rank=16, alpha=32, target_modules="all-linear")
    layers = lora_layers(base, config)
    assert len(layers) == 32 * 7
    assert not any(layer.module.name in ("lm_head", "model.embed_tokens") for layer in layers)
    # 16 x per layer (q 4096+4096, k and v 4096+1024, o 4096+4096, gate/up/down 4096+14336) x 32 layers
    assert trainable_parameters(base, config) == 16 * (8192 + 5120 + 5120 + 8192 + 3 * 18432) * 32


def test_variants_patterns_and_layer_selection():
    base = modules_of(LLAMA_31_8B)
    plain = LoraConfig(rank=8, alpha=16, target_modules=("q_proj", "v_proj"))
    per_layer = 8 * (8192 + 5120)
    assert trainable_parameters(base, plain) == 32 * per_layer
    dora = LoraConfig(rank=8, alpha=16, target_modules=("q_proj", "v_proj"), use_dora=True)
    assert trainable_parameters(base, dora) == 32 * (per_layer + 4096 + 1024)  # one magnitude per output
    pattern = LoraConfig(rank=8, alpha=16, target_modules=("q_proj", "v_proj"), rank_pattern={"v_proj": 64})
    assert trainable_parameters(base, pattern) == 32 * (8 * 8192 + 64 * 5120)
    two_layers = LoraConfig(rank=8, alpha=16, target_modules=("q_proj", "v_proj"), layers_to_transform=(0, 31))
    assert trainable_parameters(base, two_layers) == 2 * per_layer
    regex = LoraConfig(rank=8, alpha=16, target_modules=r".*\.layers\.\d+\.self_attn\.(q_proj|v_proj)")
    assert trainable_parameters(base, regex) == 32 * per_layer
    saved = LoraConfig(rank=8, alpha=16, target_modules=("q_proj", "v_proj"), modules_to_save=("lm_head",))
    assert trainable_parameters(base, saved) == 32 * per_layer + 128256 * 4096


def test_shape_mismatch_names_the_tensor_and_the_module():
    """A real gemma-2b adapter (q_proj 2048 wide) read against Llama-2-7B (4096)."""
    folder = "Jr1407__gemma-2b-sql"
    with pytest.raises(AdapterError) as caught:
        read_adapter(folder, adapter_config(folder), adapter_tensors(folder), modules_of("meta-llama__Llama-2-7b-hf"),
                     "meta-llama/Llama-2-7b-hf")
    assert "has shape [16, 2048]" in caught.value.message
    assert "model.layers.0.self_attn.q_proj" in caught.value.message
    assert caught.value.exit_code == ExitCode.FORMAT


def test_module_the_base_lacks_is_a_mismatch():
    folder = "abrhaleyarefaine1997__gpt2-tigrinya-lora"
    with pytest.raises(AdapterError, match=r"targets module 'transformer\.h\.0\.attn\.c_attn', which the base"):
        read_adapter(folder, adapter_config(folder), adapter_tensors(folder), modules_of(LLAMA_31_8B),
                     "meta-llama/Llama-3.1-8B")


@pytest.mark.parametrize(("data", "message"), [
    ({"model_type": "llama", "hidden_size": 4096}, "is not a PEFT adapter config: no 'peft_type' field"),
    ({"peft_type": "PREFIX_TUNING", "num_virtual_tokens": 20}, "peft_type 'PREFIX_TUNING' is not supported"),
    ({"peft_type": "LORA", "r": 0, "target_modules": ["q_proj"]}, "field 'r' must be a positive integer"),
    ({"peft_type": "LORA", "r": 8, "target_modules": 3}, "field 'target_modules' must be a string or a list"),
    (["not", "an", "object"], "expected a JSON object"),
])
def test_configs_gpumem_cannot_use_raise_one_line(data, message):
    with pytest.raises(AdapterError, match=re.escape(message)) as caught:
        parse_adapter_config(data)
    assert "\n" not in caught.value.message


def test_vllm_slots_cover_every_linear_at_the_max_rank():
    base = modules_of(LLAMA_31_8B)
    lora = lora_slots(base, [16])
    assert (lora.max_loras, lora.max_lora_rank, lora.wrapped_modules) == (1, 16, 32 * 7)
    assert lora.slot_bytes_per_gpu == 2 * 16 * (8192 + 5120 + 5120 + 8192 + 3 * 18432) * 32
    two = lora_slots(base, [8, 20])  # two adapters: two slots of rank 32 (the next rank vLLM accepts)
    assert (two.max_loras, two.max_lora_rank) == (2, 32)
    # vLLM caches --max-cpu-loras adapters in host memory, by default --max-loras: the report says so, no flag needed
    assert two.to_dict()["max_cpu_loras"] == two.max_cpu_loras == 2
    assert two.slot_bytes_per_gpu == 2 * 2 * lora.slot_bytes_per_gpu
    # TP 2: column layers split their output, row layers (o, down) their input
    tp2 = lora_slots(base, [16], tp=2)
    column = 4096 + 2048 + 4096 + 512 + 4096 + 512 + 2 * (4096 + 7168)
    row = 2048 + 4096 + 7168 + 4096
    assert tp2.slot_bytes_per_gpu == 2 * 16 * (column + row) * 32
    assert lora_flags(two, [("a", "org/a"), ("b", "org/b")]) == [
        "--enable-lora", "--lora-modules", "a=org/a", "b=org/b", "--max-loras", "2", "--max-lora-rank", "32"]


def test_vllm_rank_ceiling():
    assert [max_lora_rank(r) for r in (1, 2, 16, 17, 300, 512)] == [1, 8, 16, 32, 320, 512]
    with pytest.raises(AdapterError, match="above vLLM's largest --max-lora-rank"):
        max_lora_rank(1024)


def test_packed_4bit_base_keeps_its_projection_shapes():
    """Real adapters trained on unsloth's bitsandbytes-4bit bases: the packed U8 weights hide their shapes, the
    architecture gives them back, and the real configs count the same as on the 16-bit base."""
    from gpumem.model.architecture import parse_architecture
    from gpumem_dev.fakehub.layouts import bnb4, quantize

    tensors = manifest_tensors(LLAMA_31_8B)
    arch = parse_architecture(load_fixture_json(LLAMA_31_8B, "config.json"))
    packed = base_modules(quantize(tensors, bnb4), "llama", arch)
    plain = base_modules(tensors, "llama", arch)
    linear = {m.name: m for m in plain if m.kind == "linear" and m.name != "lm_head"}
    assert {m.name: m for m in packed if m.name in linear} == linear
    for folder in ("NotLoadedExe__llama3.1-8b-coder-devops", "devadigapratham__MistralXGo-7B"):
        config = parse_adapter_config(json.loads((ADAPTERS / "lfs" / folder / "adapter_config.json").read_text()))
        assert "bnb-4bit" in config.base_model
        assert trainable_parameters(packed, config) == trainable_parameters(plain, config) == 41_943_040


def test_lora_module_names_for_vllm():
    from gpumem.model.adapters import LoraServing

    assert adapter_names(["org/sql-lora", "other/sql-lora", "./runs/v1/"]) == [
        ("sql-lora", "org/sql-lora"), ("sql-lora-2", "other/sql-lora"), ("v1", "./runs/v1/")]
    serving = LoraServing(modules_of(GPT2), (8,), 811_008, repos=("abrhaleyarefaine1997/gpt2-tigrinya-lora",))
    slots = lora_slots(serving.modules, serving.ranks, 1, serving.dtype_bytes)
    assert lora_flags(slots, adapter_names(serving.repos)) == [
        "--enable-lora", "--lora-modules", "gpt2-tigrinya-lora=abrhaleyarefaine1997/gpt2-tigrinya-lora",
        "--max-loras", "1", "--max-lora-rank", "8"]


@pytest.mark.parametrize("folder", [GPT2, LLAMA_31_8B, "mistralai__Mixtral-8x7B-v0.1"])
def test_modules_from_the_summary_are_the_checkpoints_modules(folder):
    from gpumem.model.adapters import summary_modules
    from gpumem.model.architecture import parse_architecture
    from gpumem.model.params import summarize_weights

    tensors = manifest_tensors(folder)
    config = load_fixture_json(folder, "config.json")
    arch = parse_architecture(config)
    summary = summarize_weights(tensors, config)
    from_summary = {m.name: m for m in summary_modules(summary, arch)}
    assert from_summary == {m.name: m for m in base_modules(tensors, arch.model_type, arch)}
