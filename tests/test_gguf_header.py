"""GGUF header reader: real files written by gguf's GGUFWriter, hostile bytes, incremental reads."""

from __future__ import annotations

import json
import re
import struct

import gguf
import pytest
from conftest import FIXTURES, load_fixture_json, manifest_tensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumem.errors import BadConfig, BadHeader
from gpumem.model.gguf_header import (
    FILE_TYPES,
    GGML_TYPES,
    ArraySummary,
    IncompleteGGUF,
    gguf_config,
    group_gguf_files,
    parse_gguf,
    variant_label,
)
from gpumem_dev import make_gguf_fixtures as make

GGUF_DIR = FIXTURES / "gguf"

TINY = (GGUF_DIR / "tiny-mix.gguf").read_bytes()
LLAMA2_HEADER = (GGUF_DIR / "llama-2-7b.Q4_K_M.header.gguf").read_bytes()
RETIRED_TYPES = {31, 32, 33, 36, 37, 38}  # interleaved Q4_0/IQ4_NL, dropped from ggml and gguf-py


def pad(n: int, align: int = 32) -> int:
    return -(-n // align) * align


# --- the ggml type table ---------------------------------------------------------------------------

def test_ggml_types_match_gguf_py():
    for qtype, (block, size) in gguf.GGML_QUANT_SIZES.items():
        ours = GGML_TYPES[qtype.value]
        assert (ours.name, ours.block_size, ours.type_size) == (qtype.name, block, size)
    extra = set(GGML_TYPES) - {t.value for t in gguf.GGML_QUANT_SIZES}
    assert extra == RETIRED_TYPES


def test_file_types_match_gguf_py():
    for ftype in gguf.LlamaFileType:
        if ftype is not gguf.LlamaFileType.GUESSED:
            assert FILE_TYPES[ftype.value] == re.sub(r"^(MOSTLY|ALL)_", "", ftype.name)
    assert set(FILE_TYPES) - {t.value for t in gguf.LlamaFileType} == {4, 33, 34, 35}  # retired ftypes


# --- real files -------------------------------------------------------------------------------------

def test_fixtures_are_what_the_script_writes(tmp_path):
    written = make.write_tiny(tmp_path / "tiny-mix.gguf") + make.write_tiny(tmp_path / "tiny-split.gguf", 6)
    make.write_llama2_header(tmp_path / "llama-2-7b.Q4_K_M.header.gguf")
    for path in [*written, tmp_path / "llama-2-7b.Q4_K_M.header.gguf"]:
        assert path.read_bytes() == (GGUF_DIR / path.name).read_bytes(), path.name


def test_tiny_tensors_exact_bytes_and_tiling():
    header = parse_gguf(TINY, "tiny-mix.gguf", len(TINY))
    reader = gguf.GGUFReader(GGUF_DIR / "tiny-mix.gguf")  # an independent parser of the same bytes
    by_name = {t.name: t for t in reader.tensors}
    assert [t.name for t in header.tensors] == [name for name, _, _ in make.TINY_TENSORS]
    for info, (_, shape, qtype) in zip(header.tensors, make.TINY_TENSORS):
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        assert (info.dtype, info.shape, info.file) == (qtype.name, shape, "tiny-mix.gguf")
        assert info.nbytes == info.numel // block * size == by_name[info.name].n_bytes
    offsets = [header.header_bytes + t.data_offset - reader.data_offset for t in reader.tensors]
    assert header.header_bytes == reader.data_offset
    assert offsets[0] == header.header_bytes
    assert header.header_bytes + sum(pad(t.nbytes) for t in header.tensors) == len(TINY)
    assert header.parameters == sum(t.numel for t in header.tensors) == 12_800
    assert header.weight_bytes == sum(t.n_bytes for t in reader.tensors)
    assert header.stored_elements["Q4_K"] == 8 * 256 and header.unknown_types == ()


@pytest.mark.parametrize(("key", "expected"), [
    ("general.architecture", "llama"),
    ("llama.block_count", 32),
    ("test.uint8", 200), ("test.int8", -100), ("test.uint16", 60000), ("test.int16", -30000),
    ("test.uint32", 4_000_000_000), ("test.int32", -2_000_000_000), ("test.float32", 0.5),
    ("test.bool", True), ("test.string", "héllo"), ("test.uint64", 2**63 + 1), ("test.int64", -(2**62)),
    ("test.float64", 0.1), ("test.int_array", [1, 2, 3]), ("test.string_array", ["a", "bc"]),
    ("test.nested", [[1, 2], [3]]), ("test.long_ints", list(range(100))),
    ("tokenizer.ggml.tokens", ArraySummary("string", 100)),
    ("tokenizer.ggml.scores", ArraySummary("float32", 100)),
])  # fmt: skip
def test_metadata_values(key, expected):
    assert parse_gguf(TINY, "tiny-mix.gguf").metadata[key] == expected


def test_version_2_reads_like_3_and_big_endian_like_little(tmp_path):
    v2 = TINY[:4] + struct.pack("<I", 2) + TINY[8:]
    little = parse_gguf(TINY, "f.gguf", len(TINY))
    assert parse_gguf(v2, "f.gguf", len(v2)).tensors == little.tensors
    make.write_tiny(tmp_path / "be.gguf", endianess=gguf.GGUFEndian.BIG)
    data = (tmp_path / "be.gguf").read_bytes()
    big = parse_gguf(data, "f.gguf", len(data))
    assert (big.version, big.tensors, big.metadata) == (3, little.tensors, little.metadata)


@pytest.mark.parametrize(("version", "message"), [(1, "version 1 is not supported"), (4, "unsupported GGUF version 4")])
def test_other_versions_are_refused(version, message):
    with pytest.raises(BadHeader, match=f"f.gguf: .*{message}"):
        parse_gguf(TINY[:4] + struct.pack("<I", version) + TINY[8:], "f.gguf")


def test_split_model_groups_and_parses():
    files = group_gguf_files(sorted(p.name for p in GGUF_DIR.iterdir()))
    parts = files["tiny-split.gguf"]
    assert parts == ("tiny-split-00001-of-00002.gguf", "tiny-split-00002-of-00002.gguf")
    tensors = [t for name in parts for t in parse_gguf((GGUF_DIR / name).read_bytes(), name).tensors]
    whole = parse_gguf(TINY, "tiny-mix.gguf").tensors
    assert [(t.name, t.shape, t.nbytes) for t in tensors] == [(t.name, t.shape, t.nbytes) for t in whole]
    assert parse_gguf((GGUF_DIR / parts[1]).read_bytes(), parts[1]).metadata["split.no"] == 1


# --- Llama-2-7B Q4_K_M, header only ----------------------------------------------------------------

def test_llama2_q4_k_m_header_counts_exactly():
    header = parse_gguf(LLAMA2_HEADER, "llama-2-7b.Q4_K_M.gguf")
    assert header.parameters == 6_738_415_616  # meta-llama/Llama-2-7b-hf, fixtures/hub/SOURCES.md
    hf = {t.name: t for t in manifest_tensors("meta-llama__Llama-2-7b-hf") if not t.name.endswith("inv_freq")}
    assert {make.gguf_name(n): t.shape for n, t in hf.items()} == {t.name: t.shape for t in header.tensors}
    types = [t.dtype for t in header.tensors]
    assert (types.count("Q6_K"), types.count("F32"), types.count("Q4_K")) == (16 + 16 + 1, 65, 193)
    offset = 0
    for info, (name, _, qtype) in zip(header.tensors, make.llama2_q4_k_m_tensors()):
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        assert (info.name, info.nbytes) == (name, info.numel // block * size)
        offset += pad(info.nbytes)
    assert header.weight_bytes == offset == 4_080_263_168  # every Llama-2-7B size is a multiple of 32


def test_llama2_config_matches_config_json(tmp_path):
    make.write_llama2_header(tmp_path / "h.gguf", tokens=[f"<t{i}>" for i in range(32000)])
    data = (tmp_path / "h.gguf").read_bytes()
    config = gguf_config(parse_gguf(data, "h.gguf").metadata)
    real = load_fixture_json("meta-llama__Llama-2-7b-hf", "config.json")
    keys = ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
            "intermediate_size", "max_position_embeddings", "vocab_size")
    assert {k: config[k] for k in keys} == {k: real[k] for k in keys}
    assert (config["gguf_name"], config["gguf_file_type"]) == ("Llama 2 7b hf", "Q4_K_M")


def test_multi_megabyte_header_converges_in_few_reads(tmp_path):
    tokens = [f"<t{i}>" for i in range(256_000)]  # a Gemma-sized vocabulary: a ~5 MB header
    make.write_llama2_header(tmp_path / "h.gguf", tokens=tokens)
    data = (tmp_path / "h.gguf").read_bytes()  # header only: the full file would be header + weights
    whole = parse_gguf(data, "h.gguf")
    file_size = whole.header_bytes + whole.weight_bytes
    size, reads = 64 * 1024, 1  # fetch.py's first read
    while True:
        try:
            header = parse_gguf(data[:size], "h.gguf", file_size)
            break
        except IncompleteGGUF as more:
            assert size < more.needed_at_least <= file_size
            size, reads = max(more.needed_at_least, 2 * size), reads + 1
    assert header.metadata["tokenizer.ggml.tokens"] == ArraySummary("string", 256_000)
    assert reads <= 3 and header.parameters == 6_738_415_616


# --- incremental reading and hostile input ---------------------------------------------------------

@pytest.mark.parametrize("known_size", [True, False])
def test_every_truncation_is_incomplete_or_complete(known_size):
    end = parse_gguf(TINY, "t.gguf").header_bytes
    for cut in range(end + 1):
        try:
            parse_gguf(TINY[:cut], "t.gguf", len(TINY) if known_size else None)
        except IncompleteGGUF as more:
            assert cut < more.needed_at_least <= (len(TINY) if known_size else 2**28)


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return struct.pack("<Q", len(key)) + key.encode() + struct.pack("<I", vtype) + payload


def tensor(name: bytes | str, dims: list[int], ggml_type: int = 0, offset: int = 0) -> bytes:
    raw = name.encode() if isinstance(name, str) else name
    return (struct.pack("<Q", len(raw)) + raw + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
            + struct.pack("<IQ", ggml_type, offset))


def gguf_bytes(tensors: list[bytes], kvs: list[bytes] = (), n_tensors: int | None = None,
               n_kv: int | None = None) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors) if n_tensors is None else n_tensors,
                                 len(kvs) if n_kv is None else n_kv)
    return head + b"".join(kvs) + b"".join(tensors)


