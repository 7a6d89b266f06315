"""Write the GGUF test fixtures in fixtures/gguf/ with the `gguf` package's GGUFWriter.

    PYTHONPATH=src python -m gpumem_dev.make_gguf_fixtures

Output is deterministic (seeded tensor bytes), so tests can rebuild each file and compare. Files:

- tiny-mix.gguf: small tensors of several ggml types with random bytes, plus metadata of every value
  type (nested and long arrays included); the architecture numbers are Llama-2-7B's config.json.
- tiny-split-0000k-of-00002.gguf: the same tensors written as a two-part split model.
- llama-2-7b.Q4_K_M.header.gguf: header only (no data section) of Llama-2-7B quantized Q4_K_M: the
  291 real tensor names and shapes of meta-llama/Llama-2-7b-hf (rotary inv_freq buffers are not
  weights and llama.cpp drops them), typed as llama.cpp's Q4_K_M mix assigns them; see q4_k_m_type.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFEndian, GGUFWriter, LlamaFileType

from .fixtures import ROOT

OUT = ROOT / "fixtures" / "gguf"
LLAMA2 = ROOT / "fixtures" / "hub" / "meta-llama__Llama-2-7b-hf"
T = GGMLQuantizationType

# (name, PyTorch-order shape, type): one 2-D tensor per block layout family, and 1-D norms.
TINY_TENSORS = (
    ("token_embd.weight", (8, 256), T.Q4_K),
    ("blk.0.attn_norm.weight", (256,), T.F32),
    ("blk.0.attn_q.weight", (4, 256), T.Q8_0),
    ("blk.0.attn_k.weight", (4, 256), T.Q4_0),
    ("blk.0.attn_v.weight", (4, 256), T.Q6_K),
    ("blk.0.attn_output.weight", (4, 256), T.IQ4_XS),
    ("blk.0.ffn_gate.weight", (2, 4, 256), T.Q5_K),
    ("blk.0.ffn_up.weight", (4, 256), T.BF16),
    ("blk.0.ffn_down.weight", (4, 256), T.F16),
    ("output_norm.weight", (256,), T.F32),
    ("output.weight", (8, 256), T.Q2_K),
)


def llama2_config() -> dict:
    """meta-llama/Llama-2-7b-hf config.json (the published file, in fixtures/hub)."""
    return json.loads((LLAMA2 / "config.json").read_text())


def add_llama_metadata(writer: GGUFWriter, config: dict, file_type: int) -> None:
    """The llama.* keys llama.cpp's converter writes for a Llama-2 config.json."""
    writer.add_name("Llama 2 7b hf")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_rope_dimension_count(config["hidden_size"] // config["num_attention_heads"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_file_type(file_type)
    writer.add_quantization_version(2)
    writer.add_tokenizer_model("llama")
    writer.add_bos_token_id(config["bos_token_id"])
    writer.add_eos_token_id(config["eos_token_id"])


def add_every_value_type(writer: GGUFWriter) -> None:
    """One key per GGUF value type, nested arrays, and arrays long enough to be summarised."""
    writer.add_uint8("test.uint8", 200)
    writer.add_int8("test.int8", -100)
    writer.add_uint16("test.uint16", 60000)
    writer.add_int16("test.int16", -30000)
    writer.add_uint32("test.uint32", 4_000_000_000)
    writer.add_int32("test.int32", -2_000_000_000)
    writer.add_float32("test.float32", 0.5)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "héllo")
    writer.add_uint64("test.uint64", 2**63 + 1)
    writer.add_int64("test.int64", -(2**62))
    writer.add_float64("test.float64", 0.1)
    writer.add_array("test.int_array", [1, 2, 3])
    writer.add_array("test.string_array", ["a", "bc"])
    writer.add_array("test.nested", [[1, 2], [3]])
    writer.add_array("test.long_ints", list(range(100)))  # kept: numeric, outside tokenizer.*
    writer.add_array("tokenizer.ggml.tokens", [f"<t{i}>" for i in range(100)])
    writer.add_array("tokenizer.ggml.scores", [0.0] * 100)


def random_bytes(shape: tuple[int, ...], qtype: GGMLQuantizationType, rng: np.random.Generator) -> np.ndarray:
    """Seeded bytes for a tensor of `shape` (PyTorch order) in `qtype`, as GGUFWriter's raw byte shape."""
    block, size = GGML_QUANT_SIZES[qtype]
    row_bytes = shape[-1] // block * size
    return rng.integers(0, 256, size=(*shape[:-1], row_bytes), dtype=np.uint8)


