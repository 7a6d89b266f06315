"""Long fuzz run of gpumem's parsers of untrusted bytes (hypothesis, many examples; CI runs a bounded slice).

Targets: safetensors headers (raw bytes, and structured headers read as fetch reads them), config.json
(parse_architecture), GGUF headers (mutations of a real file), index files (fetch's weight-map and
pickle-index handling), the Hub's model-info answer (hub.parse_model_info: JSON-shaped and raw bytes) and
cache entries (ResultCache.load of any bytes or JSON: a miss or an entry, never an exception). Each may
return a result or raise a gpumem error (GpumemError); anything else is a failure, printed with the
smallest input hypothesis finds.

    PYTHONPATH=src python -m gpumem_dev.fuzz --seconds 60     # per target; prints a Markdown summary
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
import traceback
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gpumem.errors import BadConfig, BadHeader, GpumemError
from gpumem.model.architecture import parse_architecture
from gpumem.model.gguf_header import IncompleteGGUF, parse_gguf
from gpumem.model.layout import WeightSetPlan
from gpumem.model.safetensors_header import PREFIX_BYTES, parse_header
from gpumem.reading.cache import ResultCache
from gpumem.reading.fetch import build_weight_set, predict_header_sizes, read_weight_header
from gpumem.reading.hub import parse_model_info

from .fixtures import FIXTURES

TINY_GGUF = (FIXTURES / "gguf" / "tiny-mix.gguf").read_bytes()
BATCH = 500


# -- strategies and checks shared with tests/test_reliability.py's bounded run --------------------------

def header(text: bytes | str, length: int | None = None) -> bytes:
    """A safetensors prefix: little-endian length (the real one unless given) then the header bytes."""
    data = text.encode() if isinstance(text, str) else text
    return (len(data) if length is None else length).to_bytes(8, "little") + data


json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True) | st.text(max_size=8)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
CONFIG_KEYS = ["num_hidden_layers", "n_layer", "hidden_size", "n_embd", "num_attention_heads", "n_head",
               "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size", "sliding_window",
               "layer_types", "use_sliding_window", "max_window_layers", "sliding_window_pattern",
               "attn_layer_period", "attn_layer_offset", "num_local_experts", "num_experts_per_tok",
               "kv_lora_rank", "text_config", "model_type", "architectures", "mamba_d_state", "mamba_num_heads",
               "max_position_embeddings", "tie_word_embeddings", "n_shared_experts"]
config_values = st.integers(-3, 4100) | json_values | st.sampled_from(
    ["llama", "gemma2", "mistral", "jamba", "full_attention", "sliding_attention", "mamba"])
configs = st.dictionaries(st.sampled_from(CONFIG_KEYS), config_values, max_size=14)
configs = configs | st.builds(lambda c, text: {**c, "text_config": text}, configs, configs) | json_values


def check_config(config) -> None:
    """parse_architecture either understands the config or raises BadConfig; nothing else."""
    try:
        arch = parse_architecture(config)
    except BadConfig as exc:
        assert exc.message.startswith("config.json")
        return
    assert arch.num_layers == len(arch.layer_kinds) >= 1
    assert arch.head_dim >= 1 and arch.num_attention_heads % arch.num_kv_heads == 0
    json.dumps(arch.to_dict())


def check_safetensors(entries: dict, size_delta: int) -> None:
    """A structured header (tensors mostly well-formed) read as fetch reads it: a result or BadHeader."""
    prefix = header(json.dumps(entries))
    size = max(0, len(prefix) + sum(_span(v) for v in entries.values()) + size_delta)
    data = prefix + bytes(64)

    def read(start: int, length: int) -> bytes:
        return data[start:min(start + length, size)]

    try:
        parsed = read_weight_header(read, "safetensors", "fuzz.safetensors", size or None)
    except BadHeader as exc:
        assert exc.message.startswith("fuzz.safetensors")
        return
    assert PREFIX_BYTES + parsed.header_size + sum(t.nbytes for t in parsed.tensors) == size  # tiles the file


def _span(value) -> int:
    try:
        return max(0, int(value["data_offsets"][1]) - int(value["data_offsets"][0]))
    except (TypeError, KeyError, IndexError, ValueError, OverflowError):
        return 0


dtypes = st.sampled_from(["F32", "BF16", "F16", "I8", "F4", "F8_E4M3", "U64", "Q9_FUTURE", ""])
tensor = st.fixed_dictionaries({"dtype": dtypes, "shape": st.lists(st.integers(-1, 70), max_size=3),
                                "data_offsets": st.lists(st.integers(-1, 600), min_size=2, max_size=2)}) | json_values


def raw_safetensors(data: bytes, size_delta: int) -> None:
    try:
        parse_header(data, "fuzz.safetensors", max(0, len(data) + size_delta) if size_delta else None)
    except GpumemError:
        pass


def gguf(mutations: list[tuple[int, int]], cut: int, known_size: bool) -> None:
    data = bytearray(TINY_GGUF)
    for position, value in mutations:
        data[position % len(data)] = value
    data = bytes(data[: max(24, len(data) - cut)])
    try:
        parse_gguf(data, "fuzz.gguf", len(data) if known_size else None)
    except (GpumemError, IncompleteGGUF):
        pass


def gguf_counts(field: int, value: int) -> None:
    """The preamble's counts and version set to extreme values."""
    data = bytearray(TINY_GGUF)
    offset, fmt = [(4, "<I"), (8, "<Q"), (16, "<Q")][field]
    struct.pack_into(fmt, data, offset, value % (1 << (8 * struct.calcsize(fmt))))
    try:
        parse_gguf(bytes(data), "fuzz.gguf", len(data))
    except (GpumemError, IncompleteGGUF):
        pass


