"""Pure parser of safetensors header bytes, with the reference implementation's validation.

Format (https://github.com/huggingface/safetensors): 8-byte little-endian header length N, then N
bytes of UTF-8 JSON: {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}.
Offsets are relative to the data region that follows the header and must tile it exactly.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import itemgetter, le, sub
from typing import Any

from ..errors import BadHeader
from .jsondoc import load_json_object
from .types import TensorInfo, TensorTable

# The reference implementation refuses headers above 100 MB (safetensors MAX_HEADER_SIZE); gpumem reads no
# file or answer past 16 MiB (a 92k-tensor DeepSeek-V3 in one file would need about 9 MB).
HEADER_SIZE_CAP = 16 * 1024 * 1024
PREFIX_BYTES = 8

# Bits per element of every dtype the safetensors format defines.
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
}  # fmt: skip



@dataclass(frozen=True, slots=True)
class SafetensorsHeader:
    """A parsed header: its tensors in data order (as columns), its metadata, and dtypes gpumem did not know."""

    file: str
    header_size: int  # N, the JSON length (the data region starts at 8 + N)
    table: TensorTable
    metadata: dict[str, str]
    unknown_types: tuple[str, ...] = ()

    @property
    def tensors(self) -> tuple[TensorInfo, ...]:
        """One TensorInfo per tensor, in data order."""
        return self.table.tensors()


def read_header_length(prefix: bytes, file: str) -> int:
    """Return N from the first 8 bytes of a safetensors file, refusing sizes over the cap."""
    if len(prefix) < PREFIX_BYTES:
        raise BadHeader(f"{file}: file is {len(prefix)} bytes, too short for a safetensors header")
    (size,) = struct.unpack("<Q", prefix[:PREFIX_BYTES])
    if size > HEADER_SIZE_CAP:
        raise BadHeader(f"{file}: header length {size:,} bytes exceeds the {HEADER_SIZE_CAP:,}-byte cap")
    if size < 2:
        raise BadHeader(f"{file}: header length {size} is too small to hold a JSON object")
    return size


def parse_header(data: bytes, file: str, file_size: int | None = None) -> SafetensorsHeader:
    """Parse and validate a header from the file's first bytes (at least 8 + N of them).

    `file_size`, when known, is checked against the end of the data region. Tensors with an unknown
    (future) dtype are kept with the byte size their offsets give and listed in `unknown_types`.
    A header laid out as the safetensors writers lay it out takes a fast path (`_parse_canonical`); anything
    else, and anything wrong, the general parser, which also says exactly what is wrong.
    """
    size = read_header_length(data, file)
    end = PREFIX_BYTES + size
    if len(data) < end:
        raise BadHeader(f"{file}: header says {size:,} bytes but only {len(data) - PREFIX_BYTES:,} follow")
    if file_size is not None and end > file_size:
        raise BadHeader(f"{file}: header length {size:,} runs past the end of the {file_size:,}-byte file")
    payload = data[PREFIX_BYTES:end].rstrip(b" ")  # writers pad the header with spaces to an 8-byte boundary
    canonical = _parse_canonical(payload, file)
    if canonical is not None and (file_size is None or end + sum(canonical[0].nbytes) == file_size):
        table, metadata = canonical
        return SafetensorsHeader(file, size, table, metadata)
    return _parse_general(payload, file, size, end, file_size)


def _parse_general(payload: bytes, file: str, size: int, end: int, file_size: int | None) -> SafetensorsHeader:
    raw = _decode_json(payload, file)
    metadata = _read_metadata(raw.pop("__metadata__", None), file)
    entries = sorted((_read_entry(name, value, file) for name, value in raw.items()), key=lambda e: e[3])
    tensors, unknown, cursor = [], [], 0
    for name, dtype, shape, (begin, stop) in entries:
        if begin != cursor:
            gap = "overlaps the previous tensor" if begin < cursor else "leaves a hole before it"
            raise BadHeader(f"{file}: tensor '{name}' starts at byte {begin:,}, which {gap} (expected {cursor:,})")
        nbytes = stop - begin
        bits = DTYPE_BITS.get(dtype)
        if bits is None:
            unknown.append(dtype)
        elif math.prod(shape) * bits != nbytes * 8:
            raise BadHeader(
                f"{file}: tensor '{name}' has {nbytes:,} bytes of data but {dtype} x {list(shape)} needs "
                f"{math.prod(shape) * bits / 8:,.0f}"
            )
        tensors.append(TensorInfo(name, dtype, shape, nbytes, file))
        cursor = stop
    if file_size is not None and end + cursor != file_size:
        raise BadHeader(f"{file}: tensors end at byte {end + cursor:,} but the file is {file_size:,} bytes")
    return SafetensorsHeader(file, size, TensorTable.of(tensors), metadata, tuple(sorted(set(unknown))))


# One entry as the writers emit it, cut at its quotes: "NAME":{"dtype":"DT","shape":[S],"data_offsets":[B,E]},
# -> NAME | :{ | dtype | : | DT | , | shape | :[S], | data_offsets | :[B,E]}, ; the fixed pieces by position:
_FIXED = ((2, ":{"), (3, "dtype"), (4, ":"), (6, ","), (7, "shape"), (9, "data_offsets"))
_METADATA = '{"__metadata__":'
_JSON = json.JSONDecoder()


def _parse_canonical(payload: bytes, file: str) -> tuple[TensorTable, dict[str, str]] | None:
    """The header's tensors (in data order) and metadata when it is laid out as the writers lay it out (compact,
    the writers' key order, metadata first, no escapes or control characters in names) and passes every check
    of the general parser; None otherwise.

    No object per tensor and no Python loop over them (DeepSeek-V3: 92k entries in 163 headers): cut at its
    quotes, the text falls into columns; with the fixed pieces where they belong, no quote, backslash or control
    character in a name or dtype, and every number written as JSON writes it, the columns are exactly what a JSON
    parser reads. Then: no duplicate names, offsets tile the data, each tensor's size is its dtype x shape.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not (text.startswith("{") and text.endswith("}")):
        return None
    metadata: dict[str, str] = {}
    start = 1
    if text.startswith(_METADATA):
        try:
            value, start = _JSON.raw_decode(text, len(_METADATA))
        except (ValueError, RecursionError):  # the general parser words both ("nested too deeply")
            return None
        if type(value) is not dict or not all(type(v) is str for v in value.values()) or start == len(text):
            return None  # (the text ending with the metadata: no brace left to close the header)
        metadata = value
        if text[start] == ",":
            start += 1
        elif start != len(text) - 1:
            return None
    body = text[start:-1]
    if not body:
        return (TensorTable(), metadata) if text[start - 1] != "," else None
    # Split at every quote: names and dtypes hold none, so each entry is ten pieces, six of them fixed.
    parts = body.split('"')
    count, rest = divmod(len(parts) - 1, 10)
    if rest or parts[0] or any(parts[at::10].count(fixed) != count for at, fixed in _FIXED):
        return None
    names: Sequence[str] = parts[1::10]
    if not _plain_names(names):
        return None  # escapes or control characters: the general parser decides
    distinct = set(names)
    if len(distinct) != count or "__metadata__" in distinct:
        return None
    columns = _kind_columns(parts[5::10], parts[8::10])
    if columns is None:
        return None
    dtypes, shapes, sizes = columns
    offsets = parts[10::10]  # ":[B,E]}," each, the last without its comma
    joined = ";".join(offsets)
    ends = list(accumulate(sizes))
    if ends[-1] >= _U64:
        return None
    if joined == _offsets_text(ends):  # each begins where the one before ends, as the writers write them, and
        nbytes = sizes  # every size is its dtype x shape
    else:  # another order (or sizes that do not match, found below)
        # two plain decimal numbers each (no sign, space or fraction), nothing else
        if (joined.encode().translate(None, b"0123456789") != _OFFSETS_LAID_OUT * (count - 1) + _LAST_OFFSETS_LAID_OUT
                or _LEADING_ZERO.search(joined)):  # (JSON writes no leading zero; int() would read one)
            return None
        flat = joined.replace("]},;:[", ",")  # ':[B,E,B,E,...,B,E]}': the pieces' framing is only at its two ends
        try:
            values = list(map(int, flat[2:-2].split(",")))  # B, E, B, E, ... as written
        except ValueError:  # an empty number
            return None
        if max(values) >= _U64:
            return None
        begins: Sequence[int] = values[0::2]
        stops: Sequence[int] = values[1::2]
        # data order, ties in the header's order (as the general parser sorts)
        pick = _picker(sorted(range(count), key=list(zip(begins, stops)).__getitem__))
        names, dtypes, shapes, begins, stops, sizes = (pick(names), pick(dtypes), pick(shapes), pick(begins),
                                                       pick(stops), pick(sizes))
        nbytes = tuple(map(sub, stops, begins))
        if not _tiled(begins, stops) or list(nbytes) != list(sizes):
            return None
    return TensorTable(tuple(names), dtypes, shapes, nbytes, (file,) * count), metadata


