"""Pre-quantized checkpoints: layouts built from each writer's documented packing on real configs' shapes."""

from __future__ import annotations

import json
import math

import pytest

from conftest import FIXTURES, load_fixture_json, manifest_tensors
from gpumem.params import count_weights
from gpumem.quantization import detect_quantization, scan_quantization
from gpumem.safetensors_header import DTYPE_BITS
from gpumem.types import TensorInfo

LLAMA31_8B = 8_030_261_248
LLAMA2_7B = 6_738_415_616


def tensor(name: str, dtype: str, shape: tuple[int, ...]) -> TensorInfo:
    """A header entry with its exact byte size."""
    return TensorInfo(name, dtype, shape, math.prod(shape) * DTYPE_BITS[dtype] // 8)


def is_linear(t: TensorInfo) -> bool:
    """The decoder-layer linears quantizers replace (norms, embeddings and lm_head stay dense)."""
    return ".layers." in t.name and t.name.endswith("_proj.weight") and len(t.shape) == 2


def gptq(stem: str, out: int, inp: int, bits: int = 4, group: int = 128) -> list[TensorInfo]:
    """AutoGPTQ QuantLinear: input axis packed; the old packer stores a zero F16 bias on every linear."""
    return [tensor(f"{stem}.qweight", "I32", (inp * bits // 32, out)),
            tensor(f"{stem}.qzeros", "I32", (inp // group, out * bits // 32)),
            tensor(f"{stem}.scales", "F16", (inp // group, out)),
            tensor(f"{stem}.g_idx", "I32", (inp,)),
            tensor(f"{stem}.bias", "F16", (out,))]  # fmt: skip


def awq(stem: str, out: int, inp: int, bits: int = 4, group: int = 128) -> list[TensorInfo]:
    """AutoAWQ GEMM: output axis packed."""
    return [tensor(f"{stem}.qweight", "I32", (inp, out * bits // 32)),
            tensor(f"{stem}.qzeros", "I32", (inp // group, out * bits // 32)),
            tensor(f"{stem}.scales", "F16", (inp // group, out))]  # fmt: skip


def ct_w4a16(stem: str, out: int, inp: int) -> list[TensorInfo]:
    """compressed-tensors pack-quantized int4, one F16 scale per output channel."""
    return [tensor(f"{stem}.weight_packed", "I32", (out, inp * 4 // 32)),
            tensor(f"{stem}.weight_scale", "F16", (out, 1)),
            tensor(f"{stem}.weight_shape", "I64", (2,))]  # fmt: skip


def ct_w8a8(stem: str, out: int, inp: int) -> list[TensorInfo]:
    """compressed-tensors int-quantized: I8 weight, per-channel scale."""
    return [tensor(f"{stem}.weight", "I8", (out, inp)), tensor(f"{stem}.weight_scale", "BF16", (out, 1))]


def fp8(stem: str, out: int, inp: int) -> list[TensorInfo]:
    """FP8 per-tensor weight and static activation scale."""
    return [tensor(f"{stem}.weight", "F8_E4M3", (out, inp)), tensor(f"{stem}.weight_scale", "F32", ()),
            tensor(f"{stem}.input_scale", "F32", ())]


def bnb4(stem: str, out: int, inp: int, blocksize: int = 64) -> list[TensorInfo]:
    """bitsandbytes NF4 with double quantization (nested absmax per 256 absmax values)."""
    n = out * inp
    return [tensor(f"{stem}.weight", "U8", (n // 2, 1)),
            tensor(f"{stem}.weight.absmax", "U8", (n // blocksize,)),
            tensor(f"{stem}.weight.quant_map", "F32", (16,)),
            tensor(f"{stem}.weight.nested_absmax", "F32", (math.ceil(n / blocksize / 256),)),
            tensor(f"{stem}.weight.nested_quant_map", "F32", (256,)),
            tensor(f"{stem}.weight.quant_state.bitsandbytes__nf4", "U8", (120,))]  # fmt: skip


def nvfp4(stem: str, out: int, inp: int) -> list[TensorInfo]:
    """NVFP4: two E2M1 values per byte, an F8_E4M3 scale per 16, F32 global scales."""
    return [tensor(f"{stem}.weight", "U8", (out, inp // 2)),
            tensor(f"{stem}.weight_scale", "F8_E4M3", (out, inp // 16)),
            tensor(f"{stem}.weight_global_scale", "F32", (1,)), tensor(f"{stem}.input_global_scale", "F32", (1,))]


def quantize(tensors: list[TensorInfo], scheme, dense: str | None = None) -> list[TensorInfo]:
    """Replace every decoder linear by the scheme's tensors; other tensors keep their shape (dtype -> dense)."""
    result = []
    for t in tensors:
        if is_linear(t):
            result += scheme(t.name.removesuffix(".weight"), *t.shape)
        else:
            result.append(tensor(t.name, dense or t.dtype, t.shape))
    return result


def llama2_13b_layout(config: dict) -> list[TensorInfo]:
    """Llama-2-13B's F16 tensors from its config (plus the F32 rotary inv_freq old transformers saved)."""
    h, inter, v, heads = (config[k] for k in ("hidden_size", "intermediate_size", "vocab_size", "num_attention_heads"))
    tensors = [tensor("model.embed_tokens.weight", "F16", (v, h)), tensor("model.norm.weight", "F16", (h,)),
               tensor("lm_head.weight", "F16", (v, h))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"
        tensors += [tensor(f"{p}.self_attn.{x}_proj.weight", "F16", (h, h)) for x in "qkvo"]
        tensors += [tensor(f"{p}.mlp.gate_proj.weight", "F16", (inter, h)),
                    tensor(f"{p}.mlp.up_proj.weight", "F16", (inter, h)),
                    tensor(f"{p}.mlp.down_proj.weight", "F16", (h, inter)),
                    tensor(f"{p}.input_layernorm.weight", "F16", (h,)),
                    tensor(f"{p}.post_attention_layernorm.weight", "F16", (h,)),
                    tensor(f"{p}.self_attn.rotary_emb.inv_freq", "F32", (h // heads // 2,))]  # fmt: skip
    return tensors


def hub_packed_total(tensors: list[TensorInfo], bits: int) -> int:
    """The Hub's accounting of a GPTQ repo: qweight x (32/bits), side tensors skipped, the rest as stored."""
    side = (".qzeros", ".scales", ".g_idx")
    kept = [t for t in tensors if not t.name.endswith(side)]
    return sum(t.numel * (32 // bits if t.name.endswith(".qweight") else 1) for t in kept)


def test_gptq_13b_matches_published_count():
    config = load_fixture_json("TheBloke__Llama-2-13B-chat-GPTQ", "config.json")
    qc = load_fixture_json("TheBloke__Llama-2-13B-chat-GPTQ", "quantize_config.json")
    bits, group = qc["bits"], qc["group_size"]
    dense = llama2_13b_layout(config)
    assert count_weights(dense, config).parameters == 13_015_864_320  # the layout is Llama-2-13B's
    layout = quantize(dense, lambda s, o, i: gptq(s, o, i, bits, group))
    count = count_weights(layout, config, qc)
    assert count.parameters == 13_015_864_320
    assert count.quantization.method == "gptq" and count.quantization.bits == 4
    assert count.buffer_elements == 40 * 64
    assert count.weight_bytes == sum(t.nbytes for t in layout)
    # 4 bits + F16 scale and I32 zero per 128 + I32 g_idx per input row + the zero bias
    assert 4.1 < count.quantization.bits_per_weight < 4.5
    assert any(name.endswith("mlp.down_proj.bias") for name in count.quantization.side_tensors)


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
    layout = []
    for name in index["weight_map"]:  # the real tensor names; shapes from the Llama-3.1-8B architecture
        stem, _, leaf = name.rpartition(".")
        if leaf == "SCB":
            layout.append(tensor(name, "F32", shapes[stem + ".weight"][:1]))
        elif leaf == "weight_format":
            layout.append(tensor(name, "U8", ()))
        elif f"{stem}.SCB" in index["weight_map"]:
            layout.append(tensor(name, "I8", shapes[name]))
        else:
            layout.append(tensor(name, "F32", shapes[name]))  # torch_dtype float32: the rest stays F32
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


def deepseek_v3_layout(config: dict) -> list[TensorInfo]:
    """DeepSeek-V3/R1 as stored: FP8 linears with F32 128x128 `weight_scale_inv`, BF16 norms/gate/embeddings.

    Names follow modeling_deepseek.py (MLA, MoEGate with e_score_correction_bias) plus the MTP layer
    (embed_tokens, enorm, hnorm, eh_proj in BF16, shared_head) after the main layers.
    """
    h, v = config["hidden_size"], config["vocab_size"]
    heads, nope, rope, vdim = (config[k] for k in ("num_attention_heads", "qk_nope_head_dim", "qk_rope_head_dim",
                                                   "v_head_dim"))
    qr, kvr = config["q_lora_rank"], config["kv_lora_rank"]

    def fp8_linear(stem, out, inp):
        return [tensor(f"{stem}.weight", "F8_E4M3", (out, inp)),
                tensor(f"{stem}.weight_scale_inv", "F32", (math.ceil(out / 128), math.ceil(inp / 128)))]

    def mlp(stem, inter):
        return (fp8_linear(f"{stem}.gate_proj", inter, h) + fp8_linear(f"{stem}.up_proj", inter, h)
                + fp8_linear(f"{stem}.down_proj", h, inter))

    def layer(i):
        p = f"model.layers.{i}"
        out = [tensor(f"{p}.input_layernorm.weight", "BF16", (h,)),
               tensor(f"{p}.post_attention_layernorm.weight", "BF16", (h,)),
               tensor(f"{p}.self_attn.q_a_layernorm.weight", "BF16", (qr,)),
               tensor(f"{p}.self_attn.kv_a_layernorm.weight", "BF16", (kvr,))]  # fmt: skip
        a = f"{p}.self_attn"
        out += fp8_linear(f"{a}.q_a_proj", qr, h) + fp8_linear(f"{a}.q_b_proj", heads * (nope + rope), qr)
        out += fp8_linear(f"{a}.kv_a_proj_with_mqa", kvr + rope, h)
        out += fp8_linear(f"{a}.kv_b_proj", heads * (nope + vdim), kvr) + fp8_linear(f"{a}.o_proj", h, heads * vdim)
        if i < config["first_k_dense_replace"]:
            return out + mlp(f"{p}.mlp", config["intermediate_size"])
        n, inter = config["n_routed_experts"], config["moe_intermediate_size"]
        out += [tensor(f"{p}.mlp.gate.weight", "BF16", (n, h)),
                tensor(f"{p}.mlp.gate.e_score_correction_bias", "F32", (n,))]
        out += mlp(f"{p}.mlp.shared_experts", inter * config["n_shared_experts"])
        return out + [t for j in range(n) for t in mlp(f"{p}.mlp.experts.{j}", inter)]

    main = config["num_hidden_layers"]
    tensors = [tensor("model.embed_tokens.weight", "BF16", (v, h)), tensor("model.norm.weight", "BF16", (h,)),
               tensor("lm_head.weight", "BF16", (v, h))]
    for i in range(main + config["num_nextn_predict_layers"]):
        tensors += layer(i)
        if i >= main:  # multi-token-prediction module
            p = f"model.layers.{i}"
            tensors += [tensor(f"{p}.embed_tokens.weight", "BF16", (v, h)), tensor(f"{p}.enorm.weight", "BF16", (h,)),
                        tensor(f"{p}.hnorm.weight", "BF16", (h,)), tensor(f"{p}.eh_proj.weight", "BF16", (h, 2 * h)),
                        tensor(f"{p}.shared_head.norm.weight", "BF16", (h,)),
                        tensor(f"{p}.shared_head.head.weight", "BF16", (v, h))]  # fmt: skip
    return tensors


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
    assert detect_quantization(tensors, load_fixture_json("Qwen__Qwen2.5-7B", "config.json")) is None
    assert scan_quantization(tensors).claimed == frozenset()