U32 = lambda v: struct.pack("<I", v)  # noqa: E731
NESTED = b"".join(struct.pack("<IQ", 9, 1) for _ in range(20)) + struct.pack("<IQ", 4, 0)

HOSTILE = [
    ("magic", b"GGML" + TINY[4:], None, "not a GGUF file"),
    ("tensor count", gguf_bytes([], n_tensors=2**60), None, "tensor count 1,152,921,504,606,846,976 cannot fit"),
    ("kv count", gguf_bytes([], n_kv=2**40), None, "metadata_kv count .* cannot fit"),
    ("key length", gguf_bytes([], n_kv=1) + struct.pack("<Q", 2**40), None, "metadata key #0 needs"),
    ("string past file", gguf_bytes([], [kv("a", 8, struct.pack("<Q", 500) + b"x" * 10)]), 100, "metadata 'a' needs 500 bytes .* past the end of the 100-byte file"),
    ("value type", gguf_bytes([], [kv("a", 13, b"")]), None, "metadata 'a' has unknown value type 13"),
    ("array type", gguf_bytes([], [kv("a", 9, struct.pack("<IQ", 77, 1))]), None, "metadata 'a' array has unknown element type 77"),
    ("array length", gguf_bytes([], [kv("a", 9, struct.pack("<IQ", 8, 2**50))]), None, "metadata 'a' array count .* cannot fit"),
    ("nesting", gguf_bytes([], [kv("a", 9, NESTED)]), None, "metadata 'a' nests arrays deeper than 8"),
    ("duplicate key", gguf_bytes([], [kv("a", 4, U32(1)), kv("a", 4, U32(2))]), None, "metadata key 'a' appears twice"),
    ("alignment", gguf_bytes([], [kv("general.alignment", 4, U32(48))]), None, "metadata 'general.alignment' must be a positive power of two, got 48"),
    ("bad name", gguf_bytes([tensor(b"\xff\xfe", [4])]), None, "tensor #0 name is not valid UTF-8"),
    ("n_dims", gguf_bytes([tensor("w", [1, 1, 1, 1, 1])]), None, "tensor 'w' has 5 dimensions"),
    ("huge dim", gguf_bytes([tensor("w", [2**63])]), None, "tensor 'w' has absurd dimensions"),
    ("overflow", gguf_bytes([tensor("w", [2**32, 2**32, 2**32])]), None, "tensor 'w' has absurd dimensions"),
    ("unaligned", gguf_bytes([tensor("w", [4], offset=8)]), None, "tensor 'w' offset 8 is not a multiple of the 32-byte"),
    ("block", gguf_bytes([tensor("w", [100, 2], ggml_type=12)]), None, "tensor 'w' first dimension 100 is not a multiple of the Q4_K block size 256"),
    ("past file", gguf_bytes([tensor("w", [1024])]), 200, "tensor 'w' data .* runs past the end of the 200-byte file"),
    ("duplicate tensor", gguf_bytes([tensor("w", [4]), tensor("w", [4], offset=32)]), None, "tensor 'w' appears twice"),
    ("overlap", gguf_bytes([tensor("a", [64]), tensor("b", [4], offset=128)]), None, "tensor 'b' data at offset 128 overlaps tensor 'a'"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "file_size", "message"), [row[1:] for row in HOSTILE], ids=[row[0] for row in HOSTILE])
