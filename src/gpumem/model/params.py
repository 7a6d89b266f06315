"""Exact parameter counting over stored tensors: buffers, tied embeddings and quantized packing accounted for.

Counting makes one pass over the tensors and returns a ModelSummary: the counts, and the tensors grouped into
classes alike in everything the memory model asks (TP split, role, module, dtype, shape, bytes, parameters).
Nothing after counting sees a tensor. DeepSeek-V3's 92k tensors fall into a few hundred classes.
"""

from __future__ import annotations

import itertools
import math
import re
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from itertools import islice
from operator import add, mul, ne, sub
from typing import TypeVar

from ..errors import BadConfig, BadHeader
from .quantization import QuantScan, module_key, scan_modules
from .safetensors_header import DTYPE_BITS
from .types import (
    REPLICATED,
    SPLIT,
    VOCAB,
    Joined,
    ModelSummary,
    TensorClass,
    TensorInfo,
    TensorTable,
    WeightCount,
    WeightSet,
)

# transformers' PretrainedConfig defaults tie_word_embeddings to True; these model types' config classes
# default it to False (LlamaConfig, MistralConfig, MixtralConfig, Qwen2Config, Phi3Config, DeepseekV3Config, ...).
_UNTIED_BY_DEFAULT = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "deepseek_v2",
    "deepseek_v3", "gpt_oss", "gpt_neox", "olmo", "olmo2",
})  # fmt: skip
_INPUT_EMBEDDINGS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight",
                     "embed_in.weight")  # fmt: skip
_OUTPUT_EMBEDDINGS = ("lm_head.weight", "embed_out.weight")

# How TP shards a tensor and what it is, from its name: embeddings and the head split by vocabulary rows;
# norms, routers and the small MLA down-projections stay whole on every rank; the rest is split.
_EMBEDDING = re.compile(r"(embed_tokens|\bwte\b|word_embeddings|embed_in|embed_out|lm_head|^output\.weight)")
_HEAD = re.compile(r"(embed_out|lm_head|^output\.weight)")
_REPLICATED = re.compile(r"(norm|\bln_|\.ln\d|router|\.gate\.(weight|e_score_correction_bias)|shared_expert_gate|"
                         r"kv_a_proj_with_mqa|q_a_proj|\bwpe\b|position_embeddings)")
_EXPERT = re.compile(r"\.experts\.(\d+\.)?")
_INDEX = re.compile(r"(?<![^.])\d+(?![^.])")  # a whole dotted component of digits: a layer or expert index
_INDEX_AFTER_DOT = re.compile(r"\.(\d+)(?=[.\n])")  # the same in names joined by "\n.", each after a "."
T = TypeVar("T")
# Row numbers and counts are held in unsigned arrays: an array("Q") takes each int as it is, an array("q") parses
# each through PyArg_Parse (~190 instructions per item under callgrind; 277k items per DeepSeek-R1 count).
_ROWS = "Q"


def count_weights(
    tensors: Sequence[TensorInfo], config: dict | None = None, quantize_config: dict | None = None
) -> WeightCount:
    """Count a checkpoint's stored elements per dtype, its exact bytes and its real parameters."""
    return summarize_weights(tensors, config, quantize_config).count


def summarize_weight_set(weights: WeightSet) -> ModelSummary:
    """The summary of one weight set as read (pickle-only sets: estimated from the index's total size)."""
    if weights.format == "pytorch-bin":
        return ModelSummary(_estimated_count(weights))
    return summarize_weights(weights.tensors, weights.config, weights.quantize_config)


def summarize_weights(
    tensors: Sequence[TensorInfo], config: dict | None = None, quantize_config: dict | None = None
) -> ModelSummary:
    """Count a checkpoint in one pass over its tensors: exact counts, and its tensors grouped into classes."""
    _check_configs(config, quantize_config)
    table = TensorTable.of(tensors)
    _check_table(table)
    return summarize_table(table, config, quantize_config)