def write_tiny(path: Path, split_max_tensors: int = 0, endianess: GGUFEndian = GGUFEndian.LITTLE) -> list[Path]:
    """Write the tiny multi-type model; returns the file(s) written."""
    writer = GGUFWriter(path, "llama", split_max_tensors=split_max_tensors, endianess=endianess)
    add_llama_metadata(writer, llama2_config(), LlamaFileType.MOSTLY_Q4_K_M)
    add_every_value_type(writer)
    rng = np.random.default_rng(0)
    for name, shape, qtype in TINY_TENSORS:
        writer.add_tensor(name, random_bytes(shape, qtype, rng), raw_dtype=qtype)
    paths = writer.print_plan() if split_max_tensors else [path]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return paths


def gguf_name(hf_name: str) -> str:
    """llama.cpp's tensor name for a Llama Hugging Face tensor."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf_name in fixed:
        return fixed[hf_name]
    layer, rest = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf_name).groups()
    parts = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
             "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
             "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
             "post_attention_layernorm": "ffn_norm"}
    module, suffix = rest.rsplit(".", 1)
    return f"blk.{layer}.{parts[module]}.{suffix}"


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's use_more_bits (src/llama-quant.cpp): first and last eighth, and every third between."""
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def q4_k_m_type(name: str, shape: tuple[int, ...], n_layers: int) -> GGMLQuantizationType:
    """The type llama.cpp's llama_tensor_get_type gives a Llama tensor under LLAMA_FTYPE_MOSTLY_Q4_K_M.

    1-D tensors (norms) stay F32; output.weight gets Q6_K; attn_v and ffn_down get Q6_K where
    use_more_bits(layer) (16 of Llama-2-7B's 32 layers), Q4_K elsewhere; every other 2-D tensor,
    token_embd included, gets the ftype's base type Q4_K. llama.cpp counts attn_v/ffn_down tensors in
    its own iteration order; here the i-th is layer i (as in files written layer by layer). Which
    layers get Q6_K does not change the byte total: all 32 attn_v (and ffn_down) share one shape.
    """
    if len(shape) == 1:
        return T.F32
    if name == "output.weight":
        return T.Q6_K
    layer = re.match(r"blk\.(\d+)\.(attn_v|ffn_down)\.", name)
    if layer and use_more_bits(int(layer[1]), n_layers):
        return T.Q6_K
    return T.Q4_K


def llama2_q4_k_m_tensors() -> list[tuple[str, tuple[int, ...], GGMLQuantizationType]]:
    """(GGUF name, PyTorch shape, type) of every Llama-2-7B weight, in the manifest's order."""
    manifest = json.loads((LLAMA2 / "tensors.json").read_text())["tensors"]
    n_layers = llama2_config()["num_hidden_layers"]
    rows = []
    for hf_name, (_, shape) in manifest.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        name = gguf_name(hf_name)
        rows.append((name, tuple(shape), q4_k_m_type(name, tuple(shape), n_layers)))
    return rows


def write_llama2_header(path: Path, tokens: list[str] | None = None, data_hole: bool = False) -> None:
    """Header only (metadata + tensor infos) of Llama-2-7B Q4_K_M; `tokens` adds a tokenizer vocabulary;
    `data_hole` as in `write_tensor_infos`."""
    writer = GGUFWriter(path, "llama")
    add_llama_metadata(writer, llama2_config(), LlamaFileType.MOSTLY_Q4_K_M)
    if tokens is not None:
        writer.add_token_list(tokens)
        writer.add_token_scores([0.0] * len(tokens))
        writer.add_token_types([1] * len(tokens))
    write_tensor_infos(writer, path, llama2_q4_k_m_tensors(), data_hole)


def write_tensor_infos(writer: GGUFWriter, path: Path, tensors: Iterable[tuple[str, Sequence[int], GGMLQuantizationType]],
                       data_hole: bool = False) -> None:
    """Add the tensor infos (name, PyTorch-order shape, ggml type), write the header and close. With `data_hole`
    the file then runs on as a hole as long as the 32-byte aligned tensor data (sparse: nothing is written), so
    llama.cpp opens it as a whole model."""
    data = 0
    for name, shape, qtype in tensors:
        block, size = GGML_QUANT_SIZES[qtype]
        nbytes = int(np.prod(shape)) // block * size
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)
        data += -(-nbytes // 32) * 32
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    if data_hole:
        with open(path, "r+b") as f:
            f.truncate(-(-path.stat().st_size // 32) * 32 + data)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    written = write_tiny(OUT / "tiny-mix.gguf")
    written += write_tiny(OUT / "tiny-split.gguf", split_max_tensors=6)
    write_llama2_header(OUT / "llama-2-7b.Q4_K_M.header.gguf")
    written.append(OUT / "llama-2-7b.Q4_K_M.header.gguf")
    for path in written:
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