def test_hostile_headers_raise_bad_header(data, file_size, message):
    with pytest.raises(BadHeader, match=f"^evil.gguf: {message}"):
        parse_gguf(data, "evil.gguf", file_size)


def test_unknown_type_is_left_out_and_counted():
    data = gguf_bytes([tensor("a", [4]), tensor("b", [8, 2], ggml_type=99, offset=32), tensor("c", [3], 99, 64)])
    header = parse_gguf(data, "f.gguf")
    assert [t.name for t in header.tensors] == ["a"]
    assert (header.unknown_types, header.unknown_tensors, header.weight_bytes) == ((99,), 2, 16)


def test_custom_alignment_places_the_data_section():
    data = gguf_bytes([tensor("a", [16], offset=0), tensor("b", [4], offset=64)],
                      [kv("general.alignment", 4, U32(64))])
    header = parse_gguf(data, "f.gguf", pad(len(data), 64) + 64 + 16)
    assert (header.alignment, header.header_bytes, header.weight_bytes) == (64, pad(len(data), 64), 80)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200), st.booleans())
def test_fuzz_arbitrary_bytes(tail, with_magic):
    data = (b"GGUF" + struct.pack("<I", 3) if with_magic else b"") + tail
    try:
        parse_gguf(data, "fuzz.gguf", len(data) if tail[:1] == b"\x00" else None)
    except (BadHeader, IncompleteGGUF):
        pass


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4031), st.integers(0, 255)), min_size=1, max_size=4), st.booleans())
def test_fuzz_mutated_header(mutations, known_size):
    data = bytearray(TINY)
    for position, value in mutations:
        data[position] = value
    try:
        parse_gguf(bytes(data), "fuzz.gguf", len(data) if known_size else None)
    except (BadHeader, IncompleteGGUF):
        pass


