"""Checkpoint layouts built from each quantization method's documented packing, applied to real shapes.

Used by the tests and by scripts/build_snapshot.py; every function returns header entries (TensorInfo)
with exact byte sizes. Sources of each packing: see the docstrings and fixtures/quant/SOURCES.md.
"""

from __future__ import annotations

import math

from gpumem.model.safetensors_header import DTYPE_BITS
from gpumem.model.types import TensorInfo


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


def bnb_int8_layout(index: dict, shapes: dict[str, tuple[int, ...]]) -> list[TensorInfo]:
    """bitsandbytes LLM.int8 as saved: I8 weights + F32 `SCB` row scales + a U8 `weight_format` per linear.

    Tensor names come from a real index's weight_map, shapes from the unquantized architecture; the
    other tensors stay F32 (the repo's torch_dtype).
    """
    layout = []
    for name in index["weight_map"]:
        stem, _, leaf = name.rpartition(".")
        if leaf == "SCB":
            layout.append(tensor(name, "F32", shapes[stem + ".weight"][:1]))
        elif leaf == "weight_format":
            layout.append(tensor(name, "U8", ()))
        elif f"{stem}.SCB" in index["weight_map"]:
            layout.append(tensor(name, "I8", shapes[name]))
        else:
            layout.append(tensor(name, "F32", shapes[name]))
    return layout


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
