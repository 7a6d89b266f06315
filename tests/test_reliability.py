"""Bad inputs end to end: every row of docs/bad-inputs.md is a repo (or fault) served by the fake Hub and
run through the real CLI; the answer is one line and a documented exit code, never a traceback.

Also: bounded fuzz tests of the config parser and of whole safetensors headers, the --timeout deadline,
and a check that docs/bad-inputs.md is this table (regenerate with `python tests/test_reliability.py`).
"""

from __future__ import annotations

import json
import math
import struct
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import FIXTURES, HUB_FIXTURES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpumem.errors import FormatError
from gpumem.model.architecture import parse_architecture
from gpumem.reading import hub as hub_module
from gpumem.reading.fetch import read_weight_header
from gpumem_dev.fakehub import (
    GOOD_TOKEN,
    NO_ACCESS_TOKEN,
    FakeFile,
    FakeHub,
    FakeRepo,
    adapter_files,
    repo_from_fixture,
    safetensors_bytes,
)
from gpumem_dev.fakehub.repos import fake_sha
from gpumem_dev.fuzz import check_config, check_safetensors, configs, header, tensor

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"
BEGIN, END = "<!-- begin: bad-inputs -->", "<!-- end: bad-inputs -->"

# Real published files the hostile repos are built from (fixtures/hub/SOURCES.md).
GPT2_CONFIG = json.loads((HUB_FIXTURES / "openai-community__gpt2" / "config.json").read_text())
TINY_GGUF = (FIXTURES / "gguf" / "tiny-mix.gguf").read_bytes()
_GPT2_WEIGHTS = repo_from_fixture("openai-community__gpt2").files["model.safetensors"]
# A 4.3 GB single-tensor shard (virtual: zeros after the header), for the ignored-Range row.
_BIG = [("model.embed_tokens.weight", "BF16", (128256, 16384))]
TWO_SHARDS = {"a": [("model.embed_tokens.weight", "BF16", (8, 4))], "b": [("model.norm.weight", "BF16", (4,))]}


def one_tensor(entry: dict, data: int = 0) -> FakeFile:
    """A model.safetensors holding one hand-written tensor entry and `data` bytes after the header."""
    prefix = header(json.dumps({"w": entry}))
    return FakeFile(prefix, len(prefix) + data)


def weights_with(config: dict | str | bytes) -> dict[str, FakeFile]:
    """gpt2's real weights header beside a config.json (a dict is written as JSON, bytes as given)."""
    content = json.dumps(config) if isinstance(config, dict) else config
    return {"config.json": FakeFile.of(content), "model.safetensors": _GPT2_WEIGHTS}


def gpt2_config(**changes) -> dict:
    """gpt2's real config.json with some fields changed (None removes the field)."""
    config = {**GPT2_CONFIG, **changes}
    return {key: value for key, value in config.items() if value is not None}


def sharded(index: dict | str, shards: dict[str, list] = TWO_SHARDS) -> dict[str, FakeFile]:
    """Hand-made shards plus the index given (a dict is written as JSON)."""
    files = {}
    for name, tensors in shards.items():
        prefix, size = safetensors_bytes(tensors)
        files[f"{name}.safetensors"] = FakeFile(prefix, len(prefix) + size)
    files["model.safetensors.index.json"] = FakeFile.of(json.dumps(index) if isinstance(index, dict) else index)
    return files


def gguf(data: bytes, size: int | None = None) -> dict[str, FakeFile]:
    return {"model.gguf": FakeFile(data, size or len(data))}


def patch_gguf(offset: int, fmt: str, value: int) -> bytes:
    """tiny-mix.gguf with one field of its preamble overwritten."""
    data = bytearray(TINY_GGUF)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def fail(substring: str, status: int, count: int = 50, **headers: str) -> Callable[[FakeHub], None]:
    return lambda hub: hub.fail_next(substring, status, count, headers or None)


def setting(**values) -> Callable[[FakeHub], None]:
    return lambda hub: [setattr(hub, key, value) for key, value in values.items()]


@dataclass(frozen=True)
class Case:
    """One bad input: what is wrong, the repo (or fault) that serves it, and what gpumem must answer."""

    name: str
    input: str  # for the doc
    answer: str  # exact first line of stderr; for exit 0, a note the JSON report must carry ("" for none)
    code: int
    files: dict[str, FakeFile] | None = None  # served as bad/<name>; None: `repo` below
    repo: str = ""  # an existing fake Hub repo (default: bad/<name>)
    args: tuple[str, ...] = ()
    fault: Callable[[FakeHub], None] | None = None
    repo_options: dict = field(default_factory=dict)  # FakeRepo(gated=..., private=...)
    parameters: int | None = None  # exit 0: the count the report must still show

    @property
    def repo_id(self) -> str:
        return self.repo or f"bad/{self.name}"