# --- gguf_config --------------------------------------------------------------------------------------

def config_json(name: str) -> dict:
    return json.loads((GGUF_DIR / "configs" / f"{name}.json").read_text())


def mixtral_metadata() -> dict:
    """What llama.cpp's converter writes for mistralai/Mixtral-8x7B-v0.1 (arch llama)."""
    c = load_fixture_json("mistralai__Mixtral-8x7B-v0.1", "config.json")
    return {"general.architecture": "llama", "llama.block_count": c["num_hidden_layers"],
            "llama.embedding_length": c["hidden_size"], "llama.feed_forward_length": c["intermediate_size"],
            "llama.context_length": c["max_position_embeddings"], "llama.attention.head_count": c["num_attention_heads"],
            "llama.attention.head_count_kv": c["num_key_value_heads"], "llama.expert_count": c["num_local_experts"],
            "llama.expert_used_count": c["num_experts_per_tok"], "llama.vocab_size": c["vocab_size"],
            "general.file_type": 17}


def deepseek_r1_metadata(absorbed_mla: bool) -> dict:
    """deepseek-ai/DeepSeek-R1 as llama.cpp writes it (arch deepseek2), before and after absorbed MLA."""
    c = load_fixture_json("deepseek-ai__DeepSeek-R1", "config.json")
    a = "deepseek2."
    key_len, rope = c["qk_nope_head_dim"] + c["qk_rope_head_dim"], c["qk_rope_head_dim"]
    md = {"general.architecture": "deepseek2", a + "block_count": c["num_hidden_layers"],
          a + "embedding_length": c["hidden_size"], a + "feed_forward_length": c["intermediate_size"],
          a + "context_length": c["max_position_embeddings"], a + "attention.head_count": c["num_attention_heads"],
          a + "attention.q_lora_rank": c["q_lora_rank"], a + "attention.kv_lora_rank": c["kv_lora_rank"],
          a + "rope.dimension_count": rope, a + "expert_count": c["n_routed_experts"],
          a + "expert_used_count": c["num_experts_per_tok"], a + "expert_shared_count": c["n_shared_experts"],
          a + "expert_feed_forward_length": c["moe_intermediate_size"],
          a + "leading_dense_block_count": c["first_k_dense_replace"], a + "expert_gating_func": 2,
          a + "nextn_predict_layers": c["num_nextn_predict_layers"], a + "vocab_size": c["vocab_size"]}
    if absorbed_mla:  # one latent "head" of kv_lora_rank + rope; the per-head sizes move to *_mla
        md.update({a + "attention.head_count_kv": 1, a + "attention.key_length": c["kv_lora_rank"] + rope,
                   a + "attention.value_length": c["kv_lora_rank"], a + "attention.key_length_mla": key_len,
                   a + "attention.value_length_mla": c["v_head_dim"]})
    else:
        md.update({a + "attention.head_count_kv": c["num_key_value_heads"], a + "attention.key_length": key_len,
                   a + "attention.value_length": c["v_head_dim"]})
    return md


