"""The shards a big model.safetensors.index.json names, read from its text without building its weight map.

DeepSeek-V3's index is 8.9 MB: 92k entries, 163 distinct shard names. `json.loads` builds 184k strings and a
92k-entry dict for it (~0.1 s, one C call that holds the GIL), where the reader needs only whether the text is a
JSON object and which shard names its weight map uses. An index laid out as transformers and huggingface_hub
write it (`json.dumps(index, indent=2)`, the weight map last) is checked line by line with C-speed byte
operations and one regular expression (~0.03 s); anything else is left to the JSON parser.
"""

from __future__ import annotations

import json
import re

_MAP_START = b'\n  "weight_map": {\n'
_MAP_ENDS = (b'"\n  }\n}\n', b'"\n  }\n}')  # the last entry's closing quote, then the map and the document close
# Every byte of an entry line as the writers write it, but for the quotes and escapes (a backslash): printable ASCII
_PLAIN_BUT_QUOTES = bytes(range(32, 127)).replace(b"\\", b"").replace(b'"', b"")
_LINE_QUOTES = b'""""\n'  # a line cut down to its quotes and its end: key and value, nothing else
_ENTRY = re.compile(rb'(?m)^    "[^"]*": "([^"]*)",\n')  # one entry line (the last one is given its comma first)
# Lines checked per call (~3 ms of C holding the GIL): DeepSeek-V3's index arrives while the HTTP thread hands the
# shard reads from the Hub to the CDN, which one 0.03 s call would hold up
_PIECE_BYTES = 1024 * 1024


def weight_map_shards(content: bytes) -> set[str] | None:
    """The shard names (distinct) in the weight map of an index laid out as the writers lay it out, when it is
    a JSON object whose weight map is an object of strings; None for any other text, valid or not, which only
    a JSON parser can say (and word) exactly.

    Exact: on a text it answers, `json.loads` finds the same document (the weight map holds a subset of these
    names: a key written twice keeps its last value). Why: the text is the document up to `"weight_map": `,
    which `json.loads` reads as an object with an empty weight map as its last member, then the map's entries,
    one per line, each `    "KEY": "VALUE",` (the last without its comma), with no quote, backslash, control
    or non-ASCII character in a key or value; the line checks below prove exactly that shape.
    """
    start = content.find(_MAP_START)
    end = next((len(content) - len(tail) + 1 for tail in _MAP_ENDS if content.endswith(tail)), -1)
    if start < 0 or end <= start:
        return None
    head = content[:start]
    try:
        document = json.loads(head.decode("utf-8") + '\n  "weight_map": {}\n}')
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if type(document) is not dict:
        return None
    values: set[bytes] = set()
    piece_start = start + len(_MAP_START)
    while piece_start < end:  # a piece of whole lines at a time: the GIL is let go between pieces
        piece_end = content.find(b"\n", piece_start + _PIECE_BYTES, end) + 1 or end
        lines = content[piece_start:piece_end] if piece_end < end else content[piece_start:end] + b",\n"
        # Every line holds exactly four quotes and only printable ASCII besides (no escape, no control character)
        quotes = lines.translate(None, _PLAIN_BUT_QUOTES)
        count = len(quotes) // len(_LINE_QUOTES)
        if quotes != _LINE_QUOTES * count:
            return None
        # and one entry starts at every line start: an entry holds four quotes and ends at a line end, so it is
        # within one line, and with one per line each is its whole line
        entries = _ENTRY.findall(lines)
        if len(entries) != count:
            return None
        values.update(entries)
        piece_start = piece_end
    return {value.decode("ascii") for value in values}