_GPT2_PARAMS = 124_439_808  # published (fixtures/hub/SOURCES.md)
_BIG_SHARD = {"model.safetensors": FakeFile(*(lambda p, n: (p, len(p) + n))(*safetensors_bytes(_BIG)))}
_SHARDS_OK = {"metadata": {}, "weight_map": {"model.embed_tokens.weight": "a.safetensors",
                                              "model.norm.weight": "b.safetensors"}}

_TIGRINYA = "abrhaleyarefaine1997__gpt2-tigrinya-lora"


def _adapter(folder: str, **config_changes) -> dict[str, FakeFile]:
    """A real adapter's files, its adapter_config.json changed as given."""
    files = adapter_files(folder)
    if config_changes:
        config = {**json.loads(files["adapter_config.json"].prefix), **config_changes}
        files["adapter_config.json"] = FakeFile.of(json.dumps(config, indent=2))
    return files


CASES = [
    # -- safetensors headers -------------------------------------------------------------------------
    Case("st-length-past-file", "safetensors header length (1,000) beyond the 10-byte file",
         "Error: model.safetensors: header length 1,000 runs past the end of the 10-byte file", 5,
         {"model.safetensors": FakeFile.of(header(b"{}", 1000))}),
    Case("st-length-over-cap", "safetensors header length 2^40, over the 16 MiB cap",
         "Error: model.safetensors: header length 1,099,511,627,776 bytes exceeds the 16,777,216-byte cap", 5,
         {"model.safetensors": FakeFile(header(b"{}", 2**40), 2**41)}),
    Case("st-too-short", "safetensors file of 3 bytes",
         "Error: model.safetensors: file is 3 bytes, too short for a safetensors header", 5,
         {"model.safetensors": FakeFile.of(b"\x01\x02\x03")}),
    Case("st-not-utf8", "safetensors header that is not UTF-8",
         "Error: model.safetensors: header is not valid UTF-8 (byte 2)", 5,
         {"model.safetensors": FakeFile.of(header(b'{"\xff\xfe": 1}'))}),
    Case("st-not-json", "safetensors header that is not JSON",
         "Error: model.safetensors: header is not valid JSON (Expecting value: line 1 column 6 (char 5))", 5,
         {"model.safetensors": FakeFile.of(header(b'{"w": '))}),
    Case("st-json-list", "safetensors header that is a JSON list",
         "Error: model.safetensors: header is a JSON list, not an object", 5,
         {"model.safetensors": FakeFile.of(header(b"[1, 2]"))}),
    Case("st-deep-json", "safetensors header nested 10,000 levels deep",
         "Error: model.safetensors: header is JSON nested too deeply to be a real file", 5,
         {"model.safetensors": FakeFile.of(header(b"[" * 10_000 + b"]" * 10_000))}),
    Case("st-entry-not-object", "a tensor described by a string",
         "Error: model.safetensors: tensor 'w' is described by a str, not an object", 5,
         {"model.safetensors": FakeFile.of(header('{"w": "F32"}'))}),
    Case("st-no-dtype", "a tensor without dtype",
         "Error: model.safetensors: tensor 'w' has no dtype", 5,
         {"model.safetensors": one_tensor({"shape": [2], "data_offsets": [0, 8]}, 8)}),
    Case("st-shape-string", "a shape that is a string",
         "Error: model.safetensors: tensor 'w' has an invalid shape '2x2' (non-negative integers expected)", 5,
         {"model.safetensors": one_tensor({"dtype": "F32", "shape": "2x2", "data_offsets": [0, 16]}, 16)}),
    Case("st-shape-negative", "a negative dimension",
         "Error: model.safetensors: tensor 'w' has an invalid shape [-4, 2] (non-negative integers expected)", 5,
         {"model.safetensors": one_tensor({"dtype": "F32", "shape": [-4, 2], "data_offsets": [0, 32]}, 32)}),
    Case("st-shape-2e64", "a dimension of 2^64 (overflows u64)",
         "Error: model.safetensors: tensor 'w' has an invalid shape [18446744073709551616] "
         "(non-negative integers expected)", 5,
         {"model.safetensors": one_tensor({"dtype": "F32", "shape": [2**64], "data_offsets": [0, 4]}, 4)}),
    Case("st-shape-overflow", "shape [2^40, 2^40] whose element count overflows 64 bits, with 8 bytes of data",
         "Error: model.safetensors: tensor 'w' has 8 bytes of data but F32 x [1099511627776, 1099511627776] "
         "needs 4,835,703,278,458,516,698,824,704", 5,
         {"model.safetensors": one_tensor({"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}, 8)}),
    Case("st-offsets-reversed", "data_offsets that end before they begin",
         "Error: model.safetensors: tensor 'w' ends (byte 0) before it begins (byte 8)", 5,
         {"model.safetensors": one_tensor({"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}, 8)}),
    Case("st-offsets-overlap", "two tensors whose bytes overlap",
         "Error: model.safetensors: tensor 'b' starts at byte 4, which overlaps the previous tensor (expected 8)", 5,
         {"model.safetensors": FakeFile(header(json.dumps({
             "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})), 200)}),
    Case("st-offsets-hole", "a hole between two tensors",
         "Error: model.safetensors: tensor 'b' starts at byte 16, which leaves a hole before it (expected 8)", 5,
         {"model.safetensors": FakeFile(header(json.dumps({
             "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}})), 200)}),
    Case("st-offsets-past-file", "tensors that end past the end of the file",
         "Error: model.safetensors: tensors end at byte 4,000,081 but the file is 81 bytes", 5,
         {"model.safetensors": one_tensor({"dtype": "F32", "shape": [10**6], "data_offsets": [0, 4 * 10**6]})}),
    Case("st-bytes-mismatch", "data_offsets that disagree with dtype x shape",
         "Error: model.safetensors: tensor 'w' has 12 bytes of data but F32 x [2, 2] needs 16", 5,
         {"model.safetensors": one_tensor({"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}, 12)}),
    Case("st-metadata-not-strings", "__metadata__ with a non-string value",
         "Error: model.safetensors: '__metadata__' must be an object of strings", 5,
         {"model.safetensors": FakeFile.of(header('{"__metadata__": {"format": 1}}'))}),
    # -- indexes and shards --------------------------------------------------------------------------
    Case("shard-duplicate-tensor", "the same tensor name stored in two shards",
         "Error: b.safetensors: tensor 'model.norm.weight' is also stored in a.safetensors", 5,
         sharded({"weight_map": {"model.norm.weight": "a.safetensors"}},
                 {"a": [("model.norm.weight", "BF16", (4,))], "b": [("model.norm.weight", "BF16", (4,))]})),
    Case("index-missing-shard", "an index that names a shard the repo lacks",
         "Error: model.safetensors.index.json: field 'weight_map' names shard 'c.safetensors', "
         "which is not in the repo", 5,
         sharded({"weight_map": {**_SHARDS_OK["weight_map"], "lm_head.weight": "c.safetensors"}})),
    Case("index-weight-map-list", "an index whose weight_map is a list",
         "Error: model.safetensors.index.json: field 'weight_map' is missing or not an object", 5,
         sharded({"weight_map": ["a.safetensors"]})),
    Case("index-shard-not-string", "an index whose weight_map names a shard with a list",
         "Error: model.safetensors.index.json: field 'weight_map' names shard ['b.safetensors'], "
         "which is not in the repo", 5,
         sharded({"weight_map": {**_SHARDS_OK["weight_map"], "model.norm.weight": ["b.safetensors"]}})),
    Case("bin-index-metadata-list", "a pytorch_model.bin index whose metadata is a list (sizes are listed)",
         "parameters ESTIMATED as total_size / 4 bytes (float32); no safetensors headers to count from", 0,
         {"pytorch_model.bin": FakeFile(b"PK", 4000),
          "pytorch_model.bin.index.json": FakeFile.of('{"metadata": [], "weight_map": {"w": "pytorch_model.bin"}}')},
         parameters=1000),
    Case("index-not-json", "an index that is not JSON",
         "Error: model.safetensors.index.json is not valid JSON (Expecting value: line 1 column 1 (char 0))", 5,
         sharded("<html>rate limited</html>")),
    Case("listed-shard-404", "a listed weight file that answers 404",
         "Error: model.safetensors not found in bad/listed-shard-404 at {sha}", 3,
         {"model.safetensors": _GPT2_WEIGHTS}, fault=fail("model.safetensors", 404)),
    Case("no-weights", "a repo with no weight files",
         "Error: no weight files in this repo", 5, {"README.md": FakeFile.of("# nothing here\n")}),
    # -- config.json -------------------------------------------------------------------------------
    Case("config-not-json", "config.json that is not JSON",
         "Error: config.json is not valid JSON (Expecting property name enclosed in double quotes: "
         "line 1 column 2 (char 1))", 5, weights_with("{'n_head': 12}")),
    Case("config-list", "config.json that is a JSON list",
         "Error: config.json is a JSON list, not an object", 5, weights_with("[12, 768]")),
    Case("config-over-cap", "config.json of 40 MB",
         "Error: config.json: over 16,777,216 bytes in bad/config-over-cap; refusing to read it as metadata", 5,
         {"config.json": FakeFile(b"{", 40 * 2**20), "model.safetensors": _GPT2_WEIGHTS}),
    Case("config-zero-heads", "config.json with n_head 0",
         "config not understood (config.json: field 'n_head' must be >= 1, got 0): weights only", 0,
         weights_with(gpt2_config(n_head=0)), parameters=_GPT2_PARAMS),
    Case("config-negative-layers", "config.json with n_layer -12",
         "config not understood (config.json: field 'n_layer' must be >= 1, got -12): weights only", 0,
         weights_with(gpt2_config(n_layer=-12)), parameters=_GPT2_PARAMS),
    Case("config-string-width", "config.json with n_embd \"768\" (a string)",
         "config not understood (config.json: field 'n_embd' must be an integer, got '768'): weights only", 0,
         weights_with(gpt2_config(n_embd="768")), parameters=_GPT2_PARAMS),
    Case("config-heads-not-dividing", "config.json with 7 heads for width 768",
         "config not understood (config.json: field 'num_attention_heads' (7) does not divide hidden_size (768) "
         "and head_dim is absent): weights only", 0, weights_with(gpt2_config(n_head=7)), parameters=_GPT2_PARAMS),
    Case("config-kv-over-heads", "config.json with more KV heads than heads",
         "config not understood (config.json: field 'num_key_value_heads' (24) must divide num_attention_heads "
         "(12)): weights only", 0, weights_with(gpt2_config(num_key_value_heads=24)), parameters=_GPT2_PARAMS),
    Case("config-no-vocab", "config.json without vocab_size",
         "config not understood (config.json: field 'vocab_size' is missing): weights only", 0,
         weights_with(gpt2_config(vocab_size=None)), parameters=_GPT2_PARAMS),
    # -- GGUF ------------------------------------------------------------------------------------------
    Case("gguf-bad-magic", "a .gguf file that starts with GGML",
         "Error: model.gguf: not a GGUF file (starts with b'GGML', expected b'GGUF')", 5,
         gguf(b"GGML" + TINY_GGUF[4:])),
    Case("gguf-version-9", "a GGUF file of version 9",
         "Error: model.gguf: unsupported GGUF version 9 (gpumem reads versions 2 and 3)", 5,
         gguf(patch_gguf(4, "<I", 9))),
    Case("gguf-huge-count", "a GGUF file claiming 2^62 tensors",
         "Error: model.gguf: tensor count 4,611,686,018,427,387,904 cannot fit in the 16,456 bytes that remain", 5,
         gguf(patch_gguf(8, "<Q", 2**62))),
    Case("gguf-truncated", "a GGUF file that ends inside its header",
         "Error: model.gguf: metadata_kv count 33 cannot fit in the 176 bytes that remain", 5, gguf(TINY_GGUF[:200])),
    # -- the Hub's answers ------------------------------------------------------------------------------
    Case("not-found", "a repo that does not exist",
         "Error: repository bad/not-found not found, or private and not visible to anonymous requests", 3),
    Case("bad-revision", "a revision that does not exist",
         "Error: revision 'v9.9' not found in openai-community/gpt2", 3, repo="openai-community/gpt2",
         args=("--revision", "v9.9")),
    Case("bad-revision-dots", "--revision .. (HTTP would turn it into another URL path)",
         "Error: invalid revision '..': git refs cannot be empty, contain '..' or control characters", 2,
         repo="openai-community/gpt2", args=("--revision", "..")),
    Case("bad-repo-id", "an invalid repo id (../../etc)",
         "Error: invalid repo id '../../etc': expected ORG/NAME of letters, digits, '-', '_' and '.'", 2,
         repo="../../etc"),
    Case("private-no-token", "a private repo without a token",
         "Error: repository bad/private-no-token not found, or private and not visible to anonymous requests", 3,
         {"model.safetensors": _GPT2_WEIGHTS}, repo_options={"private": True}),
    Case("gated-no-token", "a gated repo (not in the snapshot) without a token",
         "Error: bad/gated-no-token is gated: your request had no token", 4,
         {"model.safetensors": _GPT2_WEIGHTS}, repo_options={"gated": "manual"}),
    Case("gated-wrong-token", "a gated repo with a token that has no access",
         "Error: bad/gated-wrong-token is gated: your token has no access", 4,
         {"model.safetensors": _GPT2_WEIGHTS}, repo_options={"gated": "manual"}, args=("--token", NO_ACCESS_TOKEN)),
    Case("token-rejected", "an invalid token",
         "Error: the Hub rejected the token", 4, repo="openai-community/gpt2", args=("--token", "hf_not_a_real_token")),
    Case("offline-miss", "--offline for a repo neither cached nor in the snapshot",
         "Error: offline, and neither the cache nor the built-in snapshot holds bad/offline-miss@main", 6,
         args=("--offline",)),
    Case("bits-zero", "--bits 0", "Error: Invalid value for '--bits': 0.0 is not in the range 1<=x<=64.", 2,
         repo="openai-community/gpt2", args=("--bits", "0")),
    Case("context-zero", "--context 0", "Error: --context must be at least 1, got 0", 2,
         repo="openai-community/gpt2", args=("--context", "0")),
    # -- network faults --------------------------------------------------------------------------------
    Case("http-503-always", "the Hub answers 503 to every model-info request",
         "Error: the Hub kept answering HTTP 503 for bad/http-503-always", 6,
         {"model.safetensors": _GPT2_WEIGHTS}, fault=fail("/api/models/bad/http-503-always", 503)),
    Case("http-429-always", "the Hub answers 429 (Retry-After: 0) to every config.json request",
         "Error: the Hub kept answering HTTP 429 for config.json", 6,
         weights_with(GPT2_CONFIG), fault=fail("bad/http-429-always/resolve/main/config.json", 429, **{"Retry-After": "0"})),
    Case("http-503-twice", "two 503s, then the real answer", "", 0, weights_with(GPT2_CONFIG),
         fault=fail("/api/models/bad/http-503-twice", 503, 2), parameters=_GPT2_PARAMS),
    Case("http-429-retry-after", "429 with Retry-After: 1, then the real answer", "", 0, weights_with(GPT2_CONFIG),
         fault=fail("bad/http-429-retry-after/resolve", 429, 1, **{"Retry-After": "1"}), parameters=_GPT2_PARAMS),
    Case("dropped-always", "every model-info connection closed without an answer",
         "Error: could not reach {endpoint}: connection failed", 6, {"model.safetensors": _GPT2_WEIGHTS},
         fault=lambda hub: hub.drop_connection_next("/api/models/bad/dropped-always", 50)),
    Case("dropped-once", "one connection closed without an answer", "", 0, weights_with(GPT2_CONFIG),
         fault=lambda hub: hub.drop_connection_next("bad/dropped-once", 1), parameters=_GPT2_PARAMS),
    Case("truncated-config-once", "config.json cut short once (half the promised bytes)", "", 0,
         weights_with(GPT2_CONFIG), fault=lambda hub: hub.truncate_next("truncated-config-once/resolve/main/config.json"),
         parameters=_GPT2_PARAMS),
    Case("truncated-config-always", "config.json cut short on every try",
         "Error: config.json: the Hub kept cutting the response short", 6,
         weights_with(GPT2_CONFIG), fault=lambda hub: hub.truncate_next("truncated-config-always/resolve/main/config.json", 50)),
    Case("truncated-header-always", "a weights header cut short on every try",
         "Error: model.safetensors: the Hub kept cutting the response short (32,768 of 65,536 bytes)", 6,
         weights_with(GPT2_CONFIG), fault=lambda hub: hub.truncate_next("/cdn/bad%2Ftruncated-header-always", 50)),
    Case("redirect-loop", "config.json redirects to itself forever",
         "Error: too many redirects (over 5) reading {endpoint}/bad/redirect-loop/resolve/main/config.json", 6,
         weights_with(GPT2_CONFIG), fault=lambda hub: hub.redirect_loop("bad/redirect-loop/resolve/main/config.json")),
    Case("slow-hub", "every answer takes 1 s, with --timeout 0.3",
         "Error: the deadline passed before the Hub answered", 6,
         weights_with(GPT2_CONFIG), args=("--timeout", "0.3"), fault=setting(latency=1.0)),
    Case("range-ignored", "the server ignores Range and streams a whole 4.2 GB shard", "", 0, _BIG_SHARD,
         fault=setting(ignore_range=True), parameters=math.prod(_BIG[0][2])),
    # -- adapters (a real PEFT adapter of fixtures/adapters; its config's base changed where the row says) --
    Case("adapter-base-missing", "a PEFT adapter whose base model does not exist",
         "Error: base model of bad/adapter-base-missing: repository bad/no-such-base not found, or private and not "
         "visible to anonymous requests", 3, _adapter(_TIGRINYA, base_model_name_or_path="bad/no-such-base")),
    Case("adapter-base-gated", "a PEFT adapter whose base is gated (not in the snapshot), without a token",
         "Error: base model of bad/adapter-base-gated: bad/gated-base is gated: your request had no token", 4,
         _adapter(_TIGRINYA, base_model_name_or_path="bad/gated-base"),
         fault=lambda hub: hub.add_repo(FakeRepo("bad/gated-base", {"model.safetensors": _GPT2_WEIGHTS},
                                                 gated="manual", allowed_tokens=frozenset({GOOD_TOKEN})))),
    Case("adapter-base-local-path", "a PEFT adapter trained on a local folder (base_model_name_or_path a path)",
         "Error: bad/adapter-base-local-path was trained on a local model ('/home/user/models/gpt2'), not a Hub repo",
         2, _adapter(_TIGRINYA, base_model_name_or_path="/home/user/models/gpt2")),
    Case("adapter-shape-mismatch", "a real gemma-2b adapter served on Llama-2-7B (--base)",
         "Error: adapter_model.safetensors: tensor 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' "
         "has shape [16, 2048], but the base meta-llama/Llama-2-7b-hf needs [rank, 4096] for "
         "'model.layers.0.self_attn.q_proj' (4096 x 4096)", 5, _adapter("Jr1407__gemma-2b-sql"),
         args=("--base", "meta-llama/Llama-2-7b-hf")),
    Case("adapter-not-peft", "an MLX adapter (adapter_config.json without peft_type, adapters.safetensors)",
         "Error: adapter_config.json is not a PEFT adapter config: no 'peft_type' field (an MLX adapter: "
         "fine_tune_type)", 5,
         {"adapter_config.json": FakeFile.of(json.dumps({"fine_tune_type": "lora", "num_layers": 28,
                                                          "lora_parameters": {"rank": 16, "scale": 20.0}})),
          "adapters.safetensors": _GPT2_WEIGHTS}),
    Case("config-huge-integer", "config.json with vocab_size 10^320 (overflows a float)",
         "config not understood (config.json: field 'vocab_size' must be <= 9,007,199,254,740,992, got a 321-digit "
         "number): weights only", 0, weights_with(gpt2_config(vocab_size=10**320)), parameters=_GPT2_PARAMS),
    # -- hostile servers (issue 16): the deadline inside every read, capped bodies, odd statuses, server text --
    Case("trickle-body", "config.json sent at 1 byte per 0.2 s (about 2 minutes), with --timeout 1",
         "Error: the deadline passed before the Hub answered", 6, weights_with(GPT2_CONFIG),
         args=("--timeout", "1"), fault=lambda hub: hub.trickle_next("bad/trickle-body/resolve/main/config.json", 0.2)),
    Case("trickle-headers", "the model-info status line and headers sent at 1 byte per 0.2 s, with --timeout 1",
         "Error: the deadline passed before the Hub answered", 6, weights_with(GPT2_CONFIG),
         args=("--timeout", "1"),
         fault=lambda hub: hub.trickle_next("/api/models/bad/trickle-headers", 0.2, headers_too=True)),
    Case("gzip-bomb", "a model-info answer of 40 KB that gzip inflates to 24 MB",
         "Error: the Hub's model-info answer for bad/gzip-bomb is over 16,777,216 bytes; refusing to read it", 6,
         weights_with(GPT2_CONFIG), fault=lambda hub: hub.gzip_bomb_next("/api/models/bad/gzip-bomb", 24 << 20)),
    Case("index-over-cap", "a model.safetensors.index.json of 20 MB",
         "Error: model.safetensors.index.json: over 16,777,216 bytes in bad/index-over-cap; refusing to read it as "
         "metadata", 5, {**sharded({"weight_map": {}}), "model.safetensors.index.json": FakeFile(b"{", 20 << 20)}),
    Case("index-of-junk", "an index of 13 MB of junk tensor names, all in the one shard (a first read sized from "
         "it would fetch weights)", "", 0,
         {"config.json": FakeFile.of(json.dumps(GPT2_CONFIG)), "model.safetensors": _GPT2_WEIGHTS,
          "model.safetensors.index.json": FakeFile.of(json.dumps(
              {"weight_map": {f"junk.{i:07d}.weight": "model.safetensors" for i in range(300_000)}}))},
         parameters=_GPT2_PARAMS),
    Case("config-204", "config.json answered with HTTP 204 (no content)",
         "Error: the Hub answered HTTP 204 with no file content for config.json", 6, weights_with(GPT2_CONFIG),
         fault=fail("bad/config-204/resolve/main/config.json", 204)),
    Case("config-302-no-location", "config.json answered with a 302 that has no Location",
         "Error: the Hub answered HTTP 302 without saying where to "
         "({endpoint}/bad/config-302-no-location/resolve/main/config.json)", 6, weights_with(GPT2_CONFIG),
         fault=fail("bad/config-302-no-location/resolve/main/config.json", 302)),
    Case("echoed-token", "a 403 whose X-Error-Message echoes the request's Authorization header",
         "Error: access to bad/echoed-token was refused (Bearer ***)", 4, weights_with(GPT2_CONFIG),
         args=("--token", GOOD_TOKEN),
         fault=fail("bad/echoed-token/resolve/main/config.json", 403, **{"X-Error-Message": f"Bearer {GOOD_TOKEN}"})),
    Case("escape-codes-in-error", "an error text with a screen-clearing escape code and an OSC-8 link",
         "Error: the Hub answered HTTP 418 for config.json: \\x1b[2J\\x1b]8;;https://evil.example\\x07click\\x1b]8;;\\x07",
         6, weights_with(GPT2_CONFIG),
         fault=fail("bad/escape-codes-in-error/resolve/main/config.json", 418,
                    **{"X-Error-Message": "\x1b[2J\x1b]8;;https://evil.example\x07click\x1b]8;;\x07"})),
]
FAST_RETRIES = {"http-503-always", "http-429-always", "http-503-twice", "dropped-always", "dropped-once",
                "truncated-config-once", "truncated-config-always", "truncated-header-always", "listed-shard-404"}


def serve(hub: FakeHub, case: Case) -> None:
    if case.files is not None:
        hub.add_repo(FakeRepo(case.repo_id, case.files, allowed_tokens=frozenset({GOOD_TOKEN}), **case.repo_options))
    if case.fault:
        case.fault(hub)


# Rows whose answer is right but whose code path is not yet: strict, so the fix turns them red until removed.
KNOWN_BUGS: dict[str, tuple[type, str]] = {}  # case name -> (exception, why) for a row marked xfail until fixed


def _params():
    for case in CASES:
        bug = KNOWN_BUGS.get(case.name)
        marks = [pytest.mark.xfail(strict=True, raises=bug[0], reason=bug[1])] if bug else []
        yield pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", list(_params()))
def test_bad_input(hub, gpumem, monkeypatch, case):
    if case.name in FAST_RETRIES:  # backoff jitter of 1%: the retry schedule is real, its sleeps are ms
        monkeypatch.setattr(hub_module, "random", types.SimpleNamespace(uniform=lambda low, high: 0.01))
    serve(hub, case)
    code, out, err = gpumem("hf", case.repo_id, *case.args, "--json", "--no-cache")
    assert "Traceback" not in err
    assert code == case.code, err
    expected = case.answer.format(endpoint=hub.endpoint, sha=fake_sha(case.repo_id))
    if code:
        assert err.splitlines()[0] == expected
        assert out == "" or json.loads(out)[-1]["exit_code"] == code  # --json: the error in place of the report
    else:
        report = json.loads(out)
        assert report["source"] == "hub" and report["parameters"] == case.parameters
        if expected:
            assert expected in report["notes"]
        else:
            assert not [n for n in report["notes"] if "snapshot" in n or "not understood" in n]


def test_ignored_range_sends_only_about_the_header(hub, gpumem):
    case = next(c for c in CASES if c.name == "range-ignored")
    serve(hub, case)
    code, _, err = gpumem("hf", case.repo_id, "--json", "--no-cache")
    assert code == 0, err
    shard = hub.repos[case.repo_id].files["model.safetensors"]
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert cdn and all(r.status == 200 for r in cdn)  # the server really did ignore Range
    # The server streams a 4.2 GB file; the client stops after the header. The slack is what the
    # loopback socket buffers take in before the client closes (a few MB), not the shard.
    assert shard.size > 4 * 10**9
    assert sum(r.bytes_sent for r in cdn) < len(shard.prefix) + 16 * 2**20


def test_an_index_of_junk_never_turns_the_first_read_into_a_download(hub, gpumem):
    case = next(c for c in CASES if c.name == "index-of-junk")
    serve(hub, case)
    code, _, err = gpumem("hf", case.repo_id, "--json", "--no-cache")
    assert code == 0, err
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert cdn and sum(r.bytes_sent for r in cdn) <= 1024 * 1024  # the predicted 14 MB read is capped at 1 MiB


def test_a_trickling_server_is_cut_at_the_timeout(hub, gpumem):
    for name in ("trickle-body", "trickle-headers"):
        case = next(c for c in CASES if c.name == name)
        serve(hub, case)
        started = time.monotonic()
        code, _, err = gpumem("hf", case.repo_id, *case.args, "--no-cache")
        assert code == 6 and time.monotonic() - started < 3.0, err  # --timeout 1, not the 2 minutes of trickle


def test_timeout_deadline_ends_quickly_with_exit_6(hub, gpumem):
    case = next(c for c in CASES if c.name == "slow-hub")
    serve(hub, case)
    started = time.monotonic()
    code, _, err = gpumem("hf", case.repo_id, "--timeout", "0.3", "--no-cache")
    elapsed = time.monotonic() - started
    assert code == 6 and "--timeout" in err and "Traceback" not in err
    assert elapsed < 2.0  # the deadline, not 5 retries x 10 s per-request timeouts


def test_retry_after_is_honoured_before_the_retry(hub, gpumem):
    case = next(c for c in CASES if c.name == "http-429-retry-after")
    serve(hub, case)
    code, _, err = gpumem("hf", case.repo_id, "--json", "--no-cache")
    assert code == 0, err
    tries = [r for r in hub.requests if "/resolve/" in r.path and case.repo_id in r.path]
    refused = next(r for r in tries if r.status == 429)
    retried = [r for r in tries if r.timestamp > refused.timestamp and r.path == refused.path]
    assert retried and retried[0].timestamp - refused.timestamp >= 0.9


def test_every_error_class_has_a_row_or_a_test():
    """The taxonomy in errors.py: each concrete class is what some row of the table answers."""
    from gpumem import errors

    by_code = {c.code for c in CASES}
    documented = {int(cls.exit_code) for cls in vars(errors).values()
                  if isinstance(cls, type) and issubclass(cls, errors.GpumemError)}
    # 1 is the generic code of the base class only; 130 (Ctrl-C) is test_security.py::test_first_ctrl_c_*
    assert documented - {1, 130} <= by_code


# -- bounded fuzzing (a few seconds; gpumem_dev/fuzz.py runs the long version) ------------------------

@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_fuzz_config_parser_raises_only_bad_config(config):
    check_config(config)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=6), tensor, max_size=5), st.integers(-20, 20))
def test_fuzz_safetensors_headers_through_the_reader(entries, size_delta):
    check_safetensors(entries, size_delta)


def test_fuzz_helpers_see_real_failures():
    """The fuzz checks are not vacuous: a good header parses, hostile ones raise BadHeader."""
    prefix, size = safetensors_bytes([("w", "F32", (2, 3))])
    assert read_weight_header(lambda s, n: (prefix + bytes(size))[s:s + n], "safetensors", "f", len(prefix) + size)
    with pytest.raises(FormatError):
        parse_architecture({"num_hidden_layers": 0})


# -- docs/bad-inputs.md is this table ------------------------------------------------------------------


def render_table() -> str:
    """The Markdown table of CASES, as docs/bad-inputs.md holds it."""
    rows = ["| # | Bad input | gpumem answers (first line; for exit 0 the note in the report) | Exit | Test |",
            "|---|---|---|---|---|"]
    for number, case in enumerate(CASES, 1):
        answer = case.answer.format(endpoint="http://127.0.0.1:PORT", sha="<commit sha>")
        cell = f"`{answer}`".replace("|", "\\|") if answer else "the correct report, no error"
        if case.name in KNOWN_BUGS:
            cell += f" (**not yet**: today a traceback, {KNOWN_BUGS[case.name][1]})"
        rows.append(f"| {number} | {case.input} | {cell} | {case.code} | "
                    f"`test_reliability.py::test_bad_input[{case.name}]` |")
    return "\n".join(rows)


def test_doc_table_matches_the_cases():
    text = DOC.read_text()
    assert text.split(BEGIN, 1)[1].split(END, 1)[0].strip() == render_table(), \
        "docs/bad-inputs.md is stale: run `python tests/test_reliability.py`"


if __name__ == "__main__":  # regenerate the table in docs/bad-inputs.md
    before, rest = DOC.read_text().split(BEGIN, 1)
    DOC.write_text(f"{before}{BEGIN}\n{render_table()}\n{END}{rest.split(END, 1)[1]}")
