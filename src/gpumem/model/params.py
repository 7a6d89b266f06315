"""Exact parameter counting over stored tensors: buffers, tied embeddings and quantized packing accounted for.

Counting makes one pass over the tensors and returns a ModelSummary: the counts, and the tensors grouped into
classes alike in everything the memory model asks (TP split, role, module, dtype, shape, bytes, parameters).
Nothing after counting sees a tensor. DeepSeek-V3's 92k tensors fall into a few hundred classes.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import sub

from ..errors import BadConfig, BadHeader
from .quantization import module_key, scan_modules
from .safetensors_header import DTYPE_BITS
from .types import (
    REPLICATED,
    SPLIT,
    VOCAB,
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
_INDEX_AFTER_DOT = re.compile(r"\.\d+(?=[.\n])")  # the same in names joined by "\n.", each after a "."
_INDEX_AFTER_DOT_DIGITS = re.compile(r"\.(\d+)(?=[.\n])")


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
    return summarize_table(TensorTable.of(tensors), config, quantize_config)


def summarize_table(table: TensorTable, config: dict | None = None, quantize_config: dict | None = None) -> ModelSummary:
    """summarize_weights over tensors as columns (as the header parser gives them: no object per tensor).

    No Python loop over the tensors: each step is a whole-column operation (map, zip, sort, count). What decides
    (the quantization scan, the TP split, the role) runs once per group of modules alike, the same tensors but
    for layer and expert indices: DeepSeek-V3's 92k tensors in 46k modules make a few dozen groups.
    """
    _check(table, config, quantize_config)
    rows = _one_per_name(table)
    names, dtypes, shapes, sizes = rows.names, rows.dtypes, rows.shapes, rows.nbytes
    count = len(names)
    masked = _masked(names)
    cuts = {m: _module_cut(m) for m in dict.fromkeys(masked)}
    keys = list(zip(masked, dtypes, shapes, sizes))  # tensors alike but for indices share a key
    key_number = dict(zip(dict.fromkeys(keys), itertools.count()))
    key_of = list(map(key_number.__getitem__, keys))
    if all(cut is not None for cut in cuts.values()):  # the module name is the name less a fixed tail
        tail = {m: cut[1] for m, cut in cuts.items() if cut is not None}
        module_names = list(map(str.__getitem__, names, map(slice, map(sub, map(len, names), map(tail.__getitem__, masked)))))
        suffix_of = {m: cut[0] for m, cut in cuts.items() if cut is not None}
        suffixes = list(map(suffix_of.__getitem__, masked))
    else:  # a suffix with an index in it: name by name
        pairs = list(map(module_key, names))
        module_names, suffixes = [m for m, _ in pairs], [s for _, s in pairs]
    # Modules in first-seen order, each module's tensors in tensor order (as {module: {suffix: tensor}} iterates).
    module_order = dict(zip(dict.fromkeys(module_names), itertools.count()))
    module_of = list(map(module_order.__getitem__, module_names))
    by_module = sorted(range(count), key=module_of.__getitem__)
    per_module = Counter(module_of)
    module_sizes = list(map(per_module.__getitem__, range(len(module_order))))
    runs = iter(list(map(key_of.__getitem__, by_module)))
    signatures = list(map(tuple, map(islice, itertools.repeat(runs), module_sizes)))
    group_number = dict(zip(dict.fromkeys(signatures), itertools.count()))
    group_of = list(map(group_number.__getitem__, signatures))  # each module's group of modules alike
    first_module = dict(zip(reversed(group_of), reversed(range(len(group_of)))))
    starts = [0, *itertools.accumulate(module_sizes)]
    per_group = Counter(group_of)
    groups = []
    for number, first in sorted(first_module.items()):
        members = by_module[starts[first]:starts[first + 1]]
        tensors = {suffixes[i]: TensorInfo(names[i], dtypes[i], shapes[i], sizes[i]) for i in members}
        groups.append(_Group(first, module_names[members[0]], tensors, per_group[number], members))
    scan = scan_modules([(g.module, g.tensors, g.count) for g in groups], config, quantize_config)
    kinds = {m: _kind(m) for m in cuts}  # masked name -> (split, role unless side data or buffer, module, leaf)
    buffers = plain_parameters = 0
    inputs, outputs = [], []  # candidate tied embedding pair: (first module, position in it, elements)
    place_key: dict[tuple[int, int], tuple] = {}  # (group, position in its modules) -> class key
    own_sites = set()  # (group, position) whose sites are not their module's (MXFP4's `<proj>_blocks`)
    for number, group in enumerate(groups):
        for position, (index, t) in enumerate(zip(group.members, group.tensors.values())):
            template = masked[index]
            split, role, module, leaf = kinds[template]
            claimed = t.name in scan.claimed
            if t.name in scan.side:
                role, unpacked = "side", 0
            elif not claimed and t.is_buffer:
                role, unpacked = "buffer", 0
                buffers += t.numel * group.count
            else:
                unpacked = scan.unpacked.get(t.name, t.numel)
                if not claimed:
                    plain_parameters += t.numel * group.count
                    if t.name.endswith(_INPUT_EMBEDDINGS) and ".layers." not in t.name:
                        inputs.append((group.order, position, t.numel))  # a model's own, not an MTP layer's
                    elif t.name.endswith(_OUTPUT_EMBEDDINGS):
                        outputs.append((group.order, position, t.numel))
            place_key[number, position] = (split, role, module, leaf, t.dtype, t.shape, t.nbytes, unpacked, template)
            cut = cuts[template]
            if cut is None or not cut[2]:
                own_sites.add((number, position))
    # Every tensor's class and site (its indices), in module order: the order classes and sites are listed in.
    places = list(zip(itertools.chain.from_iterable(itertools.starmap(itertools.repeat, zip(group_of, module_sizes))),
                      itertools.chain.from_iterable(map(range, module_sizes))))
    class_keys = list(map(place_key.__getitem__, places))
    module_sites = _module_sites(list(module_order), [masked[by_module[start]] for start in starts[:-1]], cuts)
    sites = list(itertools.chain.from_iterable(itertools.starmap(itertools.repeat, zip(module_sites, module_sizes))))
    if own_sites:
        for at, place in enumerate(places):
            if place in own_sites:
                sites[at] = ".".join(_INDEX.findall(names[by_module[at]]))
    class_number = dict(zip(dict.fromkeys(class_keys), itertools.count()))
    class_of = list(map(class_number.__getitem__, class_keys))
    per_class = Counter(class_of)
    grouped_sites = iter(list(map(sites.__getitem__, sorted(range(count), key=class_of.__getitem__))))
    class_sizes = map(per_class.__getitem__, range(len(class_number)))
    class_sites = list(map(tuple, map(islice, itertools.repeat(grouped_sites), class_sizes)))
    tied, duplicate = _tied_duplicate(min(inputs, default=None), min(outputs, default=None), config)
    notes = list(scan.notes)
    plain_odd = _unclaimed_odd_dtypes(table, names, by_module, places, groups, scan.claimed)
    if plain_odd:
        unknown = sorted({table.dtypes[i] for i in plain_odd})
        notes.append(f"unknown dtype {', '.join(unknown)} (e.g. tensor '{table.names[plain_odd[0]]}'): parameter "
                     "count unknown, stored bytes are exact")
    parameters = None
    if not plain_odd and scan.parameters is not None:
        parameters = plain_parameters - duplicate + scan.parameters
    stored: dict[str, int] = defaultdict(int)
    for (dtype, shape), times in Counter(zip(table.dtypes, table.shapes)).items():
        stored[dtype] += math.prod(shape) * times
    weight_count = WeightCount(
        parameters=parameters,
        stored_elements=dict(sorted(stored.items())),
        weight_bytes=sum(table.nbytes),
        buffer_elements=buffers,
        tied_embeddings=tied,
        quantization=scan.quantization,
        notes=tuple(notes),
    )
    return ModelSummary(weight_count, tuple(
        TensorClass(split, role, module, leaf, dtype, shape, nbytes, per_tensor, len(sites), template,
                    tuple(sites) if "#" in template else ())
        for (split, role, module, leaf, dtype, shape, nbytes, per_tensor, template), sites
        in zip(class_number, class_sites)))


@dataclass(slots=True)
class _Group:
    """Modules alike: the first one (its order among modules, name and tensors) and how many there are."""

    order: int
    module: str
    tensors: dict[str, TensorInfo]  # suffix -> tensor, in tensor order
    count: int
    members: list[int] = field(default_factory=list)  # the first module's tensor indices, in the same order


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


def _one_per_name(table: TensorTable) -> TensorTable:
    """The table as counting groups it: a name listed twice (no header parser lets that through) counts once,
    its last entry in its first place, as {module: {suffix: tensor}} keeps it."""
    if len(set(table.names)) == len(table):
        return table
    keep = list(dict(zip(table.names, range(len(table)))).values())
    return TensorTable(tuple(map(table.names.__getitem__, keep)), tuple(map(table.dtypes.__getitem__, keep)),
                       tuple(map(table.shapes.__getitem__, keep)), tuple(map(table.nbytes.__getitem__, keep)),
                       tuple(map(table.files.__getitem__, keep)))


def _module_sites(modules: list[str], templates: list[str], cuts: dict[str, tuple[str, int, bool] | None]) -> list[str]:
    """Each module's indices ("3.17"), given the masked name of one of its tensors: one regex pass over all the
    module names joined, the indices dealt out by how many each template has."""
    joined = "\n.".join(modules)
    if (None in cuts.values() or "#" in joined or joined.count("\n") != len(modules) - 1) or not modules:
        return [".".join(_INDEX.findall(module)) for module in modules]
    indices = _INDEX_AFTER_DOT_DIGITS.findall("." + joined + "\n")
    hashes = {template: template.count("#") for template in cuts}
    counts = list(map(hashes.__getitem__, templates))
    if sum(counts) != len(indices):  # not one index per `#`: look again module by module
        return [".".join(_INDEX.findall(module)) for module in modules]
    join: Callable[[Iterable[str]], str] = ".".join
    return list(map(join, map(islice, itertools.repeat(iter(indices)), counts)))


def _unclaimed_odd_dtypes(table: TensorTable, names: Sequence[str], by_module: list[int],
                          places: list[tuple[int, int]], groups: list[_Group], claimed: frozenset[str]) -> list[int]:
    """Indices (in table order) of tensors of dtypes gpumem cannot size by element that quantization does not
    claim (few; GGUF's block types are claimed). `names` and `by_module` are the grouped rows'."""
    if set(table.dtypes) <= DTYPE_BITS.keys():
        return []
    unclaimed = {names[index] for index, (group, position) in zip(by_module, places)
                 if names[groups[group].members[position]] not in claimed}
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


def _check(table: TensorTable, config: object, quantize_config: object) -> None:
    """Refuse inputs no header parser produces, with a one-line message naming the tensor or file."""
    for name, value in (("config.json", config), ("quantize_config.json", quantize_config)):
        if value is not None and not isinstance(value, dict):
            raise BadConfig(f"{name}: expected a JSON object, got {type(value).__name__}")
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