def jamba_metadata() -> dict:
    """ai21labs/AI21-Jamba-1.5-Mini as llama.cpp's jamba converter writes it: 0 KV heads on Mamba layers."""
    c = config_json("ai21labs__AI21-Jamba-1.5-Mini")
    kv = [c["num_key_value_heads"] if i % c["attn_layer_period"] == c["attn_layer_offset"] else 0
          for i in range(c["num_hidden_layers"])]
    return {"general.architecture": "jamba", "jamba.block_count": c["num_hidden_layers"],
            "jamba.embedding_length": c["hidden_size"], "jamba.feed_forward_length": c["intermediate_size"],
            "jamba.attention.head_count": c["num_attention_heads"], "jamba.attention.head_count_kv": kv,
            "jamba.ssm.conv_kernel": c["mamba_d_conv"], "jamba.ssm.state_size": c["mamba_d_state"],
            "jamba.ssm.inner_size": c["mamba_expand"] * c["hidden_size"], "jamba.ssm.time_step_rank": c["mamba_dt_rank"],
            "jamba.expert_count": c["num_experts"], "jamba.expert_used_count": c["num_experts_per_tok"],
            "jamba.vocab_size": c["vocab_size"]}


def falcon_mamba_metadata() -> dict:
    """tiiuae/falcon-mamba-7b as llama.cpp's mamba converter writes it (no attention, no FFN: zeros)."""
    c = config_json("tiiuae__falcon-mamba-7b")
    return {"general.architecture": "mamba", "mamba.block_count": c["num_hidden_layers"],
            "mamba.embedding_length": c["hidden_size"], "mamba.feed_forward_length": 0,
            "mamba.attention.head_count": 0, "mamba.ssm.conv_kernel": c["conv_kernel"],
            "mamba.ssm.inner_size": c["intermediate_size"], "mamba.ssm.state_size": c["state_size"],
            "mamba.ssm.time_step_rank": c["time_step_rank"], "mamba.vocab_size": c["vocab_size"]}


_R1 = load_fixture_json("deepseek-ai__DeepSeek-R1", "config.json")
_R1_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
            "q_lora_rank", "kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "moe_intermediate_size",
            "n_shared_experts", "first_k_dense_replace", "num_nextn_predict_layers", "vocab_size", "model_type",
            "max_position_embeddings")
_JAMBA = config_json("ai21labs__AI21-Jamba-1.5-Mini")
_FALCON = config_json("tiiuae__falcon-mamba-7b")


