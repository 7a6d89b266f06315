"""The safetensors header parser: real files, every validation rule, and fuzzing."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

from gpumem.errors import BadHeader, GpumemError
from gpumem.model.safetensors_header import DTYPE_BITS, HEADER_SIZE_CAP, parse_header


def header_bytes(entries: dict, pad: bool = True) -> bytes:
    text = json.dumps(entries, separators=(",", ":"))
    if pad:
        text += " " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text.encode()


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_parses_a_file_written_by_the_reference_implementation():
    data = save({"b": np.zeros((3, 5), dtype=np.float16), "a": np.ones((2,), dtype=np.float32)},
                metadata={"format": "pt"})
    header = parse_header(data, "model.safetensors", file_size=len(data))
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in header.tensors] == [
        ("a", "F32", (2,), 8), ("b", "F16", (3, 5), 30)]  # data order: safetensors sorts by dtype alignment, then name
    assert header.metadata == {"format": "pt"}
    assert 8 + header.header_size + 38 == len(data)  # the header, then the tensors' 38 bytes


def test_every_listed_dtype_is_known_with_its_width():
    assert DTYPE_BITS["F4"] == 4 and DTYPE_BITS["F6_E2M3"] == 6 and DTYPE_BITS["F8_E8M0"] == 8
    assert DTYPE_BITS["BOOL"] == 8 and DTYPE_BITS["C64"] == 64
    assert len(DTYPE_BITS) == 22


def test_sub_byte_dtypes_use_exact_bit_arithmetic():
    data = header_bytes({"w": entry("F4", [4, 6], 0, 12), "x": entry("F6_E3M2", [4, 4], 12, 24)})
    header = parse_header(data, "f.safetensors")
    assert [t.nbytes for t in header.tensors] == [12, 12]  # 24 x 4 bits, 16 x 6 bits


def test_unknown_future_dtype_is_kept_not_fatal():
    data = header_bytes({"w": entry("F3_NEW", [10], 0, 4), "x": entry("BF16", [2], 4, 8)})
    header = parse_header(data, "f.safetensors")
    assert header.unknown_types == ("F3_NEW",)
    assert [t.nbytes for t in header.tensors] == [4, 4]


BAD_HEADERS = [
    (b"\x01\x02", "too short"),
    (struct.pack("<Q", HEADER_SIZE_CAP + 1), "exceeds"),
    (struct.pack("<Q", 100) + b"{}", "only 2"),
    (struct.pack("<Q", 4) + b"\xff\xfe{}", "UTF-8"),
    (header_bytes([1, 2]), "JSON list, not an object"),  # type: ignore[arg-type]
    (struct.pack("<Q", 5) + b"{oops", "not valid JSON"),
    (header_bytes({"a": "x"}), "not an object"),
    (header_bytes({"a": {"shape": [1], "data_offsets": [0, 2]}}), "no dtype"),
    (header_bytes({"a": entry("F16", [-1], 0, 2)}), "invalid shape"),
    (header_bytes({"a": entry("F16", [1.5], 0, 2)}), "invalid shape"),
    (header_bytes({"a": entry("F16", [True], 0, 2)}), "invalid shape"),
    (header_bytes({"a": {"dtype": "F16", "shape": [1], "data_offsets": [0]}}), "invalid data_offsets"),
    (header_bytes({"a": entry("F16", [1], 4, 2)}), "before it begins"),
    (header_bytes({"a": entry("F16", [2], 0, 2)}), "needs 4"),
    (header_bytes({"a": entry("F16", [1], 0, 2), "b": entry("F16", [1], 1, 3)}), "overlaps"),
    (header_bytes({"a": entry("F16", [1], 0, 2), "b": entry("F16", [1], 4, 6)}), "hole"),
    (header_bytes({"a": entry("F16", [1], 2, 4)}), "hole"),
    (header_bytes({"a": entry("F16", [2**40, 2**40], 0, 2)}), "needs"),
    (header_bytes({"__metadata__": {"k": 1}}), "__metadata__"),
    (struct.pack("<Q", 20_000) + b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
]


@pytest.mark.parametrize(("data", "message"), BAD_HEADERS)
def test_bad_headers_raise_bad_header_naming_the_file(data, message):
    with pytest.raises(BadHeader) as info:
        parse_header(data, "model-00003-of-00015.safetensors")
    assert message in info.value.message
    assert info.value.message.startswith("model-00003-of-00015.safetensors: ")


def test_violation_names_the_tensor():
    with pytest.raises(BadHeader, match="tensor 'layers.0.w'"):
        parse_header(header_bytes({"layers.0.w": entry("BF16", [4], 0, 6)}), "f.safetensors")


@pytest.mark.parametrize(("file_size", "message"), [(10, "runs past the end"), (10_000, "but the file is")])
def test_file_size_is_checked_when_known(file_size, message):
    data = header_bytes({"a": entry("F32", [4], 0, 16)})
    with pytest.raises(BadHeader, match=message):
        parse_header(data, "f.safetensors", file_size=file_size)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_gpumem_errors(data):
    try:
        parse_header(data, "fuzz.safetensors")
    except GpumemError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values | st.fixed_dictionaries(
    {"dtype": st.sampled_from([*DTYPE_BITS, "X9"]), "shape": st.lists(st.integers(-3, 2**66), max_size=4),
     "data_offsets": st.lists(st.integers(-3, 2**66), max_size=3)}), max_size=6))
def test_arbitrary_json_headers_raise_only_gpumem_errors(entries):
    try:
        parse_header(header_bytes(entries), "fuzz.safetensors")
    except GpumemError:
        pass


# -- the fast path for headers laid out as the writers lay them out ------------------------------------------------

def _general(data: bytes, file: str, file_size: int | None = None):
    """The general parser alone (json.loads and a check per entry): what the fast path must agree with."""
    from gpumem.model.safetensors_header import PREFIX_BYTES, _parse_general, read_header_length

    size = read_header_length(data, file)
    end = PREFIX_BYTES + size
    return _parse_general(data[PREFIX_BYTES:end].rstrip(b" "), file, size, end, file_size)


def _outcome(parse, *args):
    try:
        return parse(*args)
    except BadHeader as exc:
        return str(exc)


def test_writer_headers_take_the_fast_path_and_read_as_the_general_parser_reads_them():
    from gpumem.model.safetensors_header import PREFIX_BYTES, _parse_canonical
    from gpumem_dev.fakehub import repo_from_fixture

    saved = save({"b": np.zeros((3, 5), dtype=np.float16), "a": np.ones((2,), dtype=np.float32)},
                 metadata={"format": "pt"})
    files = [("saved.safetensors", saved, len(saved))]
    for fixture in ("openai-community__gpt2", "mistralai__Mixtral-8x7B-v0.1"):
        files += [(p, f.prefix, f.size) for p, f in repo_from_fixture(fixture).files.items() if p.endswith(".safetensors")]
    for path, data, size in files:
        payload = data[PREFIX_BYTES:PREFIX_BYTES + struct.unpack("<Q", data[:PREFIX_BYTES])[0]].rstrip(b" ")
        assert _parse_canonical(payload, path) is not None, path
        assert parse_header(data, path, size) == _general(data, path, size)


def test_one_shape_under_several_dtypes_takes_the_fast_path_with_each_tensors_own_dtype():
    from gpumem.model.safetensors_header import _parse_canonical

    entries = {"a": entry("F32", [2], 0, 8), "b": entry("BF16", [2], 8, 12), "c": entry("F32", [2], 12, 20),
               "d": entry("I8", [2, 3], 20, 26)}
    data = header_bytes(entries, pad=False)
    assert _parse_canonical(data[8:], "f.safetensors") is not None
    header = parse_header(data, "f.safetensors", len(data) + 26)
    assert [(t.name, t.dtype, t.shape, t.nbytes) for t in header.tensors] == [
        ("a", "F32", (2,), 8), ("b", "BF16", (2,), 4), ("c", "F32", (2,), 8), ("d", "I8", (2, 3), 6)]
    assert header == _general(data, "f.safetensors", len(data) + 26)


@pytest.mark.parametrize("text", [
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[12]}}',
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[00,8]}}',  # a leading zero: not JSON
    '{"a":{"dtype":"F32","shape":[02],"data_offsets":[0,8]}}',
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}',  # metadata last
    '{"__metadata__":{"format":"pt"},"__metadata__":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    '{"a\\u0062":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',  # an escape in a name
    '{"a\\"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    '{"__metadata__":{"format":"pt"}',  # no brace left to close the header
    '{"__metadata__":' + '{"k":' * 3000 + '"v"' + '}' * 3001,  # metadata nested past the JSON parser's depth
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}, "b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}',
    '{"a":{"shape":[2],"dtype":"F32","data_offsets":[0,8]}}',  # another key order
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}',
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[],"data_offsets":[8,8]}}',
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[9,17]}}',
    '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',  # the size is not dtype x shape
    '{"a":{"dtype":"F3_NEW","shape":[3],"data_offsets":[0,8]}}',  # an unknown dtype: listed, bytes kept
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}}',  # past 64 bits
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[-0,8]}}',
    '{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}',
    '{"a":{"dtype":"","shape":[1],"data_offsets":[0,4]}}',
    '{"a\\u0001":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    '{"__metadata__":{"format":"pt"},}',
    '{"__metadata__":{"format":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    '{"__metadata__":{"k":"{\\"nested\\": \\"json\\"}"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    '{}',
    '{"__metadata__":{"format":"pt"}}',
    # Not JSON, though cut at its quotes each entry has its ten pieces: one entry's offsets (or shape) hold the
    # next one's, which has none.
    '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},:[2,4]},"b":{"dtype":"U8","shape":[2],"data_offsets""c":'
    '{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}',
    '{"a":{"dtype":"U8","shape":[2],:[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape""data_offsets":[2,4]}}',
])
def test_odd_headers_read_exactly_as_the_general_parser_reads_them(text):
    data = struct.pack("<Q", len(text.encode())) + text.encode()
    for file_size in (None, len(data) + 8, len(data) + 4, len(data)):
        assert _outcome(parse_header, data, "f.safetensors", file_size) == _outcome(_general, data, "f.safetensors",
                                                                                   file_size)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=6), st.sampled_from(["F32", "BF16", "I8", "X9"]),
                          st.lists(st.integers(0, 4), max_size=3), st.integers(0, 3)), max_size=6),
       st.integers(0, 40))
def test_fast_and_general_parsers_agree_on_near_writer_headers(rows, cut):
    text, offset = [], 0
    for name, dtype, shape, extra in rows:
        size = math.prod(shape) * DTYPE_BITS.get(dtype, 8) // 8 + (extra == 3)
        text.append(f'{json.dumps(name)}:{{"dtype":"{dtype}","shape":{json.dumps(shape, separators=(",", ":"))},'
                    f'"data_offsets":[{offset},{offset + size}]}}')
        offset += size
    header = ("{" + ",".join(text) + "}").encode()
    header = header[:cut] + header[cut + 1:] if cut % 7 == 0 else header  # sometimes one character short
    data = struct.pack("<Q", len(header)) + header
    assert _outcome(parse_header, data, "f.safetensors", None) == _outcome(_general, data, "f.safetensors", None)