def summarize_table(table: TensorTable, config: dict | None = None, quantize_config: dict | None = None, *,
                    names: NameParts | None = None) -> ModelSummary:
    """summarize_weights over tensors as columns, as a header parser gives them (no object per tensor) and has
    checked them (names and dtypes strings, shapes and sizes non-negative integers).

    No Python loop over the tensors: each step is a whole-column operation (map, zip, count) or a loop over
    modules alike. What decides (the quantization scan, the TP split, the role) runs once per group of modules
    alike, the same tensors but for layer and expert indices: DeepSeek-V3's 92k tensors in 46k modules make a
    few dozen groups. Classes and their sites are listed in module order. `names`, when given, is what the table's
    names say (NameParts, made per header as it arrived and joined in table order).
    """
    _check_configs(config, quantize_config)
    rows = _in_module_order(table, NameParts.of(table.names) if names is None else names)
    groups = _alike_modules(rows)
    if not _names_distinct(rows, groups):
        counted = _one_per_name(table)
        if counted is not table:
            rows = _in_module_order(counted, NameParts.of(counted.names))
            groups = _alike_modules(rows)
    scan = scan_modules([(g.module, g.tensors, g.count) for g in groups], config, quantize_config)
    kinds = _tensor_kinds(rows, groups, scan)
    classes = _classes(rows, groups, kinds)
    stored = _stored_elements(table, classes, len(rows.names))
    tied, duplicate = _tied_duplicate(min(kinds.inputs, default=None), min(kinds.outputs, default=None), config)
    notes = list(scan.notes)
    plain_odd = _unclaimed_odd_dtypes(table, stored.keys(), rows, groups, scan.claimed)
    if plain_odd:
        unknown = sorted({table.dtypes[i] for i in plain_odd})
        notes.append(f"unknown dtype {', '.join(unknown)} (e.g. tensor '{table.names[plain_odd[0]]}'): parameter "
                     "count unknown, stored bytes are exact")
    parameters = None
    if not plain_odd and scan.parameters is not None:
        parameters = kinds.plain_parameters - duplicate + scan.parameters
    weight_count = WeightCount(
        parameters=parameters,
        stored_elements=stored,
        weight_bytes=sum(table.nbytes),
        buffer_elements=kinds.buffers,
        tied_embeddings=tied,
        quantization=scan.quantization,
        notes=tuple(notes),
    )
    return ModelSummary(weight_count, classes)


def _stored_elements(table: TensorTable, classes: tuple[TensorClass, ...], counted: int) -> dict[str, int]:
    """Stored elements per dtype, as the Hub counts them: every entry of the table, a name listed twice too."""
    stored: dict[str, int] = defaultdict(int)
    if counted == len(table):  # every tensor is in exactly one class
        alike = [(c.dtype, c.shape, c.count) for c in classes]
    else:
        alike = [(dtype, shape, times) for (dtype, shape), times in Counter(zip(table.dtypes, table.shapes)).items()]
    for dtype, shape, times in alike:
        stored[dtype] += math.prod(shape) * times
    return dict(sorted(stored.items()))


@dataclass(slots=True)
class _Rows:
    """The tensors to count in module order: each module's tensors together, in table order, and modules in the
    order their first tensor comes (as {module: {suffix: tensor}} iterates); with what their names say."""

    names: Sequence[str]
    dtypes: Sequence[str]
    shapes: Sequence[tuple[int, ...]]
    sizes: Sequence[int]
    labels: Sequence[str]  # NameParts.labels
    suffixes: Sequence[str]  # the name less its module (module_key)
    starts: Sequence[int]  # where each module's tensors begin, then the row count
    modules: Sequence[str]  # each module's name
    prefixes: Sequence[str]  # NameParts.prefixes
    sites: Sequence[str]  # each module's indices ("3.17")

    def masked(self, module: int, index: int) -> str:
        """The name of row `index`, of the `module`-th module, with its index components as `#`."""
        return self.prefixes[module] + self.labels[index]