_PLAN = WeightSetPlan("", "safetensors", "", ("a.safetensors",), "model.safetensors.index.json")
_BIN_PLAN = WeightSetPlan("", "pytorch-bin", "", ("pytorch_model.bin",), "pytorch_model.bin.index.json")


def index(document) -> None:
    """An index file (any JSON object) through fetch's sizing, checking and pickle-size paths."""
    if not isinstance(document, dict):
        return
    listed = {"a.safetensors", "pytorch_model.bin", "model.safetensors.index.json"}
    try:
        predict_header_sizes(document)
        build_weight_set(_PLAN, lambda p: 8, listed, {_PLAN.index: document}, {"a.safetensors": _EMPTY})
    except GpumemError:
        pass
    try:
        build_weight_set(_BIN_PLAN, lambda p: 8, listed, {_BIN_PLAN.index: document}, {})
    except GpumemError:
        pass


_EMPTY = parse_header(b"\x02\x00\x00\x00\x00\x00\x00\x00{}", "a.safetensors")
index_documents = st.dictionaries(st.sampled_from(["weight_map", "metadata", "total_size"]), json_values, max_size=3)
index_documents |= st.fixed_dictionaries({"weight_map": st.dictionaries(st.text(max_size=4), json_values, max_size=4),
                                          "metadata": json_values | st.dictionaries(st.just("total_size"), json_values)})

def model_info(body: bytes) -> None:
    """Any bytes as the Hub's model-info answer: a listing or HubUnavailable."""
    try:
        parse_model_info(body, "org/model")
    except GpumemError:
        pass


_SHA = "0123456789abcdef0123456789abcdef01234567"
_CACHE = ResultCache(Path(tempfile.mkdtemp(prefix="gpumem-fuzz-cache-")))
_ENTRY = _CACHE._repo_dir("https://hub.example", "org/model") / f"{_SHA}.json"


def cache_entry(body: bytes) -> None:
    """Any bytes where a cache entry is: load() gives a miss (and removes it) or a valid entry, never raises."""
    _ENTRY.parent.mkdir(parents=True, exist_ok=True)
    _ENTRY.write_bytes(body)
    _CACHE.load("https://hub.example", "org/model", _SHA)


