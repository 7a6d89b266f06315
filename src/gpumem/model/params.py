"""Exact parameter counting over stored tensors: buffers, tied embeddings and quantized packing accounted for.

Counting makes one pass over the tensors and returns a ModelSummary: the counts, and the tensors grouped into
classes alike in everything the memory model asks (TP split, role, module, dtype, shape, bytes, parameters).
Nothing after counting sees a tensor. DeepSeek-V3's 92k tensors fall into a few hundred classes.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

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

    Per tensor: a few C-level passes and two loops of dict lookups. What decides (the quantization scan, the TP
    split, the role) runs once per group of modules alike, the same tensors but for layer and expert indices:
    DeepSeek-V3's 92k tensors in 46k modules make a few dozen groups.
    """
    _check(table, config, quantize_config)
    names, dtypes, shapes, sizes = table.names, table.dtypes, table.shapes, table.nbytes
    masked = _masked(names)
    cuts = {m: _module_cut(m) for m in set(masked)}
    candidates: dict[tuple, int] = {}  # (masked name, dtype, shape, bytes) -> its number, in first-seen order
    candidate_of: list[int] = []
    modules: dict[str, dict[str, int]] = {}  # module name -> {suffix: tensor index}, in first-seen order
    for index, (name, key) in enumerate(zip(names, zip(masked, dtypes, shapes, sizes))):
        candidate_of.append(candidates.setdefault(key, len(candidates)))
        cut = cuts[key[0]]
        module, suffix = module_key(name) if cut is None else (name[: len(name) - cut[1]], cut[0])
        parts = modules.get(module)
        if parts is None:
            modules[module] = {suffix: index}
        else:
            parts[suffix] = index
    groups: dict[tuple[int, ...], _Group] = {}
    group_of: list[_Group] = []  # each module's group, in module order
    for module, parts in modules.items():
        group = groups.get(signature := tuple(map(candidate_of.__getitem__, parts.values())))
        if group is None:
            groups[signature] = group = _Group(len(group_of), module, parts)
        group.count += 1
        group_of.append(group)
    for group in groups.values():
        group.tensors = {suffix: TensorInfo(names[i], dtypes[i], shapes[i], sizes[i]) for suffix, i in group.parts.items()}
    scan = scan_modules([(g.module, g.tensors, g.count) for g in groups.values()], config, quantize_config)
    kinds = {m: _kind(m) for m in cuts}  # masked name -> (split, role unless side data or buffer, module, leaf)
    buffers = plain_parameters = 0
    inputs, outputs = [], []  # candidate tied embedding pair: (first module, position in it, elements)
    for group in groups.values():
        for position, (suffix, t) in enumerate(group.tensors.items()):
            template = masked[group.parts[suffix]]
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
            cut = cuts[template]
            group.keys.append(((split, role, module, leaf, t.dtype, t.shape, t.nbytes, unpacked, template),
                               cut is not None and cut[2]))
    classes: dict[tuple, list[str]] = {}  # class key -> the sites (indices) of its tensors, in module order
    module_sites = map(".".join, map(_INDEX.findall, modules))
    for module_site, parts, group in zip(module_sites, modules.values(), group_of):
        for (key, module_indices), index in zip(group.keys, parts.values()):
            site = module_site if module_indices else ".".join(_INDEX.findall(names[index]))
            found = classes.get(key)
            if found is None:
                classes[key] = [site]
            else:
                found.append(site)
    tied, duplicate = _tied_duplicate(min(inputs, default=None), min(outputs, default=None), config)
    notes = list(scan.notes)
    plain_odd = _unclaimed_odd_dtypes(table, modules, group_of, scan.claimed)
    if plain_odd:
        unknown = sorted({dtypes[i] for i in plain_odd})
        notes.append(f"unknown dtype {', '.join(unknown)} (e.g. tensor '{names[plain_odd[0]]}'): parameter count "
                     "unknown, stored bytes are exact")
    parameters = None
    if not plain_odd and scan.parameters is not None:
        parameters = plain_parameters - duplicate + scan.parameters
    stored: dict[str, int] = defaultdict(int)
    tally = Counter(candidate_of)
    for number, (_, dtype, shape, _) in enumerate(candidates):
        stored[dtype] += math.prod(shape) * tally[number]
    count = WeightCount(
        parameters=parameters,
        stored_elements=dict(sorted(stored.items())),
        weight_bytes=sum(sizes),
        buffer_elements=buffers,
        tied_embeddings=tied,
        quantization=scan.quantization,
        notes=tuple(notes),
    )
    return ModelSummary(count, tuple(
        TensorClass(split, role, module, leaf, dtype, shape, nbytes, per_tensor, len(sites), template,
                    tuple(sites) if "#" in template else ())
        for (split, role, module, leaf, dtype, shape, nbytes, per_tensor, template), sites in classes.items()))


@dataclass(slots=True)
class _Group:
    """Modules alike: the first one (its order among modules, name and {suffix: tensor index}) and how many."""

    order: int
    module: str
    parts: dict[str, int]
    count: int = 0
    tensors: dict[str, TensorInfo] = field(default_factory=dict)  # the first module's tensors, for the scan
    keys: list[tuple] = field(default_factory=list)  # class key of each part, in order


def _masked(names: Sequence[str]) -> list[str]:
    """Each name with its index components (whole dotted components of digits) as `#`: one regex pass over all
    the names joined, rather than one call per name."""
    joined = "\n.".join(names)
    if not names or joined.count("\n") != len(names) - 1:  # a name with a line break: one at a time
        return [_INDEX.sub("#", name) for name in names]
    return _INDEX_AFTER_DOT.sub(".#", "." + joined + "\n")[1:-1].split("\n.")


def _module_cut(masked: str) -> tuple[str, int, bool] | None:
    """(suffix, characters after the module, whether the module's indices are the name's) shared by every name
    with this masked name; None when the suffix holds an index (the module is then found name by name)."""
    module, suffix = module_key(masked)
    if "#" in suffix or not masked.startswith(module) or "#" in masked[len(module):]:
        return None
    return suffix, len(masked) - len(module), masked[len(module)] == "."  # not so for MXFP4's `<proj>_blocks`


def _unclaimed_odd_dtypes(table: TensorTable, modules: dict[str, dict[str, int]], group_of: list[_Group],
                          claimed: frozenset[str]) -> list[int]:
    """Indices (in tensor order) of tensors of dtypes gpumem cannot size by element that quantization does not
    claim (few, and GGUF's block types are claimed)."""
    if set(table.dtypes) <= DTYPE_BITS.keys():
        return []
    unclaimed = set()
    for parts, group in zip(modules.values(), group_of):
        for suffix, index in parts.items():
            if table.names[group.parts[suffix]] not in claimed:
                unclaimed.add(index)
    return [i for i, dtype in enumerate(table.dtypes) if dtype not in DTYPE_BITS and i in unclaimed]


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