@dataclass(frozen=True, slots=True)
class NameParts:
    """What counting reads from tensor names, in table order: per run of rows of one module, where it starts, the
    module, its indices and `prefix`; per row a `label`, so that prefix + label is the name with its index
    components as `#`, and the suffix (quantization.module_key). A name's parts depend on it alone, so a reader
    can make them for each header as it arrives, while other headers are still on their way, and join them.

    When every module is its names' text before the last dot (module_key's plain case; DeepSeek-V3's 92k names),
    the prefix is the module masked and a dot, and the label the suffix: names are masked one module at a time
    (46k modules, not 92k names) and a row's label is shared with every row of that suffix. Otherwise the prefix
    is empty and the label the whole masked name. Columns are tuples (the garbage collector stops visiting a
    tuple of strings at its first collection, a list never) or, for numbers, arrays (never visited); joined parts
    read their rows in place (`Joined`)."""

    plain: bool
    labels: Sequence[str]
    suffixes: Sequence[str]
    starts: array  # where each run of one module's rows begins
    modules: Sequence[str]  # each run's module
    prefixes: Sequence[str]  # each run's masked module and a dot (plain), else ""
    sites: Sequence[str]  # each run's module indices

    @classmethod
    def of(cls, names: Sequence[str]) -> NameParts:
        """The parts of these names, in order."""
        # Each name cut at its last dot in one pass (a header's few hundred cuts are alive together only briefly).
        module_of, _, leaf_of = zip(*map(str.rpartition, names, itertools.repeat("."))) if names else ((), (), ())
        starts = _run_starts(module_of)
        modules = tuple(map(module_of.__getitem__, starts))
        distinct = tuple(dict.fromkeys(modules))  # (a writer storing tensors by dtype puts a module in several runs)
        framed = "." + ".\n.".join(distinct) + ".\n"  # each module between dots, one a line
        if "" not in distinct and _plain(framed, len(distinct), leaf_of):  # (a name without a dot has none to put back)
            leaves = _shared(leaf_of)
            prefixes, sites = _masked_modules(distinct, framed)
            if len(distinct) < len(modules):
                prefix_of, site_of = dict(zip(distinct, prefixes)), dict(zip(distinct, sites))
                prefixes, sites = tuple(map(prefix_of.__getitem__, modules)), tuple(map(site_of.__getitem__, modules))
            return cls(True, leaves, leaves, array(_ROWS, starts), modules, prefixes, sites)
        masked = _shared(_masked(names))
        cuts = {m: _module_cut(m) for m in dict.fromkeys(masked)}
        row_modules, suffixes = _module_names(names, masked, cuts)
        starts = _run_starts(row_modules)
        modules = tuple(map(row_modules.__getitem__, starts))
        return cls(False, masked, suffixes, array(_ROWS, starts), modules, ("",) * len(starts),
                   tuple(map(_site, modules)))

    @classmethod
    def concat(cls, parts: Iterable[NameParts]) -> NameParts:
        """The parts of tables joined in this order (a module whose rows run on from one table into the next is
        one run)."""
        parts = list(parts)
        if len(parts) == 1:
            return parts[0]
        plain = all(part.plain for part in parts)
        if not plain:
            parts = list(map(_unprefixed, parts))
        starts = array(_ROWS)
        runs: list[tuple[Sequence[str], Sequence[str], Sequence[str]]] = []  # each part's modules, prefixes, sites
        offset, last = 0, None
        for part in parts:
            skip = int(bool(part.modules) and part.modules[0] == last)  # its first run runs on from the part before
            starts.extend(map(add, part.starts[skip:], itertools.repeat(offset)))
            runs.append((part.modules[skip:], part.prefixes[skip:], part.sites[skip:]))
            offset += len(part.labels)
            last = part.modules[-1] if part.modules else last
        modules, prefixes, sites = (Joined(column) for column in zip(*runs))
        labels = Joined(part.labels for part in parts)
        return cls(plain, labels, labels if plain else Joined(part.suffixes for part in parts), starts, modules,
                   prefixes, sites)

    def run_lengths(self) -> list[int]:
        """How many rows each run has."""
        return list(map(sub, [*self.starts[1:], len(self.labels)], self.starts))


