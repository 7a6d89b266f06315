"""A big model.safetensors.index.json read for its shard names alone (model/safetensors_index.py): the reader must
come to exactly what reading it as JSON comes to, the same words for the same faults, on any text."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from conftest import HUB_FIXTURES
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumem import api
from gpumem.errors import BadConfig
from gpumem.model import safetensors_index
from gpumem.model.safetensors_index import weight_map_shards
from gpumem.reading import fetch
from gpumem_dev.fakehub import GOOD_TOKEN, FakeFile, FakeRepo, llama2_70b_repo
from gpumem_dev.fakehub.repos import sharded_files

INDEX = "model.safetensors.index.json"
_REAL_INDEXES = ["meta-llama__Llama-2-70b-chat-hf", "IrfanUruchi__Llama-3.1-8B-Computer-Networks-LLM",
                 "mistralai__Mixtral-8x7B-v0.1"]


def _written(weight_map: dict, metadata: object = None, *, sort_keys: bool = True, newline: bool = True,
             ensure_ascii: bool = True) -> bytes:
    """An index as transformers writes it (sorted keys, a final newline) or huggingface_hub (neither)."""
    document = {"metadata": {"total_size": 123} if metadata is None else metadata, "weight_map": weight_map}
    text = json.dumps(document, indent=2, sort_keys=sort_keys, ensure_ascii=ensure_ascii) + ("\n" if newline else "")
    return text.encode()


def _as_json(content: bytes, listed: set[str]) -> str | None:
    """The reader without the fast path: the index parsed as JSON and checked. The error's words, or None."""
    try:
        fetch._check_index(INDEX, fetch.parse_json(content, INDEX), listed)
    except BadConfig as exc:
        return str(exc)
    return None


def _as_big_index(content: bytes, listed: set[str]) -> str | None:
    """The reader as it reads an index too big to wait for."""
    try:
        with mock.patch.object(fetch, "_WAIT_FOR_INDEX_UP_TO", 0):
            index = fetch.parse_index(content, INDEX)
        fetch._check_index(INDEX, index, listed)
    except BadConfig as exc:
        return str(exc)
    return None


def _agree(content: bytes) -> None:
    """Both readings come to the same, whether every shard is listed or not; and a text the fast path answers is
    JSON whose weight map's shards are among the names it found (all of them when no key is written twice)."""
    shards = weight_map_shards(content)
    with mock.patch.object(safetensors_index, "_PIECE_BYTES", 5):  # lines checked a few at a time: the same
        assert weight_map_shards(content) == shards
    if shards is not None:
        document = json.loads(content.decode("utf-8"))
        assert type(document) is dict and type(document["weight_map"]) is dict
        values = set(document["weight_map"].values())
        assert values <= shards and all(type(v) is str for v in values)
        if content.count(b'": "') == len(document["weight_map"]):
            assert values == shards
        names = sorted(shards)
    else:
        names = ["a.safetensors", "b.safetensors"]
    for listed in (set(names), set(names[1:]), set(), {"x/" + name for name in names}):
        assert _as_big_index(content, listed) == _as_json(content, listed)


@pytest.mark.parametrize("folder", _REAL_INDEXES)
def test_real_indexes_take_the_fast_path_and_name_the_shards_json_names(folder):
    content = (HUB_FIXTURES / folder / INDEX).read_bytes()
    assert weight_map_shards(content) == set(json.loads(content)["weight_map"].values())
    _agree(content)


def test_both_writers_layouts_take_the_fast_path():
    weight_map = {f"model.layers.{i}.mlp.weight": f"model-{i % 3 + 1:05d}-of-00003.safetensors" for i in range(40)}
    for sort_keys in (True, False):
        for newline in (True, False):
            for metadata in ({}, {"total_size": 5}, {"format": "pt", "nested": {"a": [1, "}\\n"]}}):
                content = _written(weight_map, metadata, sort_keys=sort_keys, newline=newline)
                assert weight_map_shards(content) == set(weight_map.values())


