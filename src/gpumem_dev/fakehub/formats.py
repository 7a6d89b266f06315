"""Fake repos in the formats people publish beyond plain bf16 safetensors: pre-quantized, GGUF, .bin-only,
dual-format, Mistral consolidated, `*.fp16` variants, diffusers, multimodal and embedding models.

Configs are the real published files in fixtures/; tensor names and shapes follow each architecture's
reference implementation applied to those configs; quantized layouts follow each writer's documented
packing (see fixtures/quant/SOURCES.md). Weights are virtual: a real header and zeros after it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from .. import make_gguf_fixtures as make_gguf
from .repos import (
    HUB_FIXTURES,
    FakeFile,
    FakeRepo,
    Tensor,
    config_summary,
    fake_sha,
    safetensors_bytes,
    safetensors_summary,
    sharded_files,
    split_in_order,
    virtual_safetensors,
)

FIXTURES = HUB_FIXTURES.parent
CONFIGS = FIXTURES / "configs"
GGUF_FIXTURES = FIXTURES / "gguf"
GGUF_ALIGNMENT = 32




def json_file(document: dict) -> FakeFile:
    """A small JSON file as the Hub would serve it."""
    return FakeFile.of(json.dumps(document, indent=2) + "\n")


def real_json(*parts: str) -> dict:
    """A real published JSON file under fixtures/ (e.g. 'hub', 'TheBloke__...', 'config.json')."""
    return json.loads(FIXTURES.joinpath(*parts).read_text())


def as_tuples(tensors: Iterable) -> list[Tensor]:
    """(name, dtype, shape) rows from TensorInfo-like objects (the quantization tests' builders)."""
    return [(t.name, t.dtype, tuple(t.shape)) for t in tensors]


def model_repo(repo_id: str, files: dict[str, FakeFile], config: dict | None = None,
               tensors: Sequence[Tensor] = ()) -> FakeRepo:
    """A public repo with model info summarising its config and safetensors as the Hub does."""
    info = {"config": config_summary(config or {}), "tags": ["transformers"]}
    if tensors:
        info["safetensors"] = safetensors_summary(tensors)
    return FakeRepo(repo_id, files, sha=fake_sha(repo_id), info=info)


def sharded_repo(repo_id: str, config: dict, tensors: Sequence[Tensor], n_shards: int, *,
                 name_format: str = "model-{i:05d}-of-{n:05d}.safetensors",
                 extra: dict[str, FakeFile] | None = None) -> FakeRepo:
    """A safetensors repo cut into `n_shards` in order, with the index transformers writes."""
    runs = split_in_order(tensors, n_shards)
    files = sharded_files({name_format.format(i=i, n=n_shards): run for i, run in enumerate(runs, 1)},
                          {"format": "pt"})
    files["config.json"] = json_file(config)
    files.update(extra or {})
    return model_repo(repo_id, files, config, tensors)


def indexed_repo(repo_id: str, config: dict, tensors: Sequence[Tensor], index: dict,
                 extra: dict[str, FakeFile] | None = None) -> FakeRepo:
    """A safetensors repo whose shards hold what a real index's weight_map says (the index served as is)."""
    shards: dict[str, list[Tensor]] = {}
    for tensor in tensors:
        shards.setdefault(index["weight_map"][tensor[0]], []).append(tensor)
    files = sharded_files(shards, {"format": "pt"}, json.dumps(index, indent=2).encode())
    files["config.json"] = json_file(config)
    files.update(extra or {})
    return model_repo(repo_id, files, config, tensors)


# --- dense layouts from real configs --------------------------------------------------------------


def llama_layout(config: dict, dtype: str = "F16", prefix: str = "model.", head: str = "lm_head.weight",
                 inv_freq: bool = False) -> list[Tensor]:
    """transformers LlamaForCausalLM's state_dict (optionally with the rotary inv_freq buffers old versions saved)."""
    h, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or h // heads
    kv = config.get("num_key_value_heads", heads) * head_dim
    shapes = {"self_attn.q_proj": (heads * head_dim, h), "self_attn.k_proj": (kv, h), "self_attn.v_proj": (kv, h),
              "self_attn.o_proj": (h, heads * head_dim), "mlp.gate_proj": (inter, h), "mlp.up_proj": (inter, h),
              "mlp.down_proj": (h, inter), "input_layernorm": (h,), "post_attention_layernorm": (h,)}
    tensors: list[Tensor] = [(f"{prefix}embed_tokens.weight", dtype, (vocab, h))]
    for i in range(config["num_hidden_layers"]):
        tensors += [(f"{prefix}layers.{i}.{m}.weight", dtype, s) for m, s in shapes.items()]
        if inv_freq:
            tensors.append((f"{prefix}layers.{i}.self_attn.rotary_emb.inv_freq", "F32", (head_dim // 2,)))
    tensors.append((f"{prefix}norm.weight", dtype, (h,)))
    if not config.get("tie_word_embeddings"):
        tensors.append((head, dtype, (vocab, h)))
    return tensors


def clip_vision_layout(vision: dict, prefix: str, dtype: str) -> list[Tensor]:
    """transformers CLIPVisionModel (embeddings, pre_layrnorm, encoder layers, post_layernorm)."""
    h, inter, layers = vision["hidden_size"], vision["intermediate_size"], vision["num_hidden_layers"]
    patch, positions = vision["patch_size"], (vision["image_size"] // vision["patch_size"]) ** 2 + 1
    tensors: list[Tensor] = [
        (f"{prefix}embeddings.class_embedding", dtype, (h,)),
        (f"{prefix}embeddings.patch_embedding.weight", dtype, (h, vision.get("num_channels", 3), patch, patch)),
        (f"{prefix}embeddings.position_embedding.weight", dtype, (positions, h)),
        (f"{prefix}pre_layrnorm.weight", dtype, (h,)), (f"{prefix}pre_layrnorm.bias", dtype, (h,)),
    ]
    for i in range(layers):
        p = f"{prefix}encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            tensors += [(f"{p}self_attn.{proj}.weight", dtype, (h, h)), (f"{p}self_attn.{proj}.bias", dtype, (h,))]
        tensors += [(f"{p}layer_norm1.weight", dtype, (h,)), (f"{p}layer_norm1.bias", dtype, (h,)),
                    (f"{p}mlp.fc1.weight", dtype, (inter, h)), (f"{p}mlp.fc1.bias", dtype, (inter,)),
                    (f"{p}mlp.fc2.weight", dtype, (h, inter)), (f"{p}mlp.fc2.bias", dtype, (h,)),
                    (f"{p}layer_norm2.weight", dtype, (h,)), (f"{p}layer_norm2.bias", dtype, (h,))]
    return tensors + [(f"{prefix}post_layernorm.weight", dtype, (h,)), (f"{prefix}post_layernorm.bias", dtype, (h,))]


def llava_layout(config: dict) -> list[Tensor]:
    """LlavaForConditionalGeneration as llava-hf stores it: Llama language model (vicuna-7b shapes: the
    LlamaConfig defaults the text_config leaves out), CLIP vision tower, two-layer projector."""
    text = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            **config["text_config"]}  # LlamaConfig defaults (transformers) for the keys llava-hf omits
    vision, h = config["vision_config"], text["hidden_size"]
    tensors = llama_layout(text, "F16", prefix="language_model.model.", head="language_model.lm_head.weight")
    tensors += clip_vision_layout(vision, "vision_tower.vision_model.", "F16")
    v = vision["hidden_size"]
    tensors += [("multi_modal_projector.linear_1.weight", "F16", (h, v)), ("multi_modal_projector.linear_1.bias", "F16", (h,)),
                ("multi_modal_projector.linear_2.weight", "F16", (h, h)), ("multi_modal_projector.linear_2.bias", "F16", (h,))]
    return tensors


def bert_layout(config: dict, dtype: str = "F32", position_ids: bool = True) -> list[Tensor]:
    """transformers BertModel (with pooler); old checkpoints also store the `position_ids` I64 buffer."""
    h, inter = config["hidden_size"], config["intermediate_size"]
    tensors: list[Tensor] = [("embeddings.word_embeddings.weight", dtype, (config["vocab_size"], h)),
                             ("embeddings.position_embeddings.weight", dtype, (config["max_position_embeddings"], h)),
                             ("embeddings.token_type_embeddings.weight", dtype, (config["type_vocab_size"], h)),
                             ("embeddings.LayerNorm.weight", dtype, (h,)), ("embeddings.LayerNorm.bias", dtype, (h,))]
    if position_ids:
        tensors.append(("embeddings.position_ids", "I64", (1, config["max_position_embeddings"])))
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, shape in (("attention.self.query", (h, h)), ("attention.self.key", (h, h)),
                            ("attention.self.value", (h, h)), ("attention.output.dense", (h, h)),
                            ("intermediate.dense", (inter, h)), ("output.dense", (h, inter))):
            tensors += [(f"{p}{name}.weight", dtype, shape), (f"{p}{name}.bias", dtype, shape[:1])]
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            tensors += [(f"{p}{norm}.weight", dtype, (h,)), (f"{p}{norm}.bias", dtype, (h,))]
    return tensors + [("pooler.dense.weight", dtype, (h, h)), ("pooler.dense.bias", dtype, (h,))]


def gpt_oss_layout(config: dict) -> list[Tensor]:
    """GptOssForCausalLM as openai stores it: MXFP4 experts (`*_blocks` U8 [E, rows, n/32, 16] + E8M0 `*_scales`),
    BF16 expert biases, attention with biases and sinks, router, embeddings and lm_head."""
    h, inter, e, vocab = config["hidden_size"], config["intermediate_size"], config["num_local_experts"], config["vocab_size"]
    heads, kv_heads, d = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    tensors: list[Tensor] = [("model.embed_tokens.weight", "BF16", (vocab, h))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors += [(f"{p}input_layernorm.weight", "BF16", (h,)), (f"{p}post_attention_layernorm.weight", "BF16", (h,))]
        for proj, out, inp in (("q_proj", heads * d, h), ("k_proj", kv_heads * d, h), ("v_proj", kv_heads * d, h),
                               ("o_proj", h, heads * d)):
            tensors += [(f"{p}self_attn.{proj}.weight", "BF16", (out, inp)), (f"{p}self_attn.{proj}.bias", "BF16", (out,))]
        tensors += [(f"{p}self_attn.sinks", "BF16", (heads,)),
                    (f"{p}mlp.router.weight", "BF16", (e, h)), (f"{p}mlp.router.bias", "BF16", (e,)),
                    (f"{p}mlp.experts.gate_up_proj_blocks", "U8", (e, 2 * inter, h // 32, 16)),
                    (f"{p}mlp.experts.gate_up_proj_scales", "U8", (e, 2 * inter, h // 32)),
                    (f"{p}mlp.experts.gate_up_proj_bias", "BF16", (e, 2 * inter)),
                    (f"{p}mlp.experts.down_proj_blocks", "U8", (e, h, inter // 32, 16)),
                    (f"{p}mlp.experts.down_proj_scales", "U8", (e, h, inter // 32)),
                    (f"{p}mlp.experts.down_proj_bias", "BF16", (e, h))]
    return tensors + [("model.norm.weight", "BF16", (h,)), ("lm_head.weight", "BF16", (vocab, h))]


def gpt_oss_config() -> dict:
    """openai/gpt-oss-20b's config.json with its real `quantization_config` (fixtures/quant: the configs/ copy
    rewrote quant_method)."""
    config = json.loads((CONFIGS / "openai__gpt-oss-20b.json").read_text())
    config["quantization_config"] = real_json("quant", "openai__gpt-oss-20b", "quantization_config.json")
    return config


def mistral_consolidated_names(tensors: Sequence[Tensor]) -> list[Tensor]:
    """The same Llama/Mistral weights under mistral-inference's names (consolidated.safetensors)."""
    renames = (("model.embed_tokens.", "tok_embeddings."), ("model.norm.", "norm."), ("lm_head.", "output."),
               ("model.layers.", "layers."), ("self_attn.q_proj", "attention.wq"), ("self_attn.k_proj", "attention.wk"),
               ("self_attn.v_proj", "attention.wv"), ("self_attn.o_proj", "attention.wo"),
               ("mlp.gate_proj", "feed_forward.w1"), ("mlp.down_proj", "feed_forward.w2"),
               ("mlp.up_proj", "feed_forward.w3"), ("input_layernorm", "attention_norm"),
               ("post_attention_layernorm", "ffn_norm"))
    renamed = []
    for name, dtype, shape in tensors:
        for old, new in renames:
            name = name.replace(old, new)
        renamed.append((name, dtype, shape))
    return renamed


def with_dtype(tensors: Sequence[Tensor], name: str, dtype: str) -> FakeFile:
    """A virtual safetensors file whose tensor `name` is declared with another (e.g. future) dtype, same offsets."""
    header, data_size = safetensors_bytes(tensors)
    document = json.loads(header[8:])
    document[name]["dtype"] = dtype
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return FakeFile(len(text).to_bytes(8, "little") + text, 8 + len(text) + data_size)


def pickle_stand_in(size: int) -> FakeFile:
    """A .bin file of the right size whose bytes are zeros (gpumem must never ask for them)."""
    return FakeFile(b"PK\x03\x04", size)


# --- GGUF -----------------------------------------------------------------------------------------


def _pad(n: int) -> int:
    return -(-n // GGUF_ALIGNMENT) * GGUF_ALIGNMENT


def ggml_nbytes(shape: Sequence[int], qtype) -> int:
    """Exact bytes of a tensor in a ggml type (whole blocks along the innermost axis)."""
    block, size = make_gguf.GGML_QUANT_SIZES[qtype]
    return math.prod(shape) // block * size


def gguf_file(header: bytes, rows: Sequence[tuple[str, tuple[int, ...], object]]) -> FakeFile:
    """A virtual GGUF file: the real header, then each tensor's exact bytes padded to the alignment."""
    return FakeFile(header, _pad(len(header)) + sum(_pad(ggml_nbytes(shape, qtype)) for _, shape, qtype in rows))


def gguf_header(rows: Sequence[tuple[str, tuple[int, ...], object]], file_type: int, *, tokens: int = 0,
                split: tuple[int, int, int] | None = None, metadata: bool = True) -> bytes:
    """A real GGUF header written by GGUFWriter (header and tensor infos only) for Llama-2-7B's metadata.

    `tokens` adds a tokenizer vocabulary of that many (placeholder) tokens, as converters write it;
    `split` = (part index, part count, total tensors) adds llama.cpp gguf-split's keys.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "header.gguf"
        writer = make_gguf.GGUFWriter(path, "llama")
        if split:
            writer.add_uint16("split.no", split[0])
            writer.add_uint16("split.count", split[1])
            writer.add_int32("split.tensors.count", split[2])
        if metadata:
            make_gguf.add_llama_metadata(writer, make_gguf.llama2_config(), file_type)
        if tokens:
            writer.add_token_list([f"<tok{i}>" for i in range(tokens)])
            writer.add_token_scores([0.0] * tokens)
            writer.add_token_types([1] * tokens)
        for name, shape, qtype in rows:
            writer.add_tensor_info(name, shape, make_gguf.np.dtype(make_gguf.np.float32), ggml_nbytes(shape, qtype),
                                   raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        writer.close()
        return path.read_bytes()


def llama2_rows(rule) -> list[tuple[str, tuple[int, ...], object]]:
    """Llama-2-7B's 291 GGUF tensors typed by `rule(name, shape)`."""
    return [(name, shape, rule(name, shape)) for name, shape, _ in make_gguf.llama2_q4_k_m_tensors()]


def q8_0_type(name: str, shape: tuple[int, ...]):
    """llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0: every 2-D tensor Q8_0 (output too), 1-D norms F32."""
    return make_gguf.T.F32 if len(shape) == 1 else make_gguf.T.Q8_0


def f16_type(name: str, shape: tuple[int, ...]):
    """convert_hf_to_gguf --outtype f16: 2-D tensors F16, 1-D norms F32."""
    return make_gguf.T.F32 if len(shape) == 1 else make_gguf.T.F16


def set_ggml_type(header: bytes, tensor: str, type_id: int) -> bytes:
    """The header with one tensor info's ggml type replaced (for types no writer knows yet)."""
    name = tensor.encode()
    at = header.index(len(name).to_bytes(8, "little") + name) + 8 + len(name)
    n_dims = int.from_bytes(header[at:at + 4], "little")
    at += 4 + 8 * n_dims
    return header[:at] + type_id.to_bytes(4, "little") + header[at + 4:]


LLAMA2_GGUF_TOKENS = 32000  # Llama-2's vocab_size (config.json): the tokenizer arrays have this many entries


def llama2_gguf_files() -> dict[str, FakeFile]:
    """TheBloke/Llama-2-7B-GGUF's variants as virtual files: Q4_K_M (the fixture header), Q8_0 with a full-size
    tokenizer vocabulary, and an F16 split in two parts (gguf-split naming)."""
    q4 = (GGUF_FIXTURES / "llama-2-7b.Q4_K_M.header.gguf").read_bytes()
    q8_rows, f16_rows = llama2_rows(q8_0_type), llama2_rows(f16_type)
    half = len(f16_rows) // 2
    total = len(f16_rows)
    ftype = make_gguf.LlamaFileType
    return {
        "llama-2-7b.Q4_K_M.gguf": gguf_file(q4, make_gguf.llama2_q4_k_m_tensors()),
        "llama-2-7b.Q8_0.gguf": gguf_file(gguf_header(q8_rows, ftype.MOSTLY_Q8_0, tokens=LLAMA2_GGUF_TOKENS), q8_rows),
        "llama-2-7b.F16-00001-of-00002.gguf": gguf_file(
            gguf_header(f16_rows[:half], ftype.MOSTLY_F16, split=(0, 2, total)), f16_rows[:half]),
        "llama-2-7b.F16-00002-of-00002.gguf": gguf_file(
            gguf_header(f16_rows[half:], ftype.MOSTLY_F16, split=(1, 2, total), metadata=False), f16_rows[half:]),
    }


def llama2_gguf_repo(repo_id: str = "TheBloke/Llama-2-7B-GGUF") -> FakeRepo:
    """A GGUF repo as TheBloke publishes them: variants, a README and a config.json naming the model type."""
    files = {**llama2_gguf_files(), "README.md": FakeFile.of("# Llama 2 7B - GGUF\n"),
             "config.json": json_file({"model_type": "llama"})}
    return FakeRepo(repo_id, files, sha=fake_sha(repo_id), info={"tags": ["gguf", "llama"]})


# --- multi-component (diffusers-style) repos --------------------------------------------------------


def multi_component_files() -> tuple[dict[str, FakeFile], dict[str, list[Tensor]]]:
    """A diffusers-style repo: model_index.json and one folder per component, each with its config.json and
    weights. A layout test built from real configs: `transformer/` is Llama-2-7B in two shards with its own
    index, `text_encoder/` all-MiniLM-L6-v2 (a BERT) with an `.fp16` variant beside it. Returns (files, tensors
    per component)."""
    llama = json.loads((HUB_FIXTURES / "meta-llama__Llama-2-7b-hf" / "config.json").read_text())
    bert = json.loads((CONFIGS / "sentence-transformers__all-MiniLM-L6-v2.json").read_text())
    transformer, text_encoder = llama_layout(llama, "F16"), bert_layout(bert, position_ids=False)
    runs = split_in_order(transformer, 2)
    shards = sharded_files({f"model-{i:05d}-of-00002.safetensors": run for i, run in enumerate(runs, 1)})
    files = {f"transformer/{name}": file for name, file in shards.items()}
    files.update({
        "model_index.json": json_file({"_class_name": "ExamplePipeline", "_diffusers_version": "0.30.0",
                                       "transformer": ["transformers", "LlamaModel"],
                                       "text_encoder": ["transformers", "BertModel"],
                                       "scheduler": ["diffusers", "DDIMScheduler"]}),
        "transformer/config.json": json_file(llama),
        "text_encoder/config.json": json_file(bert),
        "text_encoder/model.safetensors": virtual_safetensors(text_encoder),
        "text_encoder/model.fp16.safetensors": virtual_safetensors([(n, "F16", s) for n, _, s in text_encoder]),
        "scheduler/scheduler_config.json": json_file({"_class_name": "DDIMScheduler", "num_train_timesteps": 1000}),
    })
    return files, {"transformer": transformer, "text_encoder": text_encoder}


def write_sparse(files: dict[str, FakeFile], root: Path) -> None:
    """Write files to disk: each file's real prefix, then a hole up to its size (no disk used for the zeros)."""
    for name, file in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file.prefix)
        os.truncate(path, file.size)
