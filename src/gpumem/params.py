"""Exact parameter counting over stored tensors: buffers, tied embeddings and quantized packing accounted for."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from .errors import BadConfig, BadHeader
from .quantization import scan_quantization
from .safetensors_header import DTYPE_BITS
from .types import TensorInfo, WeightCount

# transformers' PretrainedConfig defaults tie_word_embeddings to True; these model types' config classes
# default it to False (LlamaConfig, MistralConfig, MixtralConfig, Qwen2Config, Phi3Config, DeepseekV3Config, ...).
_UNTIED_BY_DEFAULT = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "deepseek_v2",
    "deepseek_v3", "gpt_oss", "gpt_neox", "olmo", "olmo2",
})  # fmt: skip
_INPUT_EMBEDDINGS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight",
                     "embed_in.weight")  # fmt: skip
_OUTPUT_EMBEDDINGS = ("lm_head.weight", "embed_out.weight")


def count_weights(
    tensors: Sequence[TensorInfo], config: dict | None = None, quantize_config: dict | None = None
) -> WeightCount:
    """Count a checkpoint's stored elements per dtype, its exact bytes and its real parameters."""
    _check(tensors, config, quantize_config)
    stored: dict[str, int] = defaultdict(int)
    for t in tensors:
        stored[t.dtype] += t.numel
    scan = scan_quantization(tensors, config, quantize_config)
    notes = list(scan.notes)
    plain = [t for t in tensors if t.name not in scan.claimed]
    buffers = sum(t.numel for t in plain if t.is_buffer)
    params = [t for t in plain if not t.is_buffer]
    tied, duplicate = _tied_duplicate(params, config)
    unknown = sorted({t.dtype for t in plain if t.dtype not in DTYPE_BITS})  # claimed ones: the scan's notes
    if unknown:
        first = next(t for t in plain if t.dtype in unknown)
        notes.append(f"unknown dtype {', '.join(unknown)} (e.g. tensor '{first.name}'): parameter count unknown, "
                     "stored bytes are exact")
    parameters = None
    if not unknown and scan.parameters is not None:
        parameters = sum(t.numel for t in params) - duplicate + scan.parameters
    return WeightCount(
        parameters=parameters,
        stored_elements=dict(sorted(stored.items())),
        weight_bytes=sum(t.nbytes for t in tensors),
        buffer_elements=buffers,
        tied_embeddings=tied,
        quantization=scan.quantization,
        notes=tuple(notes),
    )


def _tied_duplicate(params: list[TensorInfo], config: dict | None) -> tuple[bool, int]:
    """Whether embeddings are tied, and how many elements a stored duplicate lm_head adds."""
    if config is None:
        return False, 0
    default = str(config.get("model_type")) not in _UNTIED_BY_DEFAULT
    tied = bool(config.get("tie_word_embeddings", default))
    if not tied:
        return False, 0
    # A model's own embedding is outside its decoder layers (DeepSeek's MTP layer keeps another inside).
    inputs = [t for t in params if t.name.endswith(_INPUT_EMBEDDINGS) and ".layers." not in t.name]
    outputs = [t for t in params if t.name.endswith(_OUTPUT_EMBEDDINGS)]
    if inputs and outputs and inputs[0].numel == outputs[0].numel:
        return True, outputs[0].numel
    return True, 0


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