def _unprefixed(parts: NameParts) -> NameParts:
    """The same parts with each row's whole masked name as its label (to join with parts that are not plain)."""
    if not parts.plain:
        return parts
    runs = map(islice, itertools.repeat(iter(parts.labels)), parts.run_lengths())
    labels = tuple(itertools.chain.from_iterable(map(prefix.__add__, run) for prefix, run in zip(parts.prefixes, runs)))
    return NameParts(False, labels, parts.suffixes, parts.starts, parts.modules, ("",) * len(parts.starts), parts.sites)


def _plain(framed: str, modules: int, leaves: Sequence[str]) -> bool:
    """Whether module_key cuts every name at its last dot (its module framed as _masked_modules frames them): no
    bitsandbytes `weight.<state>` suffix, no MXFP4 `<proj>_blocks` / `<proj>_scales`, no index as the last
    component; and no module with a line break."""
    if ".weight." in framed or framed.count("\n") != modules:
        return False
    return not any(module_key("." + leaf)[1] != leaf or _INDEX.fullmatch(leaf) for leaf in set(leaves))


def _shared(column: Sequence[str]) -> tuple[str, ...]:
    """The column with one object per distinct value: equal keys then compare by identity, and the garbage
    collector visits few objects."""
    distinct: dict[str, str] = {}
    return tuple(map(distinct.setdefault, column, column))


def _in_module_order(table: TensorTable, parts: NameParts) -> _Rows:
    """The rows in module order. Writers store a module's tensors together, so that is usually the table's own
    order; otherwise the rows are sorted (stably) by their module's first place."""
    if len(set(parts.modules)) == len(parts.modules):  # every module's tensors together
        starts = array(_ROWS, parts.starts)
        starts.append(len(table))
        return _Rows(table.names, table.dtypes, table.shapes, table.nbytes, parts.labels, parts.suffixes, starts,
                     parts.modules, parts.prefixes, parts.sites)
    # Each row's module as the run where it first comes (a module's name, prefix and sites are that run's).
    first_run: dict[str, int] = {}
    module_runs = list(map(first_run.setdefault, parts.modules, itertools.count()))
    row_runs = list(itertools.chain.from_iterable(map(itertools.repeat, module_runs, parts.run_lengths())))
    order = sorted(range(len(table)), key=row_runs.__getitem__)
    row_runs.sort()  # (the rows' runs in `order`)
    run_starts = _run_starts(row_runs)
    runs = list(map(row_runs.__getitem__, run_starts))
    return _Rows(_picked(table.names, order), _picked(table.dtypes, order), _picked(table.shapes, order),
                 _picked(table.nbytes, order), _picked(parts.labels, order), _picked(parts.suffixes, order),
                 array(_ROWS, [*run_starts, len(table)]), _picked(parts.modules, runs), _picked(parts.prefixes, runs),
                 _picked(parts.sites, runs))


def _picked(column: Sequence[T], order: list[int]) -> list[T]:
    return list(map(tuple(column).__getitem__, order))  # (a joined column is read row by row slowly: copy it first)


def _module_names(names: Sequence[str], masked: Sequence[str], cuts: dict) -> tuple[list[str], tuple[str, ...]]:
    """Each tensor's module and suffix (quantization.module_key)."""
    if None in cuts.values():  # a suffix with an index in it: name by name
        pairs = list(map(module_key, names))
        return [m for m, _ in pairs], tuple(s for _, s in pairs)
    suffix_of = {m: cut[0] for m, cut in cuts.items()}
    suffixes = tuple(map(suffix_of.__getitem__, masked))
    # The module name is the name less a fixed tail, the same for every name with the same masked name.
    tail = {m: cut[1] for m, cut in cuts.items()}
    ends = map(sub, map(len, names), map(tail.__getitem__, masked))
    return list(map(str.__getitem__, names, map(slice, ends))), suffixes


_KEY_NUMBER_BYTES = array("I").itemsize