@pytest.mark.parametrize("text", [
    _written({}),  # an empty map is written "{}": left to JSON
    _written({"a": "x.safetensors"}).replace(b"  ", b"\t"),  # another indent
    _written({"a": "x.safetensors"}).replace(b"\n", b"\r\n"),
    json.dumps({"metadata": {}, "weight_map": {"a": "x.safetensors"}}).encode(),  # compact
    _written({"a\\b": "x.safetensors", "c": "y.safetensors"}),  # an escape
    _written({"a": "x\u00e9.safetensors"}, ensure_ascii=False),  # UTF-8 in a value
    _written({"a\u2028": "x.safetensors"}, ensure_ascii=False),
    _written({"a": "x.safetensors", "b": 5}),  # a value that is not a string
    _written({"a": "x.safetensors"}) + b"x",
    b"\xef\xbb\xbf" + _written({"a": "x.safetensors"}),  # a byte-order mark
    _written({"a": "x.safetensors"}).replace(b'"metadata"', b'"metadata": {"a": 1}, "m2"'),
    b'{\n  "weight_map": {\n    "a": "x.safetensors"\n  }\n}\n{\n  "weight_map": {\n    "a": "y"\n  }\n}\n',
    b'[\n  "weight_map": {\n    "a": "x.safetensors"\n  }\n}\n',
    b'{\n  "m": {\n  "weight_map": {\n    "a": "x.safetensors"\n  }\n}\n',  # the map nested: braces do not close
    b'{\n  "m": "\n  "weight_map": {\n    "a": "x.safetensors"\n  }\n}\n',
    b'{\n  "weight_map": 1,\n  "weight_map": {\n    "a": "x.safetensors"\n  }\n}\n',  # the last map wins, in both
    _written({"a": "x.safetensors", "b": "y.safetensors"}).replace(b'"a": "x.safetensors",\n    "b"',
                                                                    b'"a": "x.safetensors"\n    "b"'),
    _written({"a": "x.safetensors", "b": "y.safetensors"}).replace(b'"a": "x', b'"a":"x'),
    _written({"a": "x.safetensors", "b": "y.safetensors"}).replace(b'    "b"', b'     "b"'),
    _written({"a": "x.safetensors", "b": "y.safetensors"}).replace(b'    "b"', b' x  "b"'),
    # a line of two quotes beside a line of six: four a line on average, not JSON
    _written({"a": "x.safetensors", "b": "y.safetensors"}).replace(b'"a": "x.safetensors"', b'"a.safetensors"')
    .replace(b'"b": "y.safetensors"', b'"b": "y": "z.safetensors"'),
])
def test_other_layouts_and_faults_read_as_json_reads_them(text):
    _agree(text)


def test_every_one_byte_change_of_a_written_index_reads_as_json_reads_it():
    content = _written({"model.embed.weight": "a.safetensors", "model.norm.weight": "b.safetensors",
                        "lm_head.weight": "a.safetensors"}, {"total_size": 12, "format": "pt"})
    answered = 0
    for at in range(len(content) + 1):
        variants = [content[:at] + content[at + 1:]] if at < len(content) else []
        for byte in b'"\\\n\t :,{}[]x0\x00\x7f\xc3':
            variants.append(content[:at] + bytes([byte]) + content[at:])
            if at < len(content):
                variants.append(content[:at] + bytes([byte]) + content[at + 1:])
        for variant in variants:
            _agree(variant)
            answered += weight_map_shards(variant) is not None
    assert answered > 100  # changes inside names keep the layout: the fast path answers those too


_chars = st.characters(codec="utf-8")
_names = st.text(_chars, max_size=6) | st.sampled_from(["a.safetensors", "b.safetensors", ": ", "\",\n", "\\"])


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(_names, _names, max_size=6), st.booleans(), st.booleans(), st.booleans(),
       st.integers(0, 400), st.sampled_from([b"", b'"', b"\n", b"\\", b'"x": "y",\n    ', b"\xff"]))
def test_near_written_indexes_read_as_json_reads_them(weight_map, sort_keys, newline, ensure_ascii, at, insert):
    content = _written(weight_map, sort_keys=sort_keys, newline=newline, ensure_ascii=ensure_ascii)
    at = min(at, len(content))
    _agree(content[:at] + insert + content[at:])


def test_a_big_index_is_read_without_json_or_header_size_predictions(hub, monkeypatch):
    # Its shards' first reads take sizes guessed from the listing, so its 92k-entry weight map (DeepSeek-V3) is read
    # for the shard names alone: the read is the same, without ~0.1 s of JSON and ~0.03 s of predictions.
    repo = hub.add_repo(llama2_70b_repo())
    options = api.HubOptions(endpoint=hub.endpoint, token=GOOD_TOKEN, use_cache=False)
    expected = api.inspect_repo(repo.repo_id, options=options)
    monkeypatch.setattr(fetch, "_WAIT_FOR_INDEX_UP_TO", 0)
    parsed, predicted = [], []
    parse_json, predict = fetch.parse_json, fetch.predict_header_sizes
    monkeypatch.setattr(fetch, "parse_json", lambda content, path: parsed.append(path) or parse_json(content, path))
    monkeypatch.setattr(fetch, "predict_header_sizes", lambda index: predicted.append(index) or predict(index))
    assert api.inspect_repo(repo.repo_id, options=options) == expected
    assert INDEX not in parsed and not predicted


def test_a_big_index_naming_a_shard_the_repo_lacks_is_worded_as_a_small_one(hub, monkeypatch):
    files = sharded_files({"a.safetensors": [("model.embed_tokens.weight", "BF16", (8, 4))],
                           "b.safetensors": [("model.norm.weight", "BF16", (4,))]})
    weight_map = {"lm_head.weight": "c.safetensors", "model.embed_tokens.weight": "a.safetensors",
                  "model.norm.weight": "b.safetensors"}
    files[INDEX] = FakeFile.of(_written(weight_map))
    hub.add_repo(FakeRepo("gpumem-index/missing-shard", files))
    options = api.HubOptions(endpoint=hub.endpoint, token=GOOD_TOKEN, use_cache=False)
    errors = []
    for threshold in (fetch._WAIT_FOR_INDEX_UP_TO, 0):
        monkeypatch.setattr(fetch, "_WAIT_FOR_INDEX_UP_TO", threshold)
        with pytest.raises(BadConfig) as error:
            api.inspect_repo("gpumem-index/missing-shard", options=options)
        errors.append(str(error.value))
    assert errors[0] == errors[1] == (f"{INDEX}: field 'weight_map' names shard 'c.safetensors', which is not in "
                                      "the repo")
