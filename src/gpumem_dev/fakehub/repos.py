"""Repositories the fake Hub serves: real files, virtual safetensors files, and their builders.

A virtual file is its real first bytes (a safetensors header) plus a length; every byte after the
prefix is zero and is generated on demand, so a 800 GB checkpoint costs a few hundred KB of memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import accumulate

from gpumem.model.safetensors_header import DTYPE_BITS

from ..fixtures import HUB_FIXTURES

# Tokens the fake Hub knows: one is granted every gated/private fixture repo, one is valid but granted nothing.
GOOD_TOKEN = "hf_fakehub_granted_0123456789abcdef"
NO_ACCESS_TOKEN = "hf_fakehub_no_access_0123456789abc"

# Files the Hub stores through Git LFS (and so redirects to its CDN), by suffix as in a .gitattributes.
LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pth", ".pt", ".onnx", ".h5", ".msgpack", ".ot", ".tflite",
                ".model", ".pdf")

_ZEROS = bytes(1 << 20)
_SHARD_NAME = re.compile(r"^model-(\d+)-of-(\d+)\.safetensors$")

Tensor = tuple[str, str, Sequence[int]]  # (name, safetensors dtype, shape)


@dataclass(frozen=True)
class FakeFile:
    """A file's real leading bytes and its total size; bytes past the prefix are zeros."""

    prefix: bytes
    size: int

    def __post_init__(self) -> None:
        if self.size < len(self.prefix):
            raise ValueError(f"size {self.size} is smaller than the {len(self.prefix)}-byte prefix")

    @classmethod
    def of(cls, content: bytes | str) -> FakeFile:
        """A small file held whole."""
        data = content.encode() if isinstance(content, str) else content
        return cls(data, len(data))

    def chunks(self, start: int = 0, stop: int | None = None, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Yield bytes [start, stop) in pieces of at most `chunk` bytes, zeros generated lazily."""
        stop = self.size if stop is None else min(stop, self.size)
        position = start
        while position < stop:
            end = min(stop, position + chunk)
            if position < len(self.prefix):
                piece = self.prefix[position:min(end, len(self.prefix))]
            else:
                piece = _ZEROS[:min(end - position, len(_ZEROS))]
            position += len(piece)
            yield piece

    def read(self, start: int = 0, stop: int | None = None) -> bytes:
        """Bytes [start, stop) as one bytes object (small ranges only)."""
        return b"".join(self.chunks(start, stop))

    @cached_property
    def sha256(self) -> str:
        """The content's sha256 when held whole; for a virtual file, a stand-in digest of prefix and size
        (hashing hundreds of GB of zeros would take minutes)."""
        if self.size == len(self.prefix):
            return hashlib.sha256(self.prefix).hexdigest()
        return hashlib.sha256(self.prefix + b"\0fakehub-virtual-size=" + str(self.size).encode()).hexdigest()

    @cached_property
    def git_oid(self) -> str:
        """The git blob id the Hub reports as `blobId`/ETag of a regular (non-LFS) file."""
        return hashlib.sha1(b"blob %d\0" % self.size + self.read()).hexdigest()


@dataclass(frozen=True)
class FakeRepo:
    """One model repo: its files (the same at every revision), commit sha, refs and access rules."""

    repo_id: str
    files: dict[str, FakeFile]
    sha: str = ""  # defaults to a sha derived from repo_id
    refs: dict[str, str] = field(default_factory=dict)  # branch, tag or "refs/pr/N" -> sha; "main" is implied
    gated: bool | str = False  # False, "auto" or "manual", as the Hub's model info says
    private: bool = False
    allowed_tokens: frozenset[str] = frozenset()  # tokens that may read a gated or private repo
    info: dict = field(default_factory=dict)  # extra model-info fields: tags, config, safetensors, lastModified...

    def __post_init__(self) -> None:
        if not self.sha:
            object.__setattr__(self, "sha", fake_sha(self.repo_id))
        object.__setattr__(self, "refs", {"main": self.sha, **self.refs})

    def resolve(self, revision: str) -> str | None:
        """The commit sha a branch, tag, PR ref or full sha names here, or None."""
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.refs.values() else None

    @staticmethod
    def is_lfs(path: str) -> bool:
        """Whether the Hub would serve this path through LFS (a redirect to the CDN)."""
        return path.endswith(LFS_SUFFIXES)

    def model_info(self, sha: str, blobs: bool) -> dict:
        """The JSON of GET /api/models/{id}/revision/{rev} (with ?blobs=true: sizes and LFS pointers)."""
        siblings = []
        for path in sorted(self.files):
            sibling: dict = {"rfilename": path}
            if blobs:
                file = self.files[path]
                sibling["size"] = file.size
                if self.is_lfs(path):
                    pointer = FakeFile.of(f"version https://git-lfs.github.com/spec/v1\noid sha256:{file.sha256}\n"
                                          f"size {file.size}\n")
                    sibling["blobId"] = pointer.git_oid
                    sibling["lfs"] = {"sha256": file.sha256, "size": file.size, "pointerSize": pointer.size}
                else:
                    sibling["blobId"] = file.git_oid
            siblings.append(sibling)
        author = self.repo_id.split("/")[0] if "/" in self.repo_id else None
        info = {"_id": sha[:24], "id": self.repo_id, "modelId": self.repo_id, "author": author,
                "lastModified": "2024-01-01T00:00:00.000Z", "tags": [], "private": self.private,
                "disabled": False, **self.info}
        return {**info, "sha": sha, "gated": self.gated, "private": self.private, "siblings": siblings}


def fake_sha(seed: str) -> str:
    """A deterministic 40-hex commit sha for a synthetic repo."""
    return hashlib.sha1(f"fakehub:{seed}".encode()).hexdigest()


def tensor_nbytes(dtype: str, shape: Sequence[int]) -> int:
    """Exact bytes of a tensor's data; refuses element counts that do not fill whole bytes."""
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    if bits % 8:
        raise ValueError(f"{dtype} x {list(shape)} is {bits} bits, not a whole number of bytes")
    return bits // 8


def safetensors_bytes(tensors: Sequence[Tensor], metadata: dict[str, str] | None = None) -> tuple[bytes, int]:
    """A real safetensors header (8-byte length + JSON) for tensors laid out in the given order, and the
    data region's size. Written as the reference writer does: `__metadata__` first, compact JSON,
    padded with spaces to an 8-byte boundary."""
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name, dtype, shape in tensors:
        nbytes = tensor_nbytes(dtype, shape)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, offset


def virtual_safetensors(tensors: Sequence[Tensor], metadata: dict[str, str] | None = None) -> FakeFile:
    """A safetensors file with a real header and an all-zero data region that is never materialised."""
    header, data_size = safetensors_bytes(tensors, metadata)
    return FakeFile(header, len(header) + data_size)


def split_in_order(tensors: Sequence[Tensor], n_shards: int) -> list[list[Tensor]]:
    """Cut tensors, in order, into `n_shards` non-empty runs of about equal bytes."""
    if not 1 <= n_shards <= len(tensors):
        raise ValueError(f"cannot split {len(tensors)} tensors into {n_shards} shards")
    before = list(accumulate((tensor_nbytes(dtype, shape) for _, dtype, shape in tensors), initial=0))
    bounds = [0]
    for k in range(1, n_shards):
        # First tensor that starts at or past the k-th equal share, kept strictly after the previous cut
        # and early enough to leave one tensor for every later shard.
        cut = bisect_left(before, before[-1] * k / n_shards)
        bounds.append(min(max(cut, bounds[-1] + 1), len(tensors) - (n_shards - k)))
    bounds.append(len(tensors))
    return [list(tensors[a:b]) for a, b in zip(bounds, bounds[1:])]


def shard_name(index: int, count: int) -> str:
    """transformers' shard file name, e.g. model-00001-of-00015.safetensors."""
    return f"model-{index:05d}-of-{count:05d}.safetensors"


def sharded_files(shards: dict[str, list[Tensor]], metadata: dict[str, str] | None = None,
                  index: bytes | None = None) -> dict[str, FakeFile]:
    """Virtual shard files plus model.safetensors.index.json (the given one, else written as transformers does)."""
    files = {name: virtual_safetensors(tensors, metadata) for name, tensors in shards.items()}
    if index is None:
        weight_map = {tensor[0]: name for name, tensors in shards.items() for tensor in tensors}
        total = sum(tensor_nbytes(dtype, shape) for tensors in shards.values() for _, dtype, shape in tensors)
        document = {"metadata": {"total_size": total}, "weight_map": weight_map}
        index = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    files["model.safetensors.index.json"] = FakeFile.of(index)
    return files


def safetensors_summary(tensors: Sequence[Tensor]) -> dict:
    """The model-info `safetensors` field: stored elements per dtype and in total."""
    per_dtype: dict[str, int] = {}
    for _, dtype, shape in tensors:
        per_dtype[dtype] = per_dtype.get(dtype, 0) + math.prod(shape)
    return {"parameters": per_dtype, "total": sum(per_dtype.values())}


def config_summary(config: dict) -> dict:
    """The subset of config.json the Hub repeats in model info."""
    keys = ("architectures", "model_type", "quantization_config")
    return {key: config[key] for key in keys if key in config}


def _stub(path: str) -> FakeFile:
    # A file the real repo lists but the fixtures do not hold: readable, and plainly not the real thing.
    return FakeFile.of(f"fakehub stand-in for {path}: its content is not part of the fixtures\n")


def repo_from_fixture(folder: str, repo_id: str | None = None, gated: bool | str | None = None) -> FakeRepo:
    """The repo a fixtures/hub folder with a tensors.json describes: its real JSON files, virtual weights
    laid out as the real index (or the model-info shard names) says, and the real model info's fields."""
    base = HUB_FIXTURES / folder
    manifest = json.loads((base / "tensors.json").read_text())
    tensors: list[Tensor] = [(name, dtype, shape) for name, (dtype, shape) in manifest["tensors"].items()]
    info_path = base / "hf_api_model_info.json"
    real_info = json.loads(info_path.read_text()) if info_path.exists() else None
    siblings = [s["rfilename"] for s in real_info["siblings"]] if real_info else []
    metadata = {"format": "pt"}

    files = {name: FakeFile.of((base / name).read_bytes())
             for name in ("config.json", "generation_config.json") if (base / name).exists()}
    index_path = base / "model.safetensors.index.json"
    shard_counts = {int(m.group(2)) for m in map(_SHARD_NAME.match, siblings) if m}
    if index_path.exists():
        weight_map = json.loads(index_path.read_text())["weight_map"]
        shards: dict[str, list[Tensor]] = {}
        for tensor in tensors:
            shards.setdefault(weight_map[tensor[0]], []).append(tensor)
        files.update(sharded_files(shards, metadata, index_path.read_bytes()))
    elif shard_counts:
        (count,) = shard_counts
        runs = split_in_order(tensors, count)
        files.update(sharded_files({shard_name(i, count): run for i, run in enumerate(runs, 1)}, metadata))
    else:
        files["model.safetensors"] = virtual_safetensors(tensors, metadata)
    files.update({path: _stub(path) for path in siblings if path not in files})

    config = json.loads(files["config.json"].prefix) if "config.json" in files else {}
    info = {"config": config_summary(config), "safetensors": safetensors_summary(tensors)}
    if real_info:
        kept = ("_id", "author", "lastModified", "createdAt", "tags", "library_name", "pipeline_tag", "config",
                "safetensors", "downloads", "likes")
        info.update({key: real_info[key] for key in kept if key in real_info})
    gated = (real_info or {}).get("gated", False) if gated is None else gated
    return FakeRepo(repo_id or folder.replace("__", "/", 1), files,
                    sha=(real_info or {}).get("sha") or fake_sha(folder), gated=gated,
                    allowed_tokens=frozenset({GOOD_TOKEN}), info=info)


def llama2_70b_repo() -> FakeRepo:
    """meta-llama/Llama-2-70b-hf: the 70b-chat folder's tensors and files (same names and shapes), gated."""
    return repo_from_fixture("meta-llama__Llama-2-70b-chat-hf", repo_id="meta-llama/Llama-2-70b-hf", gated="manual")


@lru_cache(maxsize=1)
def fixture_repos() -> tuple[FakeRepo, ...]:
    """Every fixtures/hub folder that has a tensors.json, plus meta-llama/Llama-2-70b-hf (built once)."""
    folders = sorted(p.parent.name for p in HUB_FIXTURES.glob("*/tensors.json"))
    return (*(repo_from_fixture(folder) for folder in folders), llama2_70b_repo())


# Llama 3.1 405B's published shapes (see SOURCES.md); the rest of config.json is Llama-3.1-8B's real config,
# which shares the family's tokenizer, RoPE scaling and norms.
LLAMA_405B_SHAPES = {"hidden_size": 16384, "intermediate_size": 53248, "num_hidden_layers": 126,
                     "num_attention_heads": 128, "num_key_value_heads": 8, "vocab_size": 128256}


def llama_tensors(config: dict, dtype: str = "BF16") -> list[Tensor]:
    """Every stored tensor of a transformers LlamaForCausalLM checkpoint, in state_dict order."""
    hidden, inter, vocab = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    q, kv = config["num_attention_heads"] * head_dim, config["num_key_value_heads"] * head_dim
    tensors: list[Tensor] = [("model.embed_tokens.weight", dtype, (vocab, hidden))]
    shapes = {"self_attn.q_proj": (q, hidden), "self_attn.k_proj": (kv, hidden), "self_attn.v_proj": (kv, hidden),
              "self_attn.o_proj": (hidden, q), "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden),
              "mlp.down_proj": (hidden, inter), "input_layernorm": (hidden,), "post_attention_layernorm": (hidden,)}
    for i in range(config["num_hidden_layers"]):
        tensors += [(f"model.layers.{i}.{module}.weight", dtype, shape) for module, shape in shapes.items()]
    tensors.append(("model.norm.weight", dtype, (hidden,)))
    if not config.get("tie_word_embeddings"):
        tensors.append(("lm_head.weight", dtype, (vocab, hidden)))
    return tensors


def synthetic_sharded_repo(repo_id: str = "meta-llama/Llama-3.1-405B", n_shards: int = 191,
                           num_layers: int = LLAMA_405B_SHAPES["num_hidden_layers"], **shapes: int) -> FakeRepo:
    """A Llama-3.1-405B-shaped BF16 checkpoint in `n_shards` virtual shards (fewer layers or other
    shapes on request), with config.json, an index and model info; public and ungated."""
    config = json.loads((HUB_FIXTURES / "meta-llama__Llama-3.1-8B" / "config.json").read_text())
    config.update(LLAMA_405B_SHAPES, num_hidden_layers=num_layers, **shapes)
    tensors = llama_tensors(config)
    runs = split_in_order(tensors, n_shards)
    files = sharded_files({shard_name(i, n_shards): run for i, run in enumerate(runs, 1)}, {"format": "pt"})
    files["config.json"] = FakeFile.of(json.dumps(config, indent=2) + "\n")
    info = {"config": config_summary(config), "safetensors": safetensors_summary(tensors),
            "tags": ["transformers", "safetensors", "llama", "text-generation"], "library_name": "transformers"}
    return FakeRepo(repo_id, files, sha=fake_sha(f"{repo_id}:{n_shards}:{num_layers}"), info=info)


ADAPTER_FIXTURES = HUB_FIXTURES.parent / "adapters"


def adapter_files(folder: str) -> dict[str, FakeFile]:
    """A real PEFT adapter of fixtures/adapters: its adapter_config.json and its weights (the real header,
    then zeros up to the real size, which the header's last data offset gives)."""
    base = ADAPTER_FIXTURES / folder
    header = (base / "adapter_model.safetensors.header").read_bytes()
    entries = json.loads(header[8:])
    data_size = max((e["data_offsets"][1] for k, e in entries.items() if k != "__metadata__"), default=0)
    return {"adapter_config.json": FakeFile.of((base / "adapter_config.json").read_bytes()),
            "adapter_model.safetensors": FakeFile(header, len(header) + data_size)}


def adapter_repo(folder: str, repo_id: str | None = None) -> FakeRepo:
    """A fixtures/adapters folder as the Hub repo it came from (README stand-in included)."""
    files = {**adapter_files(folder), "README.md": _stub("README.md")}
    return FakeRepo(repo_id or folder.replace("__", "/", 1), files, info={"tags": ["peft", "safetensors"]})
