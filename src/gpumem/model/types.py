"""Frozen value types passed between gpumem's layers (no behaviour beyond derived properties)."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain
from typing import TypeVar, overload

T = TypeVar("T")


class Note(str):
    """A report note that names library parameters, worded as errors are (errors.GpumemError): `option` is the
    parameter the note starts with, `hint` (after "; ") says what to do and names `hint_options` as words of their
    own, so that the CLI can say them as its flags. A plain str note names none."""

    text: str
    option: str | None
    hint: str | None
    hint_options: tuple[str, ...]

    def __new__(cls, text: str, *, option: str | None = None, hint: str | None = None,
                hint_options: tuple[str, ...] = ()) -> Note:
        note = super().__new__(cls, note_with_hint(text, hint))
        note.text, note.option, note.hint, note.hint_options = text, option, hint, hint_options
        return note


def note_with_hint(text: str, hint: str | None) -> str:
    """How a note reads with its hint: "text; hint" (the text alone without one). `Note` and the CLI's flag-worded
    notes both say it so."""
    return text if hint is None else f"{text}; {hint}"


# Integer dtypes an index buffer (position_ids) is stored in.
_INDEX_DTYPES = frozenset({"I64", "I32"})


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One stored tensor as a header describes it; `nbytes` is exact (the parser computed it)."""

    name: str
    dtype: str  # safetensors dtype ("BF16", "I32", ...) or ggml type name ("Q4_K", "F16", ...)
    shape: tuple[int, ...]
    nbytes: int
    file: str = ""  # repo-relative path (or local path) of the file that holds it

    @property
    def numel(self) -> int:
        """Number of stored elements (packed elements for packed dtypes)."""
        return math.prod(self.shape)

    @property
    def is_buffer(self) -> bool:
        """True for stored tensors that are not parameters: rotary inv_freq, position ids and causal attention masks.

        Old transformers saved Llama's `rotary_emb.inv_freq` (F32 [head_dim/2]) with the weights, and BERT/RoBERTa/CLIP
        their `embeddings.position_ids` (I64 [1, max_positions], an index buffer, persistent before 4.31). GPT-2-style
        models (gpt2, GPT-Neo, GPT-J) store the causal mask as `attn.bias` [1, 1, n_ctx, n_ctx] and
        `attn.masked_bias` (a scalar). A real bias is a vector, so the mask is told apart by its 4-D
        [1, 1, n, n] shape, never by name alone (Qwen2's `q_proj.bias`, BERT's `attention...bias` are real).
        """
        leaf = self.name.rpartition(".")[2]
        if leaf == "inv_freq" or (leaf == "position_ids" and self.dtype in _INDEX_DTYPES):
            return True
        if leaf == "masked_bias":
            return self.numel <= 1
        shape = self.shape
        return leaf == "bias" and len(shape) == 4 and shape[0] == shape[1] == 1 and shape[2] == shape[3]


