"""Pre-quantized checkpoints: layouts built from each writer's documented packing on real configs' shapes."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES, load_fixture_json, manifest_tensors

from gpumem.model.params import count_weights, summarize_weights
from gpumem.model.quantization import scan_quantization
from gpumem.model.types import TensorInfo
from gpumem_dev.fakehub.layouts import (
    awq,
    bnb4,
    bnb_int8_layout,
    ct_w4a16,
    ct_w8a8,
    deepseek_v3_layout,
    fp8,
    gptq,
    hub_packed_total,
    is_linear,
    llama2_13b_layout,
    nvfp4,
    quantize,
    tensor,
)

LLAMA31_8B = 8_030_261_248
LLAMA2_7B = 6_738_415_616


def test_gptq_13b_matches_published_count():
    config = load_fixture_json("TheBloke__Llama-2-13B-chat-GPTQ", "config.json")
    qc = load_fixture_json("TheBloke__Llama-2-13B-chat-GPTQ", "quantize_config.json")
    bits, group = qc["bits"], qc["group_size"]
    dense = llama2_13b_layout(config)
    assert count_weights(dense, config).parameters == 13_015_864_320  # the layout is Llama-2-13B's
    layout = quantize(dense, lambda s, o, i: gptq(s, o, i, bits, group))
    summary = summarize_weights(layout, config, qc)
    count = summary.count
    assert count.parameters == 13_015_864_320
    assert count.quantization.method == "gptq" and count.quantization.bits == 4
    assert count.buffer_elements == 40 * 64
    assert count.weight_bytes == sum(t.nbytes for t in layout)
    # 4 bits + F16 scale and I32 zero per 128 + I32 g_idx per input row + the zero bias
    assert 4.1 < count.quantization.bits_per_weight < 4.5
    sides = {(c.module, c.leaf) for c in summary.classes if c.role == "side"}
    assert ("mlp.down_proj", "bias") in sides and ("self_attn.q_proj", "g_idx") in sides


def test_gptq_7b_reproduces_the_hubs_packed_accounting():
    # TheBloke/Llama-2-7B-Chat-GPTQ main branch: same quantize settings as the 13B sibling (4 bit, g128).
    config = load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json")
    qc = load_fixture_json("TheBloke__Llama-2-13B-chat-GPTQ", "quantize_config.json")
    layout = quantize(manifest_tensors("meta-llama__Llama-2-7b-hf"), gptq)
    assert hub_packed_total(layout, qc["bits"]) == 6_739_777_536  # = params + zero biases + inv_freq
    count = count_weights(layout, config, qc)
    assert count.parameters == LLAMA2_7B
    assert count.buffer_elements == 32 * 64


def test_gptq_bits_inferred_from_shapes_without_config():
    layout = quantize(manifest_tensors("meta-llama__Llama-2-7b-hf"), lambda s, o, i: gptq(s, o, i, 3))
    count = count_weights(layout, load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json"))
    assert count.quantization.method == "gptq" and count.quantization.bits == 3
    assert count.parameters == LLAMA2_7B


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_awq_packs_the_output_axis(bits):
    config = load_fixture_json("meta-llama__Llama-3.1-8B", "config.json")
    layout = quantize(manifest_tensors("meta-llama__Llama-3.1-8B"), lambda s, o, i: awq(s, o, i, bits), "F16")
    count = count_weights(layout, config)
    assert (count.quantization.method, count.quantization.bits) == ("awq", bits)
    assert count.parameters == LLAMA31_8B


def test_compressed_tensors_w4a16_llama31():
    """RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16: Hub I32 6,979,321,856 is weight_packed x 8.

    The Hub's F16 1,052,315,648 = the dense tensors (1,050,939,392) + one F16 scale per output row
    of each quantized linear (1,376,256): the layout below reproduces both Hub figures.
    """
    qc = {"quant_method": "compressed-tensors", "format": "pack-quantized",
          "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": 4, "strategy": "channel"}}}}
    config = {**load_fixture_json("meta-llama__Llama-3.1-8B", "config.json"), "quantization_config": qc}
    layout = quantize(manifest_tensors("meta-llama__Llama-3.1-8B"), ct_w4a16, "F16")
    count = count_weights(layout, config)
    assert count.stored_elements["I32"] * 8 == 6_979_321_856
    assert count.stored_elements["F16"] == 1_052_315_648
    assert count.parameters == LLAMA31_8B
    assert count.quantization.method == "compressed-tensors" and count.quantization.bits == 4


def test_bitsandbytes_int8_real_index_and_total_size():
    folder = "IrfanUruchi__Llama-3.1-8B-Computer-Networks-LLM"
    config, index = load_fixture_json(folder, "config.json"), load_fixture_json(folder, "model.safetensors.index.json")
    shapes = {t.name: t.shape for t in manifest_tensors("meta-llama__Llama-3.1-8B")}
    layout = bnb_int8_layout(index, shapes)
    count = count_weights(layout, config)
    assert count.weight_bytes == int(index["metadata"]["total_size"])  # 11,188,584,672: the layout is right
    assert count.parameters == LLAMA31_8B
    q = count.quantization
    assert (q.method, q.bits) == ("bitsandbytes-8bit", 8)
    assert q.quantized_parameters == 6_979_321_856
    assert q.bits_per_weight == pytest.approx(8 + 32 * 1_376_256 / 6_979_321_856 + 8 * 224 / 6_979_321_856)


def test_bitsandbytes_nf4_double_quant():
    layout = quantize(manifest_tensors("meta-llama__Llama-3.1-8B"), bnb4)
    config = {**load_fixture_json("meta-llama__Llama-3.1-8B", "config.json"),
              "quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}
    count = count_weights(layout, config)
    assert count.parameters == LLAMA31_8B
    assert count.quantization.method == "bitsandbytes-4bit"
    assert count.quantization.bits_per_weight == pytest.approx(4.127, abs=0.01)


@pytest.mark.parametrize(
    ("scheme", "method", "bits", "bpw"),
    [(ct_w8a8, "compressed-tensors", 8, 8.0), (fp8, "fp8", 8, 8.0), (nvfp4, "nvfp4", 4, 4.5)],
)
def test_detected_from_tensor_names_alone(scheme, method, bits, bpw):
    layout = quantize(manifest_tensors("meta-llama__Llama-3.1-8B"), scheme)
    count = count_weights(layout, load_fixture_json("meta-llama__Llama-3.1-8B", "config.json"))
    assert count.parameters == LLAMA31_8B
    assert (count.quantization.method, count.quantization.bits) == (method, bits)
    assert count.quantization.bits_per_weight == pytest.approx(bpw, abs=0.01)


def test_mxfp4_experts_on_mixtral_shapes():
    """gpt-oss packing (`*_blocks` [E, rows, n_blocks, 16] + E8M0 `*_scales`) on Mixtral-8x7B's experts."""
    config = load_fixture_json("mistralai__Mixtral-8x7B-v0.1", "config.json")
    e, h, inter = config["num_local_experts"], config["hidden_size"], config["intermediate_size"]
    layout = [t for t in manifest_tensors("mistralai__Mixtral-8x7B-v0.1") if ".experts." not in t.name]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}.mlp.experts"
        layout += [tensor(f"{p}.gate_up_proj_blocks", "U8", (e, 2 * inter, h // 32, 16)),
                   tensor(f"{p}.gate_up_proj_scales", "U8", (e, 2 * inter, h // 32)),
                   tensor(f"{p}.down_proj_blocks", "U8", (e, h, inter // 32, 16)),
                   tensor(f"{p}.down_proj_scales", "U8", (e, h, inter // 32))]  # fmt: skip
    qc = json.loads((FIXTURES / "quant" / "openai__gpt-oss-20b" / "quantization_config.json").read_text())
    count = count_weights(layout, {**config, "quantization_config": qc})
    assert count.parameters == 46_702_792_704
    assert count.quantization.method == "mxfp4"
    assert count.quantization.bits_per_weight == pytest.approx(4.25)


def test_deepseek_v3_fp8_block_matches_published_total():
    config = load_fixture_json("deepseek-ai__DeepSeek-R1", "config.json")
    layout = deepseek_v3_layout(config)
    count = count_weights(layout, config)
    assert count.stored_total == 684_531_386_000  # exact, MTP layer included
    scales = sum(t.numel for t in layout if t.name.endswith("weight_scale_inv"))
    assert count.parameters == count.stored_total - scales
    q = count.quantization
    assert (q.method, q.bits) == ("fp8-block", 8)
    assert q.bits_per_weight == pytest.approx(8.002, abs=0.001)
    assert count.stored_elements.keys() == {"BF16", "F32", "F8_E4M3"}


@pytest.mark.parametrize(
    ("declared", "scheme", "method", "note"),
    [
        ({"quant_method": "awq", "bits": 4}, gptq, "awq", "config declares 'awq' but the tensors look like gptq"),
        ({"quant_method": "hqq"}, fp8, "fp8", "config declares unknown quantization 'hqq'; tensors look like fp8"),
        ({"quant_method": "gptq", "bits": 4}, None, "gptq", "config declares 'gptq' but no tensor is stored quantized"),
    ],
)
def test_declared_and_evidence_disagree(declared, scheme, method, note):
    tensors = manifest_tensors("meta-llama__Llama-3.1-8B")
    layout = quantize(tensors, scheme) if scheme else tensors
    config = {**load_fixture_json("meta-llama__Llama-3.1-8B", "config.json"), "quantization_config": declared}
    count = count_weights(layout, config)
    assert count.quantization.method == method
    assert note in count.notes
    assert count.parameters == LLAMA31_8B


def test_unknown_method_degrades_with_a_note():
    config = {**load_fixture_json("meta-llama__Llama-3.1-8B", "config.json"),
              "quantization_config": {"quant_method": "aqlm"}}
    layout = manifest_tensors("meta-llama__Llama-3.1-8B")
    count = count_weights(layout, config)
    assert count.parameters is None
    assert count.weight_bytes == 2 * LLAMA31_8B
    assert any("'aqlm'" in n and "unknown" in n for n in count.notes)


def test_packed_weight_with_unknown_bits_degrades():
    layout = [tensor("model.layers.0.mlp.up_proj.weight_packed", "I32", (14336, 512)),
              tensor("model.norm.weight", "BF16", (4096,))]
    count = count_weights(layout)
    assert count.parameters is None
    assert count.weight_bytes == 14336 * 512 * 4 + 4096 * 2
    assert count.notes == ("1 tensor(s) packed as compressed-tensors with bits unknown, "
                           "e.g. 'model.layers.0.mlp.up_proj.weight_packed': parameter count unknown",)


def test_gguf_block_types_count_logical_elements():
    """GGUF Q4_K: 256 values in 144 bytes (scales inside the block); shapes are logical."""
    layout = [TensorInfo(t.name, "Q4_K", t.shape, t.numel // 256 * 144) if is_linear(t) else t
              for t in manifest_tensors("meta-llama__Llama-2-7b-hf")]
    count = count_weights(layout, load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json"))
    assert count.parameters == LLAMA2_7B
    assert (count.quantization.method, count.quantization.bits) == ("gguf", 4)
    assert count.quantization.bits_per_weight == pytest.approx(4.5)
    assert count.stored_elements["Q4_K"] == 6_476_005_376 and count.notes == ()


def test_detect_quantization_is_none_for_a_plain_checkpoint():
    tensors = manifest_tensors("Qwen__Qwen2.5-7B")
    assert scan_quantization(tensors, load_fixture_json("Qwen__Qwen2.5-7B", "config.json")).quantization is None
    assert scan_quantization(tensors).claimed == frozenset()