def _run_starts(values: Sequence[object]) -> list[int]:
    """Where each run of equal neighbours begins."""
    return list(itertools.compress(range(len(values)), itertools.chain((True,), map(ne, values[1:], values[:-1]))))


@dataclass(slots=True)
class _Group:
    """Modules alike (the same tensors but for layer and expert indices): the first one, and all of them."""

    module: str  # the first module's name
    tensors: dict[str, TensorInfo]  # its tensors by suffix, in order (what the quantization scan reads)
    rows: range  # its tensors' rows
    members: Sequence[int]  # every module of the group, in order

    @property
    def order(self) -> int:
        """The first module's place among modules."""
        return self.members[0]

    @property
    def count(self) -> int:
        """How many modules the group has."""
        return len(self.members)


def _alike_modules(rows: _Rows) -> list[_Group]:
    """Modules grouped by signature (their tensors' masked names, dtypes, shapes and sizes: a module's prefix and
    its rows' labels, dtypes, shapes and sizes), in first-seen order."""
    # Number each distinct key and signature by its first place (setdefault: one lookup each). A module's key
    # numbers are a slice of bytes, not a tuple: 46k tuples made and dropped would each count towards the next
    # garbage collection (the tuple free list keeps what it frees), which visits all 92k rows' columns.
    key_numbers: dict[tuple, int] = {}
    keys = zip(rows.labels, rows.dtypes, rows.shapes, rows.sizes)
    numbered = array("I", map(key_numbers.setdefault, keys, itertools.count())).tobytes()
    bounds = array(_ROWS, map(mul, rows.starts, itertools.repeat(_KEY_NUMBER_BYTES)))
    signatures = zip(rows.prefixes, map(numbered.__getitem__, map(slice, bounds[:-1], bounds[1:])))
    group_numbers: dict[tuple[str, bytes], int] = {}
    first_of_group: list[int] = list(map(group_numbers.setdefault, signatures, itertools.count()))  # its first module
    by_group = array(_ROWS, sorted(range(len(first_of_group)), key=first_of_group.__getitem__))  # stable: in module order
    groups = []
    for start, stop in itertools.pairwise([*_run_starts(list(map(first_of_group.__getitem__, by_group))), len(by_group)]):
        members = by_group[start:stop]
        first = members[0]
        module_rows = range(rows.starts[first], rows.starts[first + 1])
        tensors = {rows.suffixes[i]: _tensor(rows, i) for i in module_rows}
        groups.append(_Group(rows.modules[first], tensors, module_rows, members))
    return groups


def _tensor(rows: _Rows, index: int) -> TensorInfo:
    return TensorInfo(rows.names[index], rows.dtypes[index], rows.shapes[index], rows.sizes[index])


@dataclass(slots=True)
class _Kinds:
    """What each tensor is, per group and position in its modules, and the totals that follow."""

    class_keys: dict[tuple[int, int], tuple] = field(default_factory=dict)  # (group, position) -> class key
    own_sites: set[tuple[int, int]] = field(default_factory=set)  # indices from the name, not its module's
    buffers: int = 0
    plain_parameters: int = 0  # parameters of tensors quantization does not claim
    inputs: list[tuple[int, int, int]] = field(default_factory=list)  # input embeddings: (module, position, elements)
    outputs: list[tuple[int, int, int]] = field(default_factory=list)  # output embeddings, the same