# Every ASCII byte of a name as the writers write it, but for escapes (a backslash): printable ASCII.
_PLAIN_BYTES = bytes(range(32, 127)).replace(b"\\", b"")
_OFFSETS_LAID_OUT, _LAST_OFFSETS_LAID_OUT = b":[,]},;", b":[,]}"
_DTYPE_NAMES = {dtype: dtype for dtype in DTYPE_BITS}  # one string object per dtype


def _plain_names(names: Sequence[str]) -> bool:
    """Whether no name holds an escape or a control character (what JSON would read differently). Names are the
    only free text of an entry: every other piece is checked as what it is (fixed text, a known dtype, digits)."""
    joined = "".join(names)
    if joined.isascii():
        return not joined.encode("ascii").translate(None, _PLAIN_BYTES)
    return "\\" not in joined and joined.isprintable()


def _kind_columns(dtypes: list[str], shape_pieces: list[str]) -> tuple[tuple[str, ...], tuple[tuple[int, ...], ...],
                                                                       tuple[int, ...]] | None:
    """Each tensor's dtype, shape and byte size from its dtype and its `:[S],` piece, when every dtype is known, every
    shape is written as JSON writes it and every size is a whole number of bytes; else None. Each distinct
    (dtype, shape) is read once and its objects are shared by its tensors (a header has a few dozen), picked into
    columns in one C call each. Tensors are told apart by their shape piece alone when no shape comes with two
    dtypes (the usual case: numbering strings is three times as fast as numbering pairs)."""
    first_of_kind: dict[object, int] = {}  # each kind's first row
    pick = _picker(list(map(first_of_kind.setdefault, shape_pieces, itertools.count())))
    if pick(dtypes) != tuple(dtypes):  # a shape with two dtypes: (dtype, shape) pairs
        first_of_kind = {}
        pick = _picker(list(map(first_of_kind.setdefault, zip(dtypes, shape_pieces), itertools.count())))
    dtype_of, shape_of, size_of = {}, {}, {}
    for row in first_of_kind.values():
        dtype, piece = dtypes[row], shape_pieces[row]
        bits = DTYPE_BITS.get(dtype)
        text = piece[2:-2]
        if bits is None or not (piece.startswith(":[") and piece.endswith("],")):
            return None  # unknown dtypes: the general parser lists them
        try:
            shape = tuple(map(int, text.split(","))) if text else ()
        except ValueError:
            return None
        if ",".join(map(str, shape)) != text or (shape and max(shape) >= _U64):
            return None  # a shape not as JSON writes it, or values past 64 bits
        size, odd_bits = divmod(math.prod(shape) * bits, 8)
        if odd_bits:
            return None  # no whole number of bytes: no offsets can match
        dtype_of[row], shape_of[row], size_of[row] = _DTYPE_NAMES[dtype], shape, size
    return pick(dtype_of), pick(shape_of), pick(size_of)


