"""Pure: the seed formula, and the serving breakdown per GPU (weights, KV cache, activations, overhead).

Where each constant comes from (see ../shared/reference/memory-model.md and fixtures/measurements/):

- KV cache: GQA/MQA `2 * kv_heads_per_gpu * head_dim * bytes` per attention layer, kv heads per GPU
  `max(1, kv_heads // tp)`; MLA `(kv_lora_rank + qk_rope_head_dim) * bytes`, replicated on every rank.
  Sliding-window layers hold `min(context, window - 1)` tokens (transformers; measured on Phi-3-mini), or vLLM's allocation bound
  `min(context, window - 1 + max_num_batched_tokens)`. Mamba layers hold a constant conv + SSM state per
  sequence (in the KV dtype, split over TP). Exact against every measured `kv_bytes_measured`.
- Activations: a prefill of T tokens peaks at `T * 2 B * (3 * I / tp + 4 * H)` (three intermediate-size
  tensors of the MLP and four hidden-size tensors, bf16) plus the last-position logits in fp32.
  Fitted on the H200 measurements (prefill_peak_over_weights - kv over 9 rows, Llama-2-7B, Llama-3-8B,
  Mistral-7B, 4k-64k tokens): solving the two families gives 3.00 x I and 4.00 x H per token, within 0.1%
  of 98.8 KB/token (Llama-2-7B) and 118.8 KB/token (Llama-3-8B). MoE layers use
  `(top_k + shared) * moe_intermediate` as I (held-out Mixtral-8x7B measurement: within 1.3%).
  Under transformers a sliding-window mask that cuts the prompt sends SDPA to its math path, which holds one
  layer's `heads * S * S` bf16 scores plus q/k/v per sequence (held-out Phi-3-mini: within 1.1%).
  transformers runs the whole prefill (`concurrency * context` tokens) at once; vLLM's profile run
  uses `max_num_batched_tokens` tokens plus a sampler pass over `max_num_seqs` logits (3 fp32 copies),
  which reproduces the 1.26 GiB "activation peak" vLLM logs for Meta-Llama-3-8B (vllm PR #10511).
- Overhead per GPU: CUDA context + torch 552,402,944 B (measured, H200, torch 2.11); vLLM adds
  non-torch memory (cuBLAS workspaces, 200 MiB as vLLM logs it) and CUDA graphs (512 MiB; 0.1-1.3 GiB
  in practice); TP > 1 adds NCCL buffers (512 MiB per GPU; hundreds of MiB to 2 GiB in practice).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .architecture import Architecture
from .errors import UsageError
from .safetensors_header import DTYPE_BITS
from .types import TensorInfo, WeightCount
from .units import GB

MIB = 2**20
CUDA_CONTEXT_BYTES = 552_402_944
VLLM_NON_TORCH_BYTES = 200 * MIB
VLLM_CUDA_GRAPH_BYTES = 512 * MIB
NCCL_BYTES = 512 * MIB
ACTIVATION_BYTES = 2  # activations are bf16/fp16 whatever the weights' storage
KV_DTYPE_BYTES = {"auto": 2, "bf16": 2, "fp16": 2, "fp8": 1}
ENGINES = ("vllm", "transformers")

_EXPERT = re.compile(r"\.experts\.(\d+\.)?")
_EMBEDDING = re.compile(r"(embed_tokens|\bwte\b|word_embeddings|embed_in|embed_out|lm_head|^output\.weight)")
_REPLICATED = re.compile(r"(norm|\bln_|\.ln\d|router|\.gate\.(weight|e_score_correction_bias)|shared_expert_gate|"
                         r"kv_a_proj_with_mqa|q_a_proj|\bwpe\b|position_embeddings)")
# Packed quantized storage: integer containers holding several `quantization.bits`-bit values each.
_PACKED_DTYPES = frozenset({"I32", "U32", "U8"})
_PACKED_METHODS = {"gptq", "awq", "compressed-tensors", "bitsandbytes-4bit", "mxfp4", "nvfp4"}


def formula_memory_gb(parameters: int, bits: int, overhead: float = 1.2) -> float:
    """The seed formula M_GB = P * 4 / (32 / Q) * overhead, in GB of 10^9 bytes."""
    return parameters * 4 / (32 / bits) * overhead / GB


@dataclass(frozen=True, slots=True)
class FormulaResult:
    """The seed formula applied to one parameter count at one width."""

    bits: int
    overhead: float
    memory_gb: float

    @classmethod
    def compute(cls, parameters: int, bits: int, overhead: float = 1.2) -> FormulaResult:
        """Apply the formula."""
        return cls(bits, overhead, formula_memory_gb(parameters, bits, overhead))

    def to_dict(self) -> dict[str, Any]:
        """{"bits", "overhead", "memory_gb"}."""
        return {"bits": self.bits, "overhead": self.overhead, "memory_gb": self.memory_gb}


@dataclass(frozen=True, slots=True)
class ServingOptions:
    """How the model is served: engine, context, concurrency, KV dtype, tensor parallel."""

    engine: str = "vllm"
    context: int = 4096
    concurrency: int = 1
    kv_dtype: str = "auto"
    tp: int = 1
    gpu_memory_utilization: float = 0.9
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256  # vLLM's default: sizes the sampler pass of the profile run

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.kv_dtype not in KV_DTYPE_BYTES:
            raise UsageError(f"--kv-dtype must be one of {', '.join(KV_DTYPE_BYTES)}, got {self.kv_dtype!r}")
        for name in ("context", "concurrency", "tp", "max_num_batched_tokens", "max_num_seqs"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise UsageError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")

    @property
    def kv_bytes(self) -> int:
        """Bytes per cached element."""
        return KV_DTYPE_BYTES[self.kv_dtype]


@dataclass(frozen=True, slots=True)
class ServingEstimate:
    """Per-GPU memory of serving a model with given options (all byte figures per GPU)."""

    engine: str
    context: int
    concurrency: int
    kv_dtype: str
    tp: int
    kv_bytes_per_token: int
    active_parameters: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    kv_bytes_per_sequence: int  # one sequence of `context` tokens, per GPU
    activation_bytes_per_sequence: int  # transformers: what one more concurrent sequence adds
    max_context: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def total_bytes(self) -> int:
        """Weights + KV cache + activations + overhead, per GPU."""
        return self.weights_bytes + self.kv_cache_bytes + self.activation_bytes + self.overhead_bytes

    @property
    def non_kv_bytes(self) -> int:
        """Everything but the KV cache: what must fit before any sequence does."""
        return self.weights_bytes + self.activation_bytes + self.overhead_bytes

    def to_dict(self) -> dict[str, Any]:
        """The issue's "serving" object (integer bytes) plus notes and the model's maximum context."""
        return {
            "engine": self.engine, "context": self.context, "concurrency": self.concurrency,
            "kv_dtype": self.kv_dtype, "tp": self.tp, "kv_bytes_per_token": self.kv_bytes_per_token,
            "active_parameters": self.active_parameters,
            "per_gpu": {"weights_bytes": self.weights_bytes, "kv_cache_bytes": self.kv_cache_bytes,
                        "activation_bytes": self.activation_bytes, "overhead_bytes": self.overhead_bytes,
                        "total_bytes": self.total_bytes},
            "max_context": self.max_context, "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Capacity:
    """What fits on one GPU of `usable_bytes`: the KV pool and the sequences of --context it holds."""

    budget_bytes: int  # usable * gpu_memory_utilization (vllm) or usable (transformers)
    kv_pool_bytes: int
    max_concurrency: int
    largest_context: int | None  # when not even one sequence of --context fits: the longest that does

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"budget_bytes": self.budget_bytes, "kv_pool_bytes": self.kv_pool_bytes,
                "max_concurrency": self.max_concurrency, "largest_context": self.largest_context}


def check_tp(arch: Architecture | None, tp: int) -> None:
    """Raise UsageError for a tensor-parallel size (>= 1, as ServingOptions checks) the heads cannot split over."""
    if arch is None or tp == 1:
        return
    if arch.num_attention_heads % tp:
        raise UsageError(f"--tp {tp} does not divide the model's {arch.num_attention_heads} attention heads; "
                         f"use a TP size that divides it")
    kv = arch.num_kv_heads
    if not arch.is_mla and kv % tp and tp % kv:
        raise UsageError(f"--tp {tp} cannot split the model's {kv} KV heads (TP must divide them or be a "
                         f"multiple of them)")


def _kv_per_layer_token(arch: Architecture, kv_bytes: int, tp: int) -> int:
    if arch.is_mla:  # latent cache, the same on every rank
        return (arch.kv_lora_rank + (arch.qk_rope_head_dim or 0)) * kv_bytes
    return 2 * max(1, arch.num_kv_heads // tp) * arch.head_dim * kv_bytes


def kv_bytes_per_token(arch: Architecture, kv_dtype_bytes: int, tp: int = 1) -> int:
    """KV cache bytes one token adds per GPU, summed over attention layers (sliding ones included)."""
    if arch.is_encoder:
        return 0
    layers = arch.full_attention_layers + arch.sliding_layers
    return layers * _kv_per_layer_token(arch, kv_dtype_bytes, tp)


def sliding_tokens_held(arch: Architecture, context: int, engine: str, max_num_batched_tokens: int) -> int:
    """Tokens a sliding-window layer keeps for one sequence of `context` tokens."""
    if not arch.sliding_window:
        return context
    window = arch.sliding_window
    if engine == "vllm":  # vLLM allocates the window plus one scheduled chunk
        window = window - 1 + max_num_batched_tokens
    else:  # transformers' sliding cache keeps the last window - 1 tokens (measured: Phi-3, 2,046 of 2,047)
        window = window - 1
    return min(context, window)


def kv_bytes_per_sequence(arch: Architecture, context: int, options: ServingOptions) -> int:
    """KV cache (and Mamba state) of one sequence of `context` tokens, per GPU."""
    if arch.is_encoder:
        return 0
    per_layer = _kv_per_layer_token(arch, options.kv_bytes, options.tp)
    held = sliding_tokens_held(arch, context, options.engine, options.max_num_batched_tokens)
    state = arch.state_layers * arch.mamba_state_elements * options.kv_bytes // options.tp
    return arch.full_attention_layers * per_layer * context + arch.sliding_layers * per_layer * held + state


def _mlp_width(arch: Architecture) -> int:
    """Intermediate width one token occupies in its widest feed-forward block."""
    if not arch.is_moe:
        return arch.intermediate_size
    expert = arch.moe_intermediate_size or arch.intermediate_size
    routed = (arch.experts_per_token + arch.num_shared_experts) * expert
    return max(routed, arch.intermediate_size if arch.first_dense_layers else 0)


def activation_bytes_per_token(arch: Architecture, tp: int = 1) -> int:
    """Transient prefill activation bytes per token per GPU (fit: 3 x I / tp + 4 x H, bf16)."""
    return ACTIVATION_BYTES * (3 * _mlp_width(arch) // tp + 4 * arch.hidden_size)


def _transformers_activation_per_sequence(arch: Architecture, options: ServingOptions, tokens: int) -> int:
    """Prefill activations one sequence of `tokens` adds under transformers, per GPU."""
    per_sequence = tokens * activation_bytes_per_token(arch, options.tp) + arch.vocab_size * 4  # + fp32 logits
    if arch.sliding_layers and arch.sliding_window and arch.sliding_window - 1 < tokens:
        # A sliding-window mask sends SDPA down its math path, which holds one layer's S x S bf16 scores
        # beside q/k/v (measured on Phi-3-mini: 1.19 GB at 1 x 4096, 9.42 GB at 8 x 4096 over the cache).
        heads = arch.num_attention_heads // options.tp
        qkv = (heads + 2 * max(1, arch.num_kv_heads // options.tp)) * arch.head_dim * ACTIVATION_BYTES
        per_sequence = max(per_sequence, heads * tokens * tokens * ACTIVATION_BYTES + tokens * qkv)
    return per_sequence


def _activation_bytes(arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
    """(activation peak, what one more concurrent sequence adds) for the engine."""
    if options.engine == "vllm":
        sampler = 3 * options.max_num_seqs * arch.vocab_size * 4
        return options.max_num_batched_tokens * activation_bytes_per_token(arch, options.tp) + sampler, 0
    per_sequence = _transformers_activation_per_sequence(arch, options, context)
    return options.concurrency * per_sequence, per_sequence


def overhead_bytes(engine: str, tp: int) -> int:
    """Runtime memory per GPU that is neither weights, KV nor activations."""
    total = CUDA_CONTEXT_BYTES
    if engine == "vllm":
        total += VLLM_NON_TORCH_BYTES + VLLM_CUDA_GRAPH_BYTES
    if tp > 1:
        total += NCCL_BYTES
    return total


def tensor_parameters(tensor: TensorInfo, count: WeightCount) -> int:
    """Real parameters one stored tensor holds (0 for buffers and quantization side data)."""
    if tensor.is_buffer:
        return 0
    quant = count.quantization
    if quant and tensor.name in quant.side_tensors:
        return 0
    if quant and quant.bits and quant.method in _PACKED_METHODS and tensor.dtype in _PACKED_DTYPES:
        return tensor.numel * DTYPE_BITS[tensor.dtype] // quant.bits
    return tensor.numel


@lru_cache(maxsize=2**18)  # asked again for every TP size; DeepSeek-V3 stores 92k tensors
def tensor_split(name: str) -> str:
    """How TP shards a tensor: "replicated", "vocab" (split by rows of the vocabulary) or "split"."""
    if _EMBEDDING.search(name):
        return "vocab"
    if _REPLICATED.search(name):
        return "replicated"
    return "split"


def weights_per_gpu(tensors: Sequence[TensorInfo], count: WeightCount, tp: int = 1,
                    bits: int | None = None) -> int:
    """Weight bytes one GPU holds: split tensors and vocab rows / tp, norms and routers whole.

    Without tensors (a bare parameter count, or a pickle-only repo's estimate) everything is split.
    """
    if not tensors:
        size = count.weight_bytes if bits is None or count.parameters is None else count.parameters * bits // 8
        return -(-size // tp)
    total = 0
    for t in tensors:
        if t.is_buffer:  # not loaded as weights
            continue
        kind = tensor_split(t.name)
        size = t.nbytes if bits is None else tensor_parameters(t, count) * bits // 8
        total += size if kind == "replicated" else -(-size // tp)
    return total


@lru_cache(maxsize=2**18)
def _is_routed_expert(name: str) -> bool:
    return bool(_EXPERT.search(name)) and "shared" not in name


def active_parameters(tensors: Sequence[TensorInfo], count: WeightCount, arch: Architecture | None) -> int:
    """Parameters one token uses: routed experts count top_k / n_experts, shared experts and the rest whole."""
    total = count.parameters if count.parameters is not None else sum(tensor_parameters(t, count) for t in tensors)
    if arch is None or not arch.is_moe:
        return total
    routed = sum(tensor_parameters(t, count) for t in tensors if _is_routed_expert(t.name))
    inactive = routed * (arch.num_experts - arch.experts_per_token) // arch.num_experts
    return total - inactive


def estimate_serving(tensors: Sequence[TensorInfo], count: WeightCount, arch: Architecture | None,
                     options: ServingOptions, bits: int | None = None, active: int | None = None) -> ServingEstimate:
    """Per-GPU breakdown of serving the model; weights-only (with the reason noted) without an architecture.

    `bits` re-weighs the load width: every parameter at `bits` (parameters * bits / 8, matching the seed
    formula); quantization side data and buffers then count nothing. `active`, when given, is
    `active_parameters(tensors, count, arch)` computed once by a caller that estimates several TP sizes.
    """
    check_tp(arch, options.tp)
    if active is None:
        active = active_parameters(tensors, count, arch)
    notes: list[str] = []
    weights = weights_per_gpu(tensors, count, options.tp, bits)
    overhead = overhead_bytes(options.engine, options.tp)
    if arch is None:
        notes.append("no readable config.json: weights and runtime overhead only (no KV cache, no activations)")
        return ServingEstimate(options.engine, options.context, options.concurrency, options.kv_dtype, options.tp,
                               0, active, weights, 0, 0, overhead, 0, 0,
                               None, tuple(notes))
    context = options.context
    if arch.max_context and context > arch.max_context:
        notes.append(f"context capped at the model's maximum of {arch.max_context} tokens (asked {context})")
        context = arch.max_context
    if arch.is_encoder:
        notes.append("embedding/encoder model: no KV cache is kept")
    if arch.sliding_window:
        notes.append(f"{arch.sliding_layers} of {arch.num_layers} layers use a {arch.sliding_window}-token "
                     f"sliding window")
    if arch.state_layers:
        notes.append(f"{arch.state_layers} Mamba layers hold a constant state per sequence")
    per_seq = kv_bytes_per_sequence(arch, context, options)
    activations, act_per_seq = _activation_bytes(arch, options, context)
    return ServingEstimate(
        engine=options.engine, context=context, concurrency=options.concurrency, kv_dtype=options.kv_dtype,
        tp=options.tp, kv_bytes_per_token=kv_bytes_per_token(arch, options.kv_bytes, options.tp),
        active_parameters=active, weights_bytes=weights,
        kv_cache_bytes=per_seq * options.concurrency, activation_bytes=activations, overhead_bytes=overhead,
        kv_bytes_per_sequence=per_seq, activation_bytes_per_sequence=act_per_seq, max_context=arch.max_context,
        notes=tuple(notes))


def capacity(estimate: ServingEstimate, arch: Architecture | None, options: ServingOptions,
             usable_bytes: int) -> Capacity:
    """KV pool and maximum concurrency at --context on one GPU, as vLLM logs "Maximum concurrency"."""
    budget = int(usable_bytes * options.gpu_memory_utilization) if options.engine == "vllm" else usable_bytes
    if options.engine == "vllm":
        pool = budget - estimate.non_kv_bytes
        per_seq = estimate.kv_bytes_per_sequence
    else:  # transformers: each extra sequence also brings its prefill activations
        pool = budget - estimate.weights_bytes - estimate.overhead_bytes
        per_seq = estimate.kv_bytes_per_sequence + estimate.activation_bytes_per_sequence
    pool = max(pool, 0)
    if per_seq == 0:  # weights-only: unknown (0); encoder: the engine's sequence cap bounds it
        return Capacity(budget, pool, options.max_num_seqs if arch is not None and pool else 0, None)
    fits = pool // per_seq
    largest = None
    if fits == 0 and arch is not None and pool > 0:
        largest = _largest_context(arch, options, pool)
    return Capacity(budget, pool, int(fits), largest)


def _largest_context(arch: Architecture, options: ServingOptions, pool: int) -> int:
    """Longest single sequence whose KV cache (and, for transformers, activations) fits in `pool`."""
    def cost(tokens: int) -> int:
        kv = kv_bytes_per_sequence(arch, tokens, options)
        if options.engine == "transformers":
            kv += _transformers_activation_per_sequence(arch, options, tokens)
        return kv
    low, high = 0, options.context
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= pool:
            low = mid
        else:
            high = mid - 1
    return low