@pytest.mark.parametrize(("metadata", "expected"), [
    (mixtral_metadata(), {k: load_fixture_json("mistralai__Mixtral-8x7B-v0.1", "config.json")[k] for k in (
        "num_hidden_layers", "hidden_size", "intermediate_size", "max_position_embeddings", "num_attention_heads",
        "num_key_value_heads", "num_local_experts", "num_experts_per_tok", "vocab_size", "model_type")}
     | {"gguf_file_type": "Q5_K_M"}),
    (deepseek_r1_metadata(absorbed_mla=False), {k: _R1[k] for k in _R1_KEYS} | {"num_local_experts": 256}),
    (deepseek_r1_metadata(absorbed_mla=True), {k: _R1[k] for k in _R1_KEYS} | {"num_experts_per_tok": 8}),
    (jamba_metadata(), {"model_type": "jamba", "num_key_value_heads": 8, "num_attention_heads": 32,
                        "intermediate_size": _JAMBA["intermediate_size"], "state_size": 16, "conv_kernel": 4,
                        "expand": _JAMBA["mamba_expand"], "num_local_experts": 16,
                        "layer_types": ["full_attention" if i % 8 == 4 else "mamba" for i in range(32)]}),
    (falcon_mamba_metadata(), {k: _FALCON[k] for k in ("num_hidden_layers", "hidden_size", "intermediate_size",
                                                       "state_size", "conv_kernel", "time_step_rank", "vocab_size")}
     | {"model_type": "mamba", "expand": _FALCON["intermediate_size"] // _FALCON["hidden_size"]}),
])  # fmt: skip
def test_gguf_config(metadata, expected):
    config = gguf_config(metadata)
    assert {k: config.get(k) for k in expected} == expected


def test_gguf_config_leaves_out_what_does_not_apply():
    mamba = gguf_config(falcon_mamba_metadata())
    assert "num_attention_heads" not in mamba and "head_dim" not in mamba
    assert "head_dim" not in gguf_config(deepseek_r1_metadata(absorbed_mla=True))


@pytest.mark.parametrize(("metadata", "message"), [
    ({}, "'general.architecture' is missing"),
    ({"general.architecture": "llama", "llama.block_count": "32"}, "'llama.block_count' must be a non-negative integer"),
    ({"general.architecture": "llama", "llama.embedding_length": [4096, 4096]}, "'llama.embedding_length' must be a single integer"),
    ({"general.architecture": "llama", "llama.attention.head_count_kv": [8, -1]}, "'llama.attention.head_count_kv' must be"),
])  # fmt: skip
def test_gguf_config_errors(metadata, message):
    with pytest.raises(BadConfig, match=f"^x.gguf: field {message}"):
        gguf_config(metadata, "x.gguf")


# --- repo file names ----------------------------------------------------------------------------------

def test_group_gguf_files():
    names = [
        "README.md", "llama-2-7b.Q4_K_M.gguf", "llama-2-7b.Q8_0.gguf",
        "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00002-of-00003.gguf",
        "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf",
        "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00003-of-00003.gguf",
    ]
    assert group_gguf_files(names) == {
        "DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S.gguf": tuple(sorted(names[3:])),
        "llama-2-7b.Q4_K_M.gguf": ("llama-2-7b.Q4_K_M.gguf",),
        "llama-2-7b.Q8_0.gguf": ("llama-2-7b.Q8_0.gguf",),
    }


@pytest.mark.parametrize(("filename", "label"), [
    ("llama-2-7b.Q4_K_M.gguf", "Q4_K_M"),
    ("Meta-Llama-3.1-8B-Instruct-IQ4_XS.gguf", "IQ4_XS"),
    ("qwen2.5-7b-instruct-q4_k_m-00001-of-00002.gguf", "Q4_K_M"),
    ("DeepSeek-R1-UD-IQ1_S/DeepSeek-R1-UD-IQ1_S-00001-of-00003.gguf", "IQ1_S"),
    ("Qwen3-30B-A3B-UD-Q4_K_XL.gguf", "Q4_K_XL"),
    ("gemma-3-4b-it-qat-q4_0.gguf", "Q4_0"),
    ("mmproj-model-f16.gguf", "F16"),
    ("Llama-3.2-1B-Instruct-BF16.gguf", "BF16"),
    ("phi-2.Q4_0_4_4.gguf", "Q4_0_4_4"),
    ("gpt-oss-20b-MXFP4.gguf", "MXFP4"),
    ("tinyllama-1.1b-chat-v1.0.fp16.gguf", "F16"),
    ("model.gguf", None),
])  # fmt: skip
def test_variant_label(filename, label):
    assert variant_label(filename) == label
