"""Exact parameter counting over stored tensors: buffers, tied embeddings and quantized packing accounted for.

Counting makes one pass over the tensors and returns a ModelSummary: the counts, and the tensors grouped into
classes alike in everything the memory model asks (TP split, role, module, dtype, shape, bytes, parameters).
Nothing after counting sees a tensor. DeepSeek-V3's 92k tensors fall into a few hundred classes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from ..errors import BadConfig, BadHeader
from .quantization import module_key, scan_modules
from .safetensors_header import DTYPE_BITS
from .types import REPLICATED, SPLIT, VOCAB, ModelSummary, TensorClass, TensorInfo, WeightCount, WeightSet

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
    _check(tensors, config, quantize_config)
    stored: dict[str, int] = defaultdict(int)
    modules: dict[str, dict[str, TensorInfo]] = defaultdict(dict)
    odd_dtypes = []  # tensors of dtypes gpumem cannot size by element (few): noted unless quantization claims them
    for t in tensors:
        stored[t.dtype] += t.numel
        module, suffix = module_key(t.name)
        modules[module][suffix] = t
        if t.dtype not in DTYPE_BITS:
            odd_dtypes.append(t)
    scan = scan_modules(modules, config, quantize_config)
    classes: dict[tuple, list[str]] = defaultdict(list)  # class key -> the sites (indices) of its tensors
    kinds: dict[str, tuple[str, str, str, str]] = {}  # masked name -> (split, role, module, leaf)
    buffers = plain_parameters = 0
    inputs, outputs = [], []  # candidate tied embedding pair
    for parts in modules.values():
        for t in parts.values():
            masked = _INDEX.sub("#", t.name)
            kind = kinds.get(masked) or kinds.setdefault(masked, _kind(masked))
            claimed = t.name in scan.claimed
            if t.name in scan.side:
                role, unpacked = "side", 0
            elif not claimed and t.is_buffer:
                role, unpacked = "buffer", 0
                buffers += t.numel
            else:
                role, unpacked = kind[1], scan.unpacked.get(t.name, t.numel)
                if not claimed:
                    plain_parameters += t.numel
                    if t.name.endswith(_INPUT_EMBEDDINGS) and ".layers." not in t.name:
                        inputs.append(t)  # a model's own embedding is outside its decoder layers (not MTP's)
                    elif t.name.endswith(_OUTPUT_EMBEDDINGS):
                        outputs.append(t)
            key = (kind[0], role, kind[2], kind[3], t.dtype, t.shape, t.nbytes, unpacked, masked)
            classes[key].append(".".join(_INDEX.findall(t.name)))
    tied, duplicate = _tied_duplicate(inputs, outputs, config)
    notes = list(scan.notes)
    plain_odd = [t for t in odd_dtypes if t.name not in scan.claimed]  # claimed ones: the scan's notes
    if plain_odd:
        unknown = sorted({t.dtype for t in plain_odd})
        notes.append(f"unknown dtype {', '.join(unknown)} (e.g. tensor '{plain_odd[0].name}'): parameter count "
                     "unknown, stored bytes are exact")
    parameters = None
    if not plain_odd and scan.parameters is not None:
        parameters = plain_parameters - duplicate + scan.parameters
    count = WeightCount(
        parameters=parameters,
        stored_elements=dict(sorted(stored.items())),
        weight_bytes=sum(t.nbytes for t in tensors),
        buffer_elements=buffers,
        tied_embeddings=tied,
        quantization=scan.quantization,
        notes=tuple(notes),
    )
    return ModelSummary(count, tuple(
        TensorClass(split, role, module, leaf, dtype, shape, nbytes, per_tensor, len(sites), template,
                    tuple(sites) if "#" in template else ())
        for (split, role, module, leaf, dtype, shape, nbytes, per_tensor, template), sites in classes.items()))


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


def _tied_duplicate(inputs: list[TensorInfo], outputs: list[TensorInfo], config: dict | None) -> tuple[bool, int]:
    """Whether embeddings are tied, and how many elements a stored duplicate lm_head adds."""
    if config is None:
        return False, 0
    default = str(config.get("model_type")) not in _UNTIED_BY_DEFAULT
    tied = bool(config.get("tie_word_embeddings", default))
    if not tied:
        return False, 0
    if inputs and outputs and inputs[0].numel == outputs[0].numel:
        return True, outputs[0].numel
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


def _check(tensors: Sequence[TensorInfo], config: object, quantize_config: object) -> None:
    """Refuse inputs no header parser produces, with a one-line message naming the tensor or file."""
    for name, value in (("config.json", config), ("quantize_config.json", quantize_config)):
        if value is not None and not isinstance(value, dict):
            raise BadConfig(f"{name}: expected a JSON object, got {type(value).__name__}")
    for t in tensors:
        where = f"{t.file or 'tensor list'}: tensor '{t.name}'"
        if not isinstance(t.dtype, str) or not isinstance(t.name, str):
            raise BadHeader(f"{where} has a non-string name or dtype")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in t.shape):
            raise BadHeader(f"{where} has an invalid shape {list(t.shape)!r}")
        if not isinstance(t.nbytes, int) or t.nbytes < 0:
            raise BadHeader(f"{where} has an invalid byte size {t.nbytes!r}")