def _tensor_kinds(rows: _Rows, groups: list[_Group], scan: QuantScan) -> _Kinds:
    """Each group's tensors: class key (TP split, role, module, leaf, dtype, shape, bytes, parameters, template),
    buffers and parameters (times the group's modules), and candidate tied embeddings."""
    kinds = _Kinds()
    for number, group in enumerate(groups):
        for position, index in enumerate(group.rows):
            t = _tensor(rows, index)
            template = rows.masked(group.order, index)
            split, role, module, leaf = _kind(template)
            claimed = t.name in scan.claimed
            if t.name in scan.side:
                role, unpacked = "side", 0
            elif not claimed and t.is_buffer:
                role, unpacked = "buffer", 0
                kinds.buffers += t.numel * group.count
            else:
                unpacked = scan.unpacked.get(t.name, t.numel)
                if not claimed:
                    kinds.plain_parameters += t.numel * group.count
                    if t.name.endswith(_INPUT_EMBEDDINGS) and ".layers." not in t.name:
                        kinds.inputs.append((group.order, position, t.numel))  # a model's own, not an MTP layer's
                    elif t.name.endswith(_OUTPUT_EMBEDDINGS):
                        kinds.outputs.append((group.order, position, t.numel))
            kinds.class_keys[number, position] = (split, role, module, leaf, t.dtype, t.shape, t.nbytes, unpacked,
                                                  template)
            cut = _module_cut(template)
            if cut is None or not cut[2]:  # MXFP4's `<proj>_blocks`: module `<proj>`, indices its own
                kinds.own_sites.add((number, position))
    return kinds


def _classes(rows: _Rows, groups: list[_Group], kinds: _Kinds) -> tuple[TensorClass, ...]:
    """The tensor classes in order of first place (module, then position in it), each with its tensors' sites
    (their indices) in module order."""
    places: dict[tuple, list[tuple[int, int]]] = {}  # class key -> its (group, position)s
    for place, key in kinds.class_keys.items():  # groups in first-seen order: first places come first
        places.setdefault(key, []).append(place)
    module_sites = tuple(rows.sites)  # (read by index: a joined column reads its parts in order only fast)

    def site(module: int, group: int, position: int) -> str:
        if (group, position) in kinds.own_sites:
            return _site(rows.names[rows.starts[module] + position])
        return module_sites[module]

    classes = []
    for (split, role, module, leaf, dtype, shape, nbytes, per_tensor, template), where in places.items():
        count = sum(groups[g].count for g, _ in where)
        sites: tuple[str, ...] = ()
        if "#" in template and kinds.own_sites.isdisjoint(where):  # its module's indices, each module once
            members = itertools.chain.from_iterable(groups[g].members for g, _ in where)
            sites = tuple(map(module_sites.__getitem__, sorted(members) if len(where) > 1 else members))
        elif "#" in template:  # indices of its own (a module may hold several): merged in module order
            sites = tuple(site(m, g, p) for m, p, g in sorted((m, p, g) for g, p in where for m in groups[g].members))
        classes.append(TensorClass(split, role, module, leaf, dtype, shape, nbytes, per_tensor, count, template,
                                   sites))
    return tuple(classes)


def _masked(names: Sequence[str]) -> list[str]:
    """Each name with its index components (whole dotted components of digits) as `#`: one regex pass over all
    the names joined, rather than one call per name."""
    joined = "\n.".join(names)
    if not names or joined.count("\n") != len(names) - 1:  # a name with a line break: one at a time
        return [_INDEX.sub("#", name) for name in names]
    return _INDEX_AFTER_DOT.sub(".#", "." + joined + "\n")[1:-1].split("\n.")


def _module_cut(masked: str) -> tuple[str, int, bool] | None:
    """(suffix, characters after the module, whether the module's indices are the name's) shared by every name
    with this masked name; None when the suffix holds an index (modules are then found name by name)."""
    module, suffix = module_key(masked)
    if "#" in suffix or not masked.startswith(module) or "#" in masked[len(module):]:
        return None
    return suffix, len(masked) - len(module), masked[len(module)] == "."  # not so for MXFP4's `<proj>_blocks`


def _names_distinct(rows: _Rows, groups: list[_Group]) -> bool:
    """Whether no name is listed twice, looked at once per group of modules alike: modules are distinct, a name
    is its module and its label's tail, and modules alike have the same labels. (Names of one module whose
    suffixes differ only in an index share a label: they are looked at the long way, by _one_per_name.)"""
    return all(len(set(map(rows.labels.__getitem__, group.rows))) == len(group.rows) for group in groups)