class Joined(Sequence[T]):
    """Sequences read as one, in order, without copying them: a table joined from 163 headers' columns would
    otherwise copy 92k rows per column, and the garbage collector would visit every row of each copy once more.
    Reading it in order is as fast as a tuple; reading one row finds its part first."""

    __slots__ = ("_parts", "_ends")

    def __init__(self, parts: Iterable[Sequence[T]]) -> None:
        self._parts = tuple(parts)
        self._ends = list(accumulate(map(len, self._parts)))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __iter__(self) -> Iterator[T]:
        return chain.from_iterable(self._parts)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[T, ...]: ...

    def __getitem__(self, index: int | slice) -> T | tuple[T, ...]:
        if isinstance(index, slice):
            return tuple(self)[index]
        if index < 0:
            index += len(self)
        part = bisect_right(self._ends, index)
        if not 0 <= index < len(self):
            raise IndexError("index out of range")
        return self._parts[part][index - (self._ends[part - 1] if part else 0)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


@dataclass(frozen=True, slots=True)
class TensorTable:
    """Stored tensors as columns, one sequence per field in the same order: what a header parser gives (tuples)
    and counting reads, without an object per tensor (DeepSeek-V3 stores 92k tensors; its summary keeps a few
    dozen classes). Tables joined by `concat` read their parts' columns in place (`Joined`)."""

    names: Sequence[str] = ()
    dtypes: Sequence[str] = ()
    shapes: Sequence[tuple[int, ...]] = ()
    nbytes: Sequence[int] = ()
    files: Sequence[str] = ()

    def __len__(self) -> int:
        return len(self.names)

    @classmethod
    def of(cls, tensors: Iterable[TensorInfo]) -> TensorTable:
        """The table of these tensors, in order."""
        rows = tuple(tensors)
        return cls(tuple(t.name for t in rows), tuple(t.dtype for t in rows), tuple(t.shape for t in rows),
                   tuple(t.nbytes for t in rows), tuple(t.file for t in rows))

    @classmethod
    def concat(cls, tables: Iterable[TensorTable]) -> TensorTable:
        """One table holding these tables' rows, in order."""
        parts = list(tables)
        if len(parts) == 1:
            return parts[0]
        return cls(Joined(t.names for t in parts), Joined(t.dtypes for t in parts), Joined(t.shapes for t in parts),
                   Joined(t.nbytes for t in parts), Joined(t.files for t in parts))

    def tensors(self) -> tuple[TensorInfo, ...]:
        """One TensorInfo per row."""
        return tuple(map(TensorInfo, self.names, self.dtypes, self.shapes, self.nbytes, self.files))


@dataclass(frozen=True, slots=True)
class Quantization:
    """What a pre-quantized checkpoint is, and what its quantization costs."""

    method: str  # "gptq", "awq", "compressed-tensors", "bitsandbytes-4bit", "bitsandbytes-8bit",
    #              "fp8", "fp8-block", "mxfp4", "nvfp4", "gguf"
    bits: int | None  # nominal bits of the quantized weights (4, 8, ...), None if unknown
    quantized_parameters: int  # real (unpacked) parameters held in quantized form
    quantized_bytes: int  # bytes of the packed weights themselves
    side_data_bytes: int  # scales, zeros, g_idx, SCB, absmax, ... (memory, not parameters)

    @property
    def bits_per_weight(self) -> float:
        """Effective bits per quantized weight, side data included."""
        if not self.quantized_parameters:
            return 0.0
        return (self.quantized_bytes + self.side_data_bytes) * 8 / self.quantized_parameters


@dataclass(frozen=True, slots=True)
class WeightCount:
    """Exact counts over a checkpoint's stored tensors."""

    parameters: int | None  # real parameter count; None when it cannot be known (say why in notes)
    stored_elements: dict[str, int]  # per dtype, as the Hub's `safetensors.total` counts them
    weight_bytes: int  # exact bytes of every stored tensor
    buffer_elements: int = 0  # stored but not parameters (rotary inv_freq, attention masks)
    tied_embeddings: bool = False
    quantization: Quantization | None = None
    notes: tuple[str, ...] = field(default=())  # warnings worth showing the user

    @property
    def stored_total(self) -> int:
        """Every stored element, as the Hub's `safetensors.total`."""
        return sum(self.stored_elements.values())


# How tensor parallelism shards a stored tensor.
SPLIT, VOCAB, REPLICATED = "split", "vocab", "replicated"


@dataclass(frozen=True, slots=True)
class TensorClass:
    """Stored tensors alike in everything the memory model asks about, and how many there are.

    `module` is the module's name without layer and expert indices (`mlp.down_proj`,
    `mlp.experts.down_proj`, `model.embed_tokens`); `leaf` the tensor's own name in it (`weight`, `qweight`,
    `weight_scale_inv`, ...). `parameters` are the real parameters of ONE such tensor (unpacked for packed
    quantized storage; 0 for side data and buffers). `template` is the full name with each index component
    as `#` and `sites` the indices of each tensor ("3.17": layer 3, expert 17), so names can be rebuilt.
    """

    split: str  # SPLIT (column or row), VOCAB (rows of the vocabulary) or REPLICATED on every rank
    role: str  # dense | routed_expert | shared_expert | embedding | head | side (quantization data) | buffer
    module: str
    leaf: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    parameters: int
    count: int
    template: str = ""
    sites: tuple[str, ...] = ()

    def names(self) -> list[str]:
        """The full name of every tensor of the class."""
        if "#" not in self.template:
            return [self.template] * self.count
        parts = self.template.split(".")
        slots = [i for i, part in enumerate(parts) if part == "#"]
        names = []
        for site in self.sites:
            for slot, index in zip(slots, site.split("."), strict=True):
                parts[slot] = index
            names.append(".".join(parts))
        return names

    def to_row(self) -> list:
        """Compact JSON row (the cache stores summaries as rows). The sites are one string, joined by commas (a site
        is digits and dots): DeepSeek-V3's 46k sites encode and decode as one JSON string, not 46k."""
        return [self.split, self.role, self.module, self.leaf, self.dtype, list(self.shape), self.nbytes,
                self.parameters, self.count, self.template, ",".join(self.sites)]

    @classmethod
    def from_row(cls, row: list) -> TensorClass:
        """Inverse of to_row (a class has sites, one per tensor, exactly when its template has a `#`)."""
        split, role, module, leaf, dtype, shape, nbytes, parameters, count, template, sites = row
        return cls(split, role, module, leaf, dtype, tuple(shape), nbytes, parameters, count, template,
                   tuple(sites.split(",")) if "#" in template else ())


@dataclass(frozen=True, slots=True)
class ModelSummary:
    """What counting a checkpoint's tensors leaves for everything after it: the counts and the tensor classes.

    Made in one pass over the tensors (params.summarize_weights); the memory model, the recommender and fit
    read only this. Without classes (a bare parameter count, a pickle-only repo) every byte counts as split.
    """

    count: WeightCount
    classes: tuple[TensorClass, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready form, used by the cache."""
        c, q = self.count, self.count.quantization
        quant = None if q is None else [q.method, q.bits, q.quantized_parameters, q.quantized_bytes,
                                        q.side_data_bytes]
        return {"parameters": c.parameters, "stored_elements": c.stored_elements, "weight_bytes": c.weight_bytes,
                "buffer_elements": c.buffer_elements, "tied_embeddings": c.tied_embeddings, "quantization": quant,
                "notes": list(c.notes), "classes": [k.to_row() for k in self.classes]}

    @classmethod
    def from_dict(cls, data: dict) -> ModelSummary:
        """Inverse of to_dict."""
        quant = data["quantization"]
        count = WeightCount(data["parameters"], dict(data["stored_elements"]), data["weight_bytes"],
                            data["buffer_elements"], data["tied_embeddings"],
                            None if quant is None else Quantization(*quant), tuple(data["notes"]))
        return cls(count, tuple(TensorClass.from_row(row) for row in data["classes"]))

    def tensors(self) -> tuple[TensorInfo, ...]:
        """Stand-ins for the stored tensors (name, dtype, shape, bytes; no file), grouped by class."""
        return tuple(TensorInfo(name, c.dtype, c.shape, c.nbytes) for c in self.classes for name in c.names())


@dataclass(frozen=True, slots=True)
class WeightSet:
    """One counted set of weights (the root model, a diffusers component, or a GGUF variant) as read."""

    name: str
    format: str  # "safetensors" | "gguf" | "pytorch-bin"
    files: tuple[str, ...]
    tensors: tuple[TensorInfo, ...]
    config: dict | None = None  # config.json (or, for GGUF, the metadata translated to config keys)
    quantize_config: dict | None = None
    estimated_bytes: int | None = None  # .bin repos: the index's total_size; tensors are then unknown
    notes: tuple[str, ...] = ()
    adapter_config: dict | None = None  # a PEFT adapter's adapter_config.json (its tensors are the adapter's)
    summary: ModelSummary | None = None  # the tensors counted (the cache keeps this instead of the tensors)

    def to_dict(self) -> dict:
        """JSON-ready form (tensors as [name, dtype, shape, nbytes, file] rows), used by the cache."""
        data = {
            "name": self.name, "format": self.format, "files": list(self.files),
            "tensors": [[t.name, t.dtype, list(t.shape), t.nbytes, t.file] for t in self.tensors],
            "config": self.config, "quantize_config": self.quantize_config,
            "estimated_bytes": self.estimated_bytes, "notes": list(self.notes),
        }
        if self.adapter_config is not None:  # only adapters carry it (the shipped snapshot holds none)
            data["adapter_config"] = self.adapter_config
        if self.summary is not None:
            data["summary"] = self.summary.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> WeightSet:
        """Inverse of to_dict."""
        tensors = tuple(TensorInfo(n, d, tuple(s), b, f) for n, d, s, b, f in data["tensors"])
        summary = ModelSummary.from_dict(data["summary"]) if data.get("summary") is not None else None
        return cls(data["name"], data["format"], tuple(data["files"]), tensors, data.get("config"),
                   data.get("quantize_config"), data.get("estimated_bytes"), tuple(data.get("notes", ())),
                   data.get("adapter_config"), summary)


@dataclass(frozen=True, slots=True)
class RepoMetadata:
    """Everything gpumem read about one revision of a repo: enough to answer without the network."""

    repo_id: str
    revision: str  # the commit sha (or the snapshot's recorded revision)
    source: str  # "hub" | "cache" | "snapshot" | "local"
    weight_sets: tuple[WeightSet, ...]
    files: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """JSON-ready form, used by the cache and the built-in snapshot."""
        return {"repo_id": self.repo_id, "revision": self.revision, "source": self.source,
                "weight_sets": [w.to_dict() for w in self.weight_sets], "files": list(self.files),
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict) -> RepoMetadata:
        """Inverse of to_dict."""
        return cls(data["repo_id"], data["revision"], data["source"],
                   tuple(WeightSet.from_dict(w) for w in data["weight_sets"]), tuple(data.get("files", ())),
                   tuple(data.get("notes", ())))