def _picker(rows: list[int]) -> Callable[[Any], tuple]:
    """What picks these rows of a column (or keys of a dict), as a tuple, in one C call."""
    if len(rows) == 1:  # (itemgetter of one item returns the item itself)
        row = rows[0]
        return lambda column: (column[row],)
    return itemgetter(*rows)


def _offsets_text(ends: list[int]) -> str:
    """The offsets pieces of tensors laid end to end from byte 0 with these ends, joined by ";" as the parser joins
    them: ":[0,E1]},;:[E1,E2]},;...;:[E(n-1),En]}"."""
    ends_text = list(map(repr, ends))  # (a call of repr costs less per number than a call of the str type)
    pieces = [","] * (4 * len(ends) + 1)  # ":[", then B "," E and what follows, per tensor
    pieces[0] = ":["
    pieces[1::4] = ["0", *ends_text[:-1]]
    pieces[3::4] = ends_text
    pieces[4::4] = [*itertools.repeat("]},;:[", len(ends) - 1), "]}"]
    return "".join(pieces)


_LEADING_ZERO = re.compile(r"[\[,]0[0-9]")


def _tiled(begins: Sequence[int], stops: Sequence[int]) -> bool:
    """Whether tensors in this order tile the data region from byte 0 (so this order is the data order)."""
    return begins[0] == 0 and list(begins[1:]) == list(stops[:-1]) and all(map(le, begins, stops))