def _one_per_name(table: TensorTable) -> TensorTable:
    """The table as counting groups it: a name listed twice (no header parser lets that through) counts once,
    its last entry in its first place, as {module: {suffix: tensor}} keeps it."""
    if len(set(table.names)) == len(table):
        return table
    keep = list(dict(zip(table.names, range(len(table)))).values())
    return TensorTable(tuple(_picked(table.names, keep)), tuple(_picked(table.dtypes, keep)),
                       tuple(_picked(table.shapes, keep)), tuple(_picked(table.nbytes, keep)),
                       tuple(_picked(table.files, keep)))


def _masked_modules(modules: Sequence[str], framed: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Each module with its index components as `#` and a dot after it, and its indices ("3.17"), from the modules
    framed (each between dots, one a line). When every run of digits was an index, the indices are what is left
    once all but digits, dots and line breaks is deleted and runs of dots are folded (a few byte passes); else one
    more regex pass finds them, dealt out by the `#`s of each prefix."""
    marked, digits_all_indices, indices_found = _masked_framed(framed)
    prefixes = _shared(marked[1:-1].split("\n."))
    if digits_all_indices:
        kept = ("\n" + framed).encode("ascii").translate(None, _NOT_IN_SITES)
        while b".." in kept:
            kept = kept.replace(b"..", b".")
        return prefixes, tuple(kept.replace(b"\n.", b"\n").replace(b".\n", b"\n")[1:-1].decode("ascii").split("\n"))
    if "#" in framed:  # a `#` of a module's own: not one index per `#`
        return prefixes, tuple(map(_site, modules))
    indices = iter(indices_found)
    join: Callable[[Iterable[str]], str] = ".".join
    return prefixes, tuple(map(join, map(islice, itertools.repeat(indices), map(str.count, prefixes,
                                                                                 itertools.repeat("#")))))


_NOT_IN_SITES = bytes(sorted(set(range(128)) - set(b"0123456789.\n")))


def _masked_framed(framed: str) -> tuple[str, bool, list[str]]:
    """The modules framed, each index component as `#`; whether the text is ASCII and every run of digits in it
    an index; and, when not, the indices in order (else []: the digits left in the text are they). When every run of digits is a whole component (ASCII, no empty component: the usual case) by byte
    passes: the digits deleted leave each index an empty component, which is marked (half the instructions of the
    regex pass that does it otherwise)."""
    if framed.isascii() and ".." not in framed:
        data = framed.encode("ascii")
        classes = data.translate(_DIGIT_CLASSES)
        if b"a0" not in classes and b"0a" not in classes:  # no digit beside a letter: every run a whole component
            masked = data.translate(None, b"0123456789")
            while b".." in masked:  # (indices in a row leave a run of dots: each pass marks every other one)
                masked = masked.replace(b"..", b".#.")
            return masked.decode("ascii"), True, []
    pieces = _INDEX_AFTER_DOT.split(framed)  # text, index, text, ...: marked and found in one regex pass
    marked = ".#".join(pieces[0::2])
    return marked, framed.isascii() and not any(digit in marked for digit in "0123456789"), pieces[1::2]


# Each byte as a digit (0), a separator (.: a dot or a line break) or anything else (a).
_DIGIT_CLASSES = bytes(ord("0") if byte in b"0123456789" else ord(".") if byte in b".\n" else ord("a")
                       for byte in range(256))


def _site(name: str) -> str:
    """A name's indices, its whole dotted components of digits ("3.17")."""
    return ".".join(_INDEX.findall(name))


def _unclaimed_odd_dtypes(table: TensorTable, dtypes: AbstractSet[str], rows: _Rows, groups: list[_Group],
                          claimed: frozenset[str]) -> list[int]:
    """Indices (in table order) of tensors of dtypes gpumem cannot size by element that quantization does not
    claim (few; GGUF's block types are claimed). A tensor is claimed when its group's first module's is."""
    if dtypes <= DTYPE_BITS.keys():
        return []
    unclaimed = {rows.names[rows.starts[module] + position] for group in groups
                 for position, index in enumerate(group.rows) if rows.names[index] not in claimed
                 for module in group.members}
    return [i for i, (name, dtype) in enumerate(zip(table.names, table.dtypes))
            if dtype not in DTYPE_BITS and name in unclaimed]


def _kind(masked: str) -> tuple[str, str, str, str]:
    """(TP split, role unless side data or buffer, normalised module, leaf) of a name with indices masked."""
    if _EMBEDDING.search(masked):
        split, role = VOCAB, "head" if _HEAD.search(masked) else "embedding"
    else:
        split = REPLICATED if _REPLICATED.search(masked) else SPLIT
        role = "dense"
        if _EXPERT.search(masked):
            role = "shared_expert" if "shared" in masked else "routed_expert"
        elif "shared_expert" in masked:
            role = "shared_expert"
    module, _, leaf = masked.rpartition(".")
    parts = module.split(".")
    if "#" in parts:  # drop the path down to the layer index, and every index after it
        parts = [p for p in parts[parts.index("#") + 1:] if p != "#"] or parts
    return split, role, ".".join(parts), leaf


def _tied_duplicate(first_input: tuple[int, int, int] | None, first_output: tuple[int, int, int] | None,
                    config: dict | None) -> tuple[bool, int]:
    """Whether embeddings are tied, and how many elements a stored duplicate lm_head adds (the first input and
    output embedding in module order, as (module, position, elements))."""
    if config is None:
        return False, 0
    default = str(config.get("model_type")) not in _UNTIED_BY_DEFAULT
    tied = bool(config.get("tie_word_embeddings", default))
    if not tied:
        return False, 0
    if first_input and first_output and first_input[2] == first_output[2]:
        return True, first_output[2]
    return True, 0


# torch_dtype of a pickle-only repo -> (bytes per parameter, safetensors dtype name)
_TORCH_DTYPES = {"float32": (4, "F32"), "float16": (2, "F16"), "bfloat16": (2, "BF16"), "int8": (1, "I8")}


def _estimated_count(weights: WeightSet) -> WeightCount:
    """Pickle-only repos: parameters ~ total_size / bytes of the config's torch_dtype."""
    dtype = str((weights.config or {}).get("torch_dtype") or "float32")
    width, name = _TORCH_DTYPES.get(dtype, _TORCH_DTYPES["float32"])
    total = weights.estimated_bytes
    if total is None:
        return WeightCount(None, {}, 0, notes=("no size information for the .bin files: nothing to estimate from",))
    note = f"parameters ESTIMATED as total_size / {width} bytes ({dtype}); no safetensors headers to count from"
    return WeightCount(total // width, {name: total // width}, total, notes=(note,))


def _check_configs(config: object, quantize_config: object) -> None:
    """Refuse a config or quantize config that is not a JSON object."""
    for name, value in (("config.json", config), ("quantize_config.json", quantize_config)):
        if value is not None and not isinstance(value, dict):
            raise BadConfig(f"{name}: expected a JSON object, got {type(value).__name__}")


def _check_table(table: TensorTable) -> None:
    """Refuse tensors no header parser produces, with a one-line message naming the tensor or file."""
    try:  # whole columns at once, each distinct shape once; anything odd is looked at tensor by tensor below
        if (set(map(type, table.names)) | set(map(type, table.dtypes)) <= {str}
                and set(map(type, table.nbytes)) <= {int} and min(table.nbytes, default=0) >= 0
                and all(type(d) is int and d >= 0 for shape in set(table.shapes) for d in shape)):
            return
    except TypeError:  # an unhashable shape
        pass
    for t in table.tensors():
        where = f"{t.file or 'tensor list'}: tensor '{t.name}'"
        if not isinstance(t.dtype, str) or not isinstance(t.name, str):
            raise BadHeader(f"{where} has a non-string name or dtype")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in t.shape):
            raise BadHeader(f"{where} has an invalid shape {list(t.shape)!r}")
        if not isinstance(t.nbytes, int) or t.nbytes < 0:
            raise BadHeader(f"{where} has an invalid byte size {t.nbytes!r}")