entries = st.fixed_dictionaries({"repo_id": st.just("org/model") | json_values, "revision": st.just(_SHA) | json_values,
                                 "source": json_values, "files": json_values, "notes": json_values,
                                 "weight_sets": st.lists(st.dictionaries(st.sampled_from(
                                     ["name", "format", "files", "tensors", "config", "quantize_config",
                                      "estimated_bytes", "notes", "summary", "adapter_config"]), json_values),
                                     max_size=2) | json_values})
infos = st.fixed_dictionaries({"sha": st.just(_SHA) | json_values, "siblings": json_values | st.lists(
    st.dictionaries(st.sampled_from(["rfilename", "size", "lfs"]), json_values), max_size=4)})

TARGETS = {
    "safetensors: raw bytes": (raw_safetensors, (st.binary(max_size=600), st.integers(-64, 64))),
    "safetensors: structured header via fetch": (check_safetensors, (st.dictionaries(st.text(max_size=6), tensor,
                                                                                      max_size=6),
                                                                      st.integers(-20, 20))),
    "config.json: parse_architecture": (check_config, (configs,)),
    "GGUF: mutated real header": (gguf, (st.lists(st.tuples(st.integers(0, len(TINY_GGUF)), st.integers(0, 255)),
                                                  max_size=6), st.integers(0, 200), st.booleans())),
    "GGUF: extreme counts and version": (gguf_counts, (st.integers(0, 2), st.integers(0, 2**64))),
    "index files: fetch weight map / total_size": (index, (index_documents,)),
    "model info: JSON-shaped": (lambda d: model_info(json.dumps(d).encode()), (infos,)),
    "model info: raw bytes": (model_info, (st.binary(max_size=300),)),
    "cache entries: JSON-shaped": (lambda d: cache_entry(json.dumps(d).encode()), (entries,)),
    "cache entries: raw bytes": (cache_entry, (st.binary(max_size=300),)),
}


def run_target(function, strategies, seconds: float) -> tuple[int, list[str]]:
    """Batches of BATCH examples (fresh random seeds) until `seconds` pass; returns (examples, failures)."""
    examples, failures = 0, []

    def counted(args: tuple) -> None:
        nonlocal examples
        examples += 1
        function(*args)

    test = settings(max_examples=BATCH, deadline=None, database=None, derandomize=False,
                    phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))(
        given(st.tuples(*strategies))(counted))
    end = time.monotonic() + seconds
    while time.monotonic() < end and len(failures) < 3:
        try:
            test()
        except BaseException as exc:  # noqa: BLE001 - a fuzz finding, reported
            if isinstance(exc, KeyboardInterrupt):
                raise
            failures.append(f"{_first_error(exc)} on {_minimal_input(exc)}")
    return examples, failures


def _first_error(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup):  # hypothesis groups distinct bugs
        exc = exc.exceptions[0]
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"`{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}` at {Path(frame.filename).name}:{frame.lineno}"


def _minimal_input(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    notes = " ".join(" ".join(n.split()) for n in getattr(exc, "__notes__", []) if "args=" in n)
    return f"`{notes[:200]}`" if notes else "(see a rerun)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40.0, help="time per target")
    args = parser.parse_args()
    rows, total, failed = [], 0, 0
    for name, (function, strategies) in TARGETS.items():
        started = time.monotonic()
        examples, failures = run_target(function, strategies, args.seconds)
        total += examples
        failed += len(failures)
        rows.append(f"| {name} | {examples:,} | {time.monotonic() - started:.0f} s | "
                    f"{'; '.join(failures) or 'none'} |")
        print(rows[-1], flush=True)
    print("\n| Target | Examples | Time | Failures (non-gpumem exceptions) |\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"\n{total:,} examples, {failed} failing target batches")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
