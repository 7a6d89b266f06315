"""Pure reader of GGUF v2/v3 headers (metadata + tensor infos), and helpers for GGUF repos.

Format (ggml docs/gguf.md): magic "GGUF", uint32 version, uint64 tensor count, uint64 metadata
count, the metadata key/values, one info per tensor (name, n_dims, dims innermost first, ggml type,
offset into the data section), then padding to `general.alignment` (default 32) and the data.
Version 3 differs from 2 only in allowing big-endian files; version 1 used 32-bit counts.
"""

from __future__ import annotations

import math
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from ..errors import BadConfig, BadHeader
from .types import TensorInfo

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
# A header whose smallest possible size exceeds this is hostile (real ones, tokenizer included, are a few MB).
HEADER_SIZE_CAP = 256 * 1024 * 1024
# Arrays longer than this keep only their type and length (tokenizer.ggml.tokens has 32k-256k entries)...
ARRAY_KEEP = 64
# ...except numeric arrays outside tokenizer.*: per-layer hyper-parameters (head_count_kv of a hybrid).
NUMERIC_ARRAY_KEEP = 1024
_MAX_ARRAY_NESTING = 8
_MIN_KV_BYTES = 8 + 4 + 1  # key length, value type, smallest value
_MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8  # name length, n_dims, type, offset
# What a tensor info takes in practice (a ~30-character name, 2-3 dimensions): sizes the next read, so that a
# header whose tokenizer ran past the first read is usually complete after the second.
_TYPICAL_TENSOR_INFO_BYTES = 72


@dataclass(frozen=True, slots=True)
class GGMLType:
    """One ggml tensor type: elements per block and bytes per block."""

    name: str
    block_size: int
    type_size: int


# ggml_type ids -> layout, from ggml.h / ggml.c type_traits (and gguf-py GGML_QUANT_SIZES).
GGML_TYPES: dict[int, GGMLType] = {
    0: GGMLType("F32", 1, 4), 1: GGMLType("F16", 1, 2),
    2: GGMLType("Q4_0", 32, 18), 3: GGMLType("Q4_1", 32, 20),
    6: GGMLType("Q5_0", 32, 22), 7: GGMLType("Q5_1", 32, 24),
    8: GGMLType("Q8_0", 32, 34), 9: GGMLType("Q8_1", 32, 40),
    10: GGMLType("Q2_K", 256, 84), 11: GGMLType("Q3_K", 256, 110), 12: GGMLType("Q4_K", 256, 144),
    13: GGMLType("Q5_K", 256, 176), 14: GGMLType("Q6_K", 256, 210), 15: GGMLType("Q8_K", 256, 292),
    16: GGMLType("IQ2_XXS", 256, 66), 17: GGMLType("IQ2_XS", 256, 74), 18: GGMLType("IQ3_XXS", 256, 98),
    19: GGMLType("IQ1_S", 256, 50), 20: GGMLType("IQ4_NL", 32, 18), 21: GGMLType("IQ3_S", 256, 110),
    22: GGMLType("IQ2_S", 256, 82), 23: GGMLType("IQ4_XS", 256, 136),
    24: GGMLType("I8", 1, 1), 25: GGMLType("I16", 1, 2), 26: GGMLType("I32", 1, 4),
    27: GGMLType("I64", 1, 8), 28: GGMLType("F64", 1, 8),
    29: GGMLType("IQ1_M", 256, 56), 30: GGMLType("BF16", 1, 2),
    # 31-33 and 36-38: interleaved Q4_0 / IQ4_NL layouts, removed from ggml in late 2024 but still in
    # files published before; same blocks as Q4_0 / IQ4_NL.
    31: GGMLType("Q4_0_4_4", 32, 18), 32: GGMLType("Q4_0_4_8", 32, 18), 33: GGMLType("Q4_0_8_8", 32, 18),
    34: GGMLType("TQ1_0", 256, 54), 35: GGMLType("TQ2_0", 256, 66),
    36: GGMLType("IQ4_NL_4_4", 32, 18), 37: GGMLType("IQ4_NL_4_8", 32, 18), 38: GGMLType("IQ4_NL_8_8", 32, 18),
    39: GGMLType("MXFP4", 32, 17), 40: GGMLType("NVFP4", 64, 36), 41: GGMLType("Q1_0", 128, 18),
}  # fmt: skip