def _decode_json(payload: bytes, file: str) -> dict:
    # writers pad the header with spaces to an 8-byte boundary
    return load_json_object(payload.rstrip(b" "), f"{file}: header", BadHeader)


def _read_metadata(value: object, file: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadHeader(f"{file}: '__metadata__' must be an object of strings")
    return value


_U64 = 2**64


def _read_entry(name: str, value: object, file: str) -> tuple[str, str, tuple[int, ...], tuple[int, int]]:
    """One tensor's (name, dtype, shape, offsets); the common well-formed entry takes the fast path (a
    DeepSeek-V3 has 92k of them), anything else the checks below, which say exactly what is wrong."""
    if type(value) is dict:
        dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
        if type(dtype) is str and dtype and type(shape) is list and type(offsets) is list and len(offsets) == 2:
            begin, stop = offsets
            if type(begin) is int and type(stop) is int and 0 <= begin <= stop < _U64:
                for dim in shape:
                    if type(dim) is not int or not 0 <= dim < _U64:
                        break
                else:
                    return name, dtype, tuple(shape), (begin, stop)
    return _read_entry_checked(name, value, file)


def _read_entry_checked(name: str, value: object, file: str) -> tuple[str, str, tuple[int, ...], tuple[int, int]]:
    if not isinstance(value, dict):
        raise BadHeader(f"{file}: tensor '{name}' is described by a {type(value).__name__}, not an object")
    dtype, shape, offsets = value.get("dtype"), value.get("shape"), value.get("data_offsets")
    if not isinstance(dtype, str) or not dtype:
        raise BadHeader(f"{file}: tensor '{name}' has no dtype")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise BadHeader(f"{file}: tensor '{name}' has an invalid shape {shape!r} (non-negative integers expected)")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise BadHeader(f"{file}: tensor '{name}' has invalid data_offsets {offsets!r}")
    begin, stop = offsets
    if stop < begin:
        raise BadHeader(f"{file}: tensor '{name}' ends (byte {stop:,}) before it begins (byte {begin:,})")
    return name, dtype, tuple(shape), (begin, stop)


def _is_count(value: object) -> bool:
    # bool is an int subclass; 2**64 bounds what the reference's usize accepts.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64