# general.file_type (llama_ftype in llama.h) -> the label quantizers put in file names.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 4: "Q4_1_SOME_F16", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS",
    24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS",
    31: "IQ1_M", 32: "BF16", 33: "Q4_0_4_4", 34: "Q4_0_4_8", 35: "Q4_0_8_8", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4_MOE", 39: "NVFP4", 40: "Q1_0",
}  # fmt: skip

# GGUF metadata value types: id -> (name, struct format or None for string/array).
_VALUE_TYPES: dict[int, tuple[str, str | None]] = {
    0: ("uint8", "B"), 1: ("int8", "b"), 2: ("uint16", "H"), 3: ("int16", "h"), 4: ("uint32", "I"),
    5: ("int32", "i"), 6: ("float32", "f"), 7: ("bool", "?"), 8: ("string", None), 9: ("array", None),
    10: ("uint64", "Q"), 11: ("int64", "q"), 12: ("float64", "d"),
}  # fmt: skip
_STRING, _ARRAY = 8, 9


class IncompleteGGUF(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The bytes end before the header does: read at least `needed_at_least` bytes and parse again."""

    def __init__(self, needed_at_least: int) -> None:
        super().__init__(f"the GGUF header needs at least {needed_at_least:,} bytes")
        self.needed_at_least = needed_at_least


@dataclass(frozen=True, slots=True)
class ArraySummary:
    """A metadata array too long to keep: its element type and length only."""

    type: str
    length: int


@dataclass(frozen=True, slots=True)
class GGUFHeader:
    """A parsed GGUF header; tensors of ggml types gpumem does not know are left out and counted."""

    file: str
    version: int
    metadata: dict[str, object]
    tensors: tuple[TensorInfo, ...]
    header_bytes: int  # where the data section starts
    alignment: int = DEFAULT_ALIGNMENT
    unknown_types: tuple[int, ...] = ()  # ggml type ids of the left-out tensors
    unknown_tensors: int = 0  # how many tensors were left out

    @property
    def parameters(self) -> int:
        """Elements of every known tensor (GGUF stores each weight once, quantized or not)."""
        return sum(t.numel for t in self.tensors)

    @property
    def stored_elements(self) -> dict[str, int]:
        """Elements per ggml type name."""
        counts: Counter[str] = Counter()
        for t in self.tensors:
            counts[t.dtype] += t.numel
        return dict(counts)

    @property
    def weight_bytes(self) -> int:
        """Exact bytes of every known tensor (padding between tensors excluded)."""
        return sum(t.nbytes for t in self.tensors)


class _Cursor:
    """Bounds-checked reads over the bytes at hand; past them, IncompleteGGUF or BadHeader."""

    __slots__ = ("data", "pos", "file", "file_size", "limit", "order")

    def __init__(self, data: bytes, file: str, file_size: int | None) -> None:
        self.data, self.pos, self.file, self.file_size = data, 0, file, file_size
        self.limit = HEADER_SIZE_CAP if file_size is None else min(file_size, HEADER_SIZE_CAP)
        self.order = "<"

    def bad(self, message: str) -> BadHeader:
        return BadHeader(f"{self.file}: {message}")

    def room(self, needed: int, what: str) -> None:
        """Refuse `what` when `needed` more bytes cannot exist; ask for more when they are not here yet."""
        stop = self.pos + needed
        if stop > self.limit:
            where = (f"past the end of the {self.file_size:,}-byte file" if self.limit == self.file_size
                     else f"beyond the {HEADER_SIZE_CAP:,}-byte header cap")
            raise self.bad(f"{what} needs {needed:,} bytes from byte {self.pos:,}, {where}")
        if stop > len(self.data):
            raise IncompleteGGUF(stop)

    def take(self, size: int, what: str) -> int:
        self.room(size, what)
        start = self.pos
        self.pos += size
        return start

    def scalar(self, fmt: str, what: str):
        size = struct.calcsize(fmt)
        return struct.unpack_from(self.order + fmt, self.data, self.take(size, what))[0]

    def u32(self, what: str) -> int:
        return self.scalar("I", what)

    def u64(self, what: str) -> int:
        return self.scalar("Q", what)

    def raw_string(self, what: str) -> bytes:
        length = self.u64(what)
        start = self.take(length, what)
        return self.data[start:self.pos]

    def text(self, what: str) -> str:
        try:
            return self.raw_string(what).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.bad(f"{what} is not valid UTF-8 (byte {exc.start})") from None

    def count(self, count: int, min_bytes: int, what: str) -> None:
        """Refuse a count whose items cannot fit in what remains of the file (or the cap)."""
        if count * min_bytes > self.limit - self.pos:
            raise self.bad(f"{what} count {count:,} cannot fit in the {self.limit - self.pos:,} bytes that remain")


def parse_gguf(data: bytes, file: str, file_size: int | None = None) -> GGUFHeader:
    """Parse a GGUF header from the file's first bytes; IncompleteGGUF when more bytes are needed.

    `file_size`, when known, bounds every count, string and tensor extent. Errors are BadHeader
    naming `file` and the field or tensor.
    """
    cur = _Cursor(bytes(data), file, file_size)
    try:
        version, n_tensors, n_kv = _read_preamble(cur)
        metadata = _read_metadata(cur, n_kv, n_tensors)
        alignment = _alignment(cur, metadata)
        infos = _read_tensor_infos(cur, n_tensors)
    except IncompleteGGUF as more:
        # "Or double": few round trips even when the estimate is low; never past what can exist.
        raise IncompleteGGUF(min(max(more.needed_at_least, 2 * len(data)), cur.limit)) from None
    header_bytes = -(-cur.pos // alignment) * alignment
    tensors, unknown = _tensors(cur, infos, alignment, header_bytes)
    return GGUFHeader(file, version, metadata, tensors, header_bytes, alignment,
                      tuple(sorted(set(unknown))), len(unknown))


def _read_preamble(cur: _Cursor) -> tuple[int, int, int]:
    head = cur.data[:4]
    if head != MAGIC[: len(head)]:
        raise cur.bad(f"not a GGUF file (starts with {head!r}, expected {MAGIC!r})")
    cur.take(4, "magic")
    version = cur.u32("version")
    if version & 0xFFFF == 0:  # written big-endian (GGUF v3 allows it): the version reads byte-swapped
        cur.order, version = ">", int.from_bytes(version.to_bytes(4, "little"), "big")
    if version == 1:
        raise cur.bad("GGUF version 1 is not supported (re-convert the model with a current llama.cpp)")
    if version not in (2, 3):
        raise cur.bad(f"unsupported GGUF version {version} (gpumem reads versions 2 and 3)")
    n_tensors = cur.u64("tensor_count")
    n_kv = cur.u64("metadata_kv_count")
    cur.count(n_kv, _MIN_KV_BYTES, "metadata_kv")
    cur.count(n_tensors, _MIN_TENSOR_INFO_BYTES, "tensor")
    return version, n_tensors, n_kv


def _read_metadata(cur: _Cursor, n_kv: int, n_tensors: int) -> dict[str, object]:
    metadata: dict[str, object] = {}
    for index in range(n_kv):
        try:
            key = cur.text(f"metadata key #{index}")
            if key in metadata:
                raise cur.bad(f"metadata key '{key}' appears twice")
            kind = cur.u32(f"metadata '{key}' value type")
            metadata[key] = _read_value(cur, kind, key, 0)
        except IncompleteGGUF as more:  # the keys and tensor infos still to come need at least this
            rest = (n_kv - index - 1) * _MIN_KV_BYTES + n_tensors * _TYPICAL_TENSOR_INFO_BYTES
            raise IncompleteGGUF(more.needed_at_least + rest) from None
    return metadata


def _read_value(cur: _Cursor, kind: int, key: str, depth: int):
    if kind not in _VALUE_TYPES:
        raise cur.bad(f"metadata '{key}' has unknown value type {kind}")
    if kind == _STRING:
        return cur.raw_string(f"metadata '{key}'").decode("utf-8", errors="replace")
    if kind == _ARRAY:
        return _read_array(cur, key, depth + 1)
    fmt = _VALUE_TYPES[kind][1]
    assert fmt is not None  # strings and arrays returned above
    return cur.scalar(fmt, f"metadata '{key}'")


def _read_array(cur: _Cursor, key: str, depth: int):
    if depth > _MAX_ARRAY_NESTING:
        raise cur.bad(f"metadata '{key}' nests arrays deeper than {_MAX_ARRAY_NESTING} levels")
    kind = cur.u32(f"metadata '{key}' array type")
    length = cur.u64(f"metadata '{key}' array length")
    if kind not in _VALUE_TYPES:
        raise cur.bad(f"metadata '{key}' array has unknown element type {kind}")
    name, fmt = _VALUE_TYPES[kind]
    if fmt is not None:  # fixed-size elements: one bounds check, one unpack or a skip
        size = struct.calcsize(fmt)
        cur.count(length, size, f"metadata '{key}' array")
        start = cur.take(length * size, f"metadata '{key}' array of {length:,} {name}")
        # tokenizer scores/types are vocabulary-long; per-layer numbers elsewhere are worth keeping
        if length > (ARRAY_KEEP if key.startswith("tokenizer.") else NUMERIC_ARRAY_KEEP):
            return ArraySummary(name, length)
        return list(struct.unpack_from(f"{cur.order}{length}{fmt}", cur.data, start))
    cur.count(length, 8 if kind == _STRING else 12, f"metadata '{key}' array")
    keep = length <= ARRAY_KEEP
    values, start = [], cur.pos
    for index in range(length):
        try:
            if kind == _STRING:
                raw = cur.raw_string(f"metadata '{key}' string #{index}")
                if keep:
                    values.append(raw.decode("utf-8", errors="replace"))
            else:
                value = _read_array(cur, key, depth + 1)
                if keep:
                    values.append(value)
        except IncompleteGGUF as more:  # extrapolate the array's end from the elements read so far
            per_item = (cur.pos - start) / index if index else 8
            raise IncompleteGGUF(max(more.needed_at_least, start + math.ceil(per_item * length))) from None
    return values if keep else ArraySummary(name, length)


def _alignment(cur: _Cursor, metadata: dict[str, object]) -> int:
    value = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value & (value - 1):
        raise cur.bad(f"metadata 'general.alignment' must be a positive power of two, got {value!r}")
    return value


def _read_tensor_infos(cur: _Cursor, n_tensors: int) -> list[tuple[str, tuple[int, ...], int, int]]:
    infos, names, start = [], set(), cur.pos
    for index in range(n_tensors):
        try:
            name = cur.text(f"tensor #{index} name")
            if name in names:
                raise cur.bad(f"tensor '{name}' appears twice")
            names.add(name)
            n_dims = cur.u32(f"tensor '{name}' n_dims")
            if n_dims > MAX_DIMS:
                raise cur.bad(f"tensor '{name}' has {n_dims} dimensions (at most {MAX_DIMS})")
            dims = tuple(cur.u64(f"tensor '{name}' dimensions") for _ in range(n_dims))
            kind = cur.u32(f"tensor '{name}' type")
            offset = cur.u64(f"tensor '{name}' offset")
        except IncompleteGGUF as more:
            per_item = max((cur.pos - start) / index if index else 0, _MIN_TENSOR_INFO_BYTES + 8)
            raise IncompleteGGUF(max(more.needed_at_least, start + math.ceil(per_item * n_tensors))) from None
        infos.append((name, dims, kind, offset))
    return infos


def _tensors(cur: _Cursor, infos: list, alignment: int,
             header_bytes: int) -> tuple[tuple[TensorInfo, ...], list[int]]:
    """TensorInfo per known-type tensor (shape reversed to PyTorch order), with extent checks."""
    tensors, unknown, extents = [], [], []
    for name, dims, kind, offset in infos:
        numel = math.prod(dims)
        if any(d >= 2**63 for d in dims) or numel >= 2**63:  # ggml keeps dims and sizes in int64
            raise cur.bad(f"tensor '{name}' has absurd dimensions {list(dims)}")
        if offset % alignment:
            raise cur.bad(f"tensor '{name}' offset {offset:,} is not a multiple of the {alignment}-byte alignment")
        ggml = GGML_TYPES.get(kind)
        if ggml is None:
            unknown.append(kind)
            continue
        ne0 = dims[0] if dims else 1
        if ne0 % ggml.block_size:
            raise cur.bad(f"tensor '{name}' first dimension {ne0:,} is not a multiple of the "
                          f"{ggml.name} block size {ggml.block_size}")
        nbytes = numel // ggml.block_size * ggml.type_size
        if cur.file_size is not None and header_bytes + offset + nbytes > cur.file_size:
            raise cur.bad(f"tensor '{name}' data (bytes {offset:,}+{nbytes:,} of the data section at "
                          f"{header_bytes:,}) runs past the end of the {cur.file_size:,}-byte file")
        extents.append((offset, offset + nbytes, name))
        tensors.append(TensorInfo(name, ggml.name, tuple(reversed(dims)), nbytes, cur.file))
    extents.sort()
    for (_, end, before), (begin, _, name) in zip(extents, extents[1:]):
        if begin < end:
            raise cur.bad(f"tensor '{name}' data at offset {begin:,} overlaps tensor '{before}' (ends at {end:,})")
    return tuple(tensors), unknown


# --- GGUF metadata -> config.json keys -------------------------------------------------------------

# GGUF architecture names whose Hugging Face model_type is spelled differently.
_MODEL_TYPES = {
    "qwen2moe": "qwen2_moe", "qwen3moe": "qwen3_moe", "gptneox": "gpt_neox", "command-r": "cohere",
    "phi2": "phi", "gpt-oss": "gpt_oss", "glm4moe": "glm4_moe", "falcon-h1": "falcon_h1",
    "granitehybrid": "granitemoehybrid", "t5encoder": "t5", "nomic-bert": "nomic_bert",
}  # fmt: skip

# Hugging Face config key <- GGUF key suffix after "{arch}.", for plain integer values.
_CONFIG_INTS = (
    ("num_hidden_layers", "block_count"),
    ("hidden_size", "embedding_length"),
    ("max_position_embeddings", "context_length"),
    ("vocab_size", "vocab_size"),
    ("num_local_experts", "expert_count"),
    ("num_experts_per_tok", "expert_used_count"),
    ("moe_intermediate_size", "expert_feed_forward_length"),
    ("shared_expert_intermediate_size", "expert_shared_feed_forward_length"),
    ("n_shared_experts", "expert_shared_count"),
    ("first_k_dense_replace", "leading_dense_block_count"),
    ("num_nextn_predict_layers", "nextn_predict_layers"),
    ("sliding_window", "attention.sliding_window"),
    ("q_lora_rank", "attention.q_lora_rank"),
    ("kv_lora_rank", "attention.kv_lora_rank"),
)


def gguf_config(metadata: Mapping[str, object], file: str = "GGUF metadata") -> dict[str, object]:
    """Translate GGUF architecture metadata into config.json key names (model_type, hidden_size, ...)."""
    arch = metadata.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise BadConfig(f"{file}: field 'general.architecture' is missing")

    def get(suffix: str) -> int | None:
        key = f"{arch}.{suffix}"
        value = _config_ints(metadata.get(key), file, key)
        if isinstance(value, list):
            raise BadConfig(f"{file}: field '{key}' must be a single integer, got a list of {len(value)}")
        return value

    config: dict[str, object] = {"model_type": _model_type(arch, metadata), "gguf_architecture": arch}
    for hf_key, suffix in _CONFIG_INTS:
        if (value := get(suffix)) is not None:
            config[hf_key] = value
    _per_layer(config, metadata, file, arch)
    _head_dims(config, get)
    _ssm(config, get)
    if "vocab_size" not in config:
        tokens = metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, ArraySummary | list):
            config["vocab_size"] = tokens.length if isinstance(tokens, ArraySummary) else len(tokens)
    if isinstance(name := metadata.get("general.name"), str):
        config["gguf_name"] = name
    file_type = metadata.get("general.file_type")
    if isinstance(file_type, int) and file_type in FILE_TYPES:
        config["gguf_file_type"] = FILE_TYPES[file_type]
    return config


def _model_type(arch: str, metadata: Mapping[str, object]) -> str:
    if arch == "deepseek2":  # V2 and V3/R1 share the GGUF architecture; V3 gates experts with a sigmoid (2)
        return "deepseek_v3" if metadata.get("deepseek2.expert_gating_func") == 2 else "deepseek_v2"
    if arch == "llama" and metadata.get("llama.expert_count"):  # llama.cpp converts Mixtral as llama
        return "mixtral"
    return _MODEL_TYPES.get(arch, arch)


def _config_ints(value: object, file: str, key: str) -> int | list[int] | None:
    """A count as int, a per-layer array as a list of ints, None when absent; BadConfig otherwise."""
    if value is None or isinstance(value, ArraySummary):
        return None
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in items):
        raise BadConfig(f"{file}: field '{key}' must be a non-negative integer (or one per layer), got {value!r}")
    return cast("int | list[int]", value)


def _per_layer(config: dict, metadata: Mapping[str, object], file: str, arch: str) -> None:
    """Head counts and FFN width may be one value per layer: keep the widest, the list, and the layer kinds."""
    lists: dict[str, list[int]] = {}
    for hf_key, suffix in (("num_attention_heads", "attention.head_count"),
                           ("num_key_value_heads", "attention.head_count_kv"),
                           ("intermediate_size", "feed_forward_length")):
        value = _config_ints(metadata.get(f"{arch}.{suffix}"), file, f"{arch}.{suffix}")
        if isinstance(value, list):
            lists[hf_key] = config[f"{hf_key}_per_layer"] = value
            value = max(value, default=0)
        if value:  # llama.cpp writes 0 where a number does not apply (Mamba's heads and FFN)
            config[hf_key] = value
    if "num_attention_heads" in config and "num_key_value_heads" not in config:
        config["num_key_value_heads"] = config["num_attention_heads"]  # llama.cpp's default
    pattern = metadata.get(f"{arch}.attention.sliding_window_pattern")
    if isinstance(pattern, int) and not isinstance(pattern, bool):
        config["sliding_window_pattern"] = pattern  # every n-th layer is global
    sliding = pattern if isinstance(pattern, list) else []
    kv_heads = lists.get("num_key_value_heads", [])
    if 0 in kv_heads or sliding:  # a layer without KV heads is recurrent (Mamba); True marks a sliding layer
        config["layer_types"] = [
            "mamba" if i < len(kv_heads) and kv_heads[i] == 0
            else "sliding_attention" if i < len(sliding) and sliding[i] else "full_attention"
            for i in range(max(len(kv_heads), len(sliding)))
        ]


def _head_dims(config: dict, get) -> None:
    key_len = get("attention.key_length_mla") or get("attention.key_length")
    value_len = get("attention.value_length_mla") or get("attention.value_length")
    if config.get("kv_lora_rank"):  # MLA: keys are a no-rope part plus a rope part
        if get("attention.key_length_mla") is not None and "num_attention_heads" in config:
            # the absorbed-MLA layout stores one shared latent "KV head"; config.json counts every head
            config["num_key_value_heads"] = config["num_attention_heads"]
        rope = get("rope.dimension_count")
        if rope is not None:
            config["qk_rope_head_dim"] = rope
            if key_len is not None:
                config["qk_nope_head_dim"] = key_len - rope
        if value_len is not None:
            config["v_head_dim"] = value_len
        return
    if key_len is not None:
        config["head_dim"] = key_len
        if value_len is not None and value_len != key_len:
            config["v_head_dim"] = value_len


def _ssm(config: dict, get) -> None:
    """Mamba-1/2 state shapes under the Hugging Face Mamba key names."""
    inner, state, conv = get("ssm.inner_size"), get("ssm.state_size"), get("ssm.conv_kernel")
    if inner is None and state is None:
        return
    for hf_key, value in (("state_size", state), ("conv_kernel", conv), ("time_step_rank", get("ssm.time_step_rank"))):
        if value is not None:
            config[hf_key] = value
    hidden = config.get("hidden_size")
    if inner and hidden and inner % hidden == 0:
        config["expand"] = inner // hidden
    if not config.get("intermediate_size") and inner:
        config["intermediate_size"] = inner  # pure Mamba: the mixer width (HF MambaConfig does the same)
    groups, heads = get("ssm.group_count"), get("ssm.time_step_rank")
    if groups is not None and heads and inner:  # Mamba-2: one dt per head, B/C per group
        config.update(mamba_n_groups=groups, mamba_n_heads=heads, mamba_head_dim=inner // heads)


# --- GGUF repos: variants and their labels ---------------------------------------------------------

_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<part>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
_LABEL = re.compile(
    r"(?<![A-Za-z0-9])("
    r"IQ[1-4]_(?:XXS|XS|NL|S|M)|Q[1-8]_K(?:_(?:XL|S|M|L))?|Q[1-8]_[01](?:_[48]_[48])?|TQ[12]_0"
    r"|MXFP4(?:_MOE)?|NVFP4|BF16|FP16|F16|FP32|F32"
    r")(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def group_gguf_files(filenames: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Group .gguf paths into variants: `NAME-0000k-of-0000n.gguf` parts join under `NAME.gguf`, in order."""
    groups: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for path in filenames:
        if not path.lower().endswith(".gguf"):
            continue
        match = _SPLIT.match(path)
        if match:
            groups[match["stem"] + path[-5:]].append((int(match["part"]), path))
        else:
            groups[path].append((0, path))
    return {key: tuple(path for _, path in sorted(parts)) for key, parts in sorted(groups.items())}


def variant_label(filename: str) -> str | None:
    """The quantization label in a GGUF file name (Q4_K_M, IQ4_XS, BF16, ...), upper-cased; None if absent."""
    name = filename.rsplit("/", 1)[-1]
    if match := _SPLIT.match(name):
        name = match["stem"]
    labels = _LABEL.findall(name)
    if not labels:
        return None
    label = labels[-1].upper()
    return {"FP16": "F16", "FP32": "F32"}.get(label, label)
