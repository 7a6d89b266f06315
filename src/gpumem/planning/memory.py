"""Pure: the seed formula, and the serving breakdown per GPU (weights, KV cache, activations, overhead).

Where each constant comes from (see ../shared/reference/memory-model.md and fixtures/measurements/):

- KV cache: GQA/MQA `2 * kv_heads_per_gpu * head_dim * bytes` per attention layer, kv heads per GPU
  `max(1, kv_heads // tp)`; MLA `(kv_lora_rank + qk_rope_head_dim) * bytes`, replicated on every rank.
  Sliding-window layers hold what the engine keeps of the window. Mamba layers hold a constant conv + SSM state per
  sequence (in the KV dtype, split over TP). Exact against every measured `kv_bytes_measured`.
- Activations: the per-token prefill figure (activations.py) times the tokens the engine runs at once.
- Overhead per GPU, budget, activation peak and sliding-window tokens: the engine's (engines/), per version.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..constants import GB
from ..errors import UsageError
from ..model.types import REPLICATED, ModelSummary, TensorClass
from .options import KV_DTYPE_BYTES, ServingOptions  # noqa: F401 (re-exported with the memory model)

if TYPE_CHECKING:  # annotations only: `gpumem calc` reads no config
    from ..model.architecture import Architecture


def formula_memory_gb(parameters: int, bits: float, overhead: float = 1.2) -> float:
    """The seed formula M_GB = P * 4 / (32 / Q) * overhead, in GB of 10^9 bytes."""
    return parameters * 4 / (32 / bits) * overhead / GB


@dataclass(frozen=True, slots=True)
class FormulaResult:
    """The seed formula applied to one parameter count at one width."""

    bits: float
    overhead: float
    memory_gb: float

    @classmethod
    def compute(cls, parameters: int, bits: float, overhead: float = 1.2) -> FormulaResult:
        """Apply the formula."""
        return cls(bits, overhead, formula_memory_gb(parameters, bits, overhead))

    def to_dict(self) -> dict[str, Any]:
        """{"bits", "overhead", "memory_gb"}."""
        return {"bits": self.bits, "overhead": self.overhead, "memory_gb": self.memory_gb}


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
    host_bytes: int | None = None  # engines that keep part of the model in system memory (llama.cpp)
    offload: tuple[dict[str, Any], ...] = ()  # llama.cpp: one row per -ngl value
    engine_detail: dict[str, Any] | None = None  # the engine's own view of the run (flags, cache cells)
    pp: int = 1  # pipeline stages: the figures are one GPU of the busiest stage
    engine_version: str | None = None  # the modelled version the figures follow (the newest unless asked)

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
            "engine": self.engine, "engine_version": self.engine_version, "context": self.context,
            "concurrency": self.concurrency,
            "kv_dtype": self.kv_dtype, "tp": self.tp, "pp": self.pp, "kv_bytes_per_token": self.kv_bytes_per_token,
            "active_parameters": self.active_parameters,
            "per_gpu": {"weights_bytes": self.weights_bytes, "kv_cache_bytes": self.kv_cache_bytes,
                        "activation_bytes": self.activation_bytes, "overhead_bytes": self.overhead_bytes,
                        "total_bytes": self.total_bytes},
            "max_context": self.max_context, "notes": list(self.notes),
            **({"host_bytes": self.host_bytes} if self.host_bytes is not None else {}),
            **({"offload": list(self.offload)} if self.offload else {}),
            **({self.engine.replace(".", "_"): self.engine_detail} if self.engine_detail else {}),
        }


@dataclass(frozen=True, slots=True)
class Capacity:
    """What fits on one GPU of `usable_bytes`: the KV pool and the sequences of --context it holds."""

    budget_bytes: int  # what the engine lets the model use of the GPU (Engine.budget)
    kv_pool_bytes: int
    max_concurrency: int  # whole sequences of --context that fit at once
    largest_context: int | None  # when not even one sequence of --context fits: the longest that does
    kv_cache_tokens: int = 0  # what vLLM logs as "GPU KV cache size: N tokens"
    concurrency_ratio: float = 0.0  # "Maximum concurrency for C tokens per request: X.XXx"
    outside_budget_bytes: int = 0  # overhead the engine holds on top of its budget (vLLM: context, CUDA graphs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"budget_bytes": self.budget_bytes, "kv_pool_bytes": self.kv_pool_bytes,
                "max_concurrency": self.max_concurrency, "largest_context": self.largest_context,
                "kv_cache_tokens": self.kv_cache_tokens, "concurrency_ratio": self.concurrency_ratio}


def check_tp(arch: Architecture | None, tp: int) -> None:
    """Raise UsageError for a tensor-parallel size (>= 1, as ServingOptions checks) the heads cannot split over."""
    if arch is None or tp == 1:
        return
    if arch.num_attention_heads % tp:
        raise UsageError(f"tp {tp} does not divide the model's {arch.num_attention_heads} attention heads; "
                         f"use a TP size that divides it", option="tp")
    kv = arch.num_kv_heads
    if not arch.is_mla and kv % tp and tp % kv:
        raise UsageError(f"tp {tp} cannot split the model's {kv} KV heads (TP must divide them or be a "
                         f"multiple of them)", option="tp")


def kv_bytes_per_layer_token(arch: Architecture, kv_bytes: int, tp: int) -> int:
    """KV cache bytes one token adds to one attention layer, per GPU."""
    if arch.is_mla:  # latent cache, the same on every rank
        return ((arch.kv_lora_rank or 0) + (arch.qk_rope_head_dim or 0)) * kv_bytes
    return 2 * max(1, arch.num_kv_heads // tp) * arch.head_dim * kv_bytes


def kv_bytes_per_token(arch: Architecture, kv_dtype_bytes: int, tp: int = 1) -> int:
    """KV cache bytes one token adds per GPU, summed over attention layers (sliding ones included)."""
    if arch.is_encoder:
        return 0
    layers = arch.full_attention_layers + arch.sliding_layers
    return layers * kv_bytes_per_layer_token(arch, kv_dtype_bytes, tp)


def sliding_tokens_held(arch: Architecture, context: int, options: ServingOptions) -> int:
    """Tokens a sliding-window layer keeps for one sequence of `context` tokens, under the options' engine."""
    if not arch.sliding_window:
        return context
    return options.engine_model.sliding_window_tokens(arch.sliding_window, context, options)


def kv_bytes_per_sequence(arch: Architecture, context: int, options: ServingOptions) -> int:
    """KV cache (and Mamba state) of one sequence of `context` tokens, per GPU."""
    if arch.is_encoder:
        return 0
    per_layer = kv_bytes_per_layer_token(arch, options.kv_bytes, options.tp)
    held = sliding_tokens_held(arch, context, options)
    state = arch.state_layers * arch.mamba_state_elements * options.kv_bytes // options.tp
    return arch.full_attention_layers * per_layer * context + arch.sliding_layers * per_layer * held + state


def weights_per_gpu(summary: ModelSummary, tp: int = 1, bits: float | None = None) -> int:
    """Weight bytes one GPU holds: split tensors and vocab rows / tp (rounded up per tensor), replicated whole.

    `bits` re-weighs every parameter at that width (side data and buffers then count nothing). Without tensor
    classes (a bare parameter count, a pickle-only repo's estimate) everything is split.
    """
    count = summary.count
    if not summary.classes:
        size = count.weight_bytes if bits is None or count.parameters is None else int(count.parameters * bits // 8)
        return -(-size // tp)
    total = 0
    for c in summary.classes:
        if c.role == "buffer":  # not loaded as weights
            continue
        size = c.nbytes if bits is None else what_if_bytes(c, bits)
        total += c.count * (size if c.split == REPLICATED else -(-size // tp))
    return total


GPTQ_GROUP = 128
_LINEAR_ROLES = frozenset({"dense", "routed_expert", "shared_expert"})


def what_if_bytes(c: TensorClass, bits: float) -> int:
    """One tensor of class `c` loaded at `bits`: below 16 bit laid out as a real Q-bit GPTQ checkpoint is.

    Linear weights become qweight (`bits` per weight, packed in int32), qzeros (`bits` per group of 128 inputs
    and output), fp16 scales (per group and output) and an int32 g_idx per input; embeddings, lm_head, norms,
    biases and routers stay 16 bit (TheBloke/Llama-2-13B-chat-GPTQ's layout). At 16 bit and above: every
    parameter at `bits`.
    """
    if bits >= 16:
        return int(c.parameters * bits // 8)
    if c.role not in _LINEAR_ROLES or c.split == REPLICATED or len(c.shape) != 2 or not c.parameters:
        return c.parameters * 2  # side data counts nothing (parameters 0)
    inputs = c.shape[1] if c.leaf == "weight" else max(1, c.parameters // c.shape[-1])
    outputs = c.parameters // inputs
    groups = -(-inputs // GPTQ_GROUP)
    return int(c.parameters * bits // 8 + groups * outputs * bits // 8 + groups * outputs * 2 + inputs * 4)


def active_parameters(summary: ModelSummary, arch: Architecture | None) -> int:
    """Parameters one token uses: routed experts count top_k / n_experts, shared experts and the rest whole."""
    count = summary.count
    total = count.parameters if count.parameters is not None else sum(c.parameters * c.count for c in summary.classes)
    if arch is None or not arch.is_moe:
        return total
    routed = sum(c.parameters * c.count for c in summary.classes if c.role == "routed_expert")
    return total - routed * (arch.num_experts - arch.experts_per_token) // arch.num_experts


def estimate_serving(summary: ModelSummary, arch: Architecture | None, options: ServingOptions,
                     bits: float | None = None, *, loaded: ModelSummary | None = None) -> ServingEstimate:
    """Per-GPU breakdown of serving the model; weights-only (with the reason noted) without an architecture.

    `bits` re-weighs the load width: every parameter at `bits` (parameters * bits / 8, matching the seed
    formula); quantization side data and buffers then count nothing. `loaded`: the engine's
    `loaded_summary(summary, arch, bits)`, from a caller that sizes many layouts of one model and derives it once.
    """
    check_tp(arch, options.tp)
    active = active_parameters(summary, arch)
    version = options.engine_model.resolve_version(options.engine_version)
    if arch is not None:
        own = options.engine_model.serving_estimate(summary, arch, options, bits)
        if own is not None:
            return replace(own, active_parameters=active, engine_version=version)
    notes: list[str] = []
    if loaded is None:
        loaded = options.engine_model.loaded_summary(summary, arch, bits)
    weights = options.engine_model.loaded_weights(loaded, arch, options, bits)
    if options.lora:
        weights += options.engine_model.lora_weights(options.lora, options.tp)
    overhead = options.engine_model.overhead(options)
    if arch is None:
        notes.append("no readable config.json: weights and runtime overhead only (no KV cache, no activations)")
        return ServingEstimate(options.engine_model.name, options.context, options.concurrency, options.kv_dtype, options.tp,
                               0, active, weights, 0, 0, overhead, 0, 0,
                               None, tuple(notes), engine_version=version)
    context = options.context
    if arch.max_context and context > arch.max_context:
        if options.context_asked:
            notes.append(f"context capped at the model's maximum of {arch.max_context:,} tokens (asked {context:,})")
        context = arch.max_context
    if arch.is_encoder:
        notes.append("embedding/encoder model: no KV cache is kept")
    if arch.sliding_window:
        notes.append(f"{arch.sliding_layers} of {arch.num_layers} layers use a {arch.sliding_window:,}-token "
                     f"sliding window")
    if arch.state_layers:
        notes.append(f"{arch.state_layers} Mamba layers hold a constant state per sequence")
    per_seq = kv_bytes_per_sequence(arch, context, options)
    activations, act_per_seq = options.engine_model.activation_peak(arch, options, context)
    return ServingEstimate(
        engine=options.engine_model.name, context=context, concurrency=options.concurrency, kv_dtype=options.kv_dtype,
        tp=options.tp, kv_bytes_per_token=kv_bytes_per_token(arch, options.kv_bytes, options.tp),
        active_parameters=active, weights_bytes=weights,
        kv_cache_bytes=per_seq * options.concurrency, activation_bytes=activations, overhead_bytes=overhead,
        kv_bytes_per_sequence=per_seq, activation_bytes_per_sequence=act_per_seq, max_context=arch.max_context,
        notes=tuple(notes), engine_version=version)


def capacity(estimate: ServingEstimate, arch: Architecture | None, options: ServingOptions,
             usable_bytes: int) -> Capacity:
    """KV pool and maximum concurrency at --context on one GPU, as vLLM logs "Maximum concurrency"."""
    engine = options.engine_model
    budget = engine.budget(usable_bytes, options)
    outside = engine.overhead_outside_budget(options)
    if engine.activations_outside_budget:
        outside += estimate.activation_bytes
    pool = max(kv_pool_bytes(estimate, options, usable_bytes), 0)
    per_seq = estimate.kv_bytes_per_sequence + estimate.activation_bytes_per_sequence
    if per_seq == 0:  # weights-only: unknown (0); encoder: the engine's sequence cap bounds it
        return Capacity(budget, pool, engine.max_sequences(options) if arch is not None and pool else 0, None,
                        outside_budget_bytes=outside)
    fits = pool // per_seq
    largest = None
    if fits == 0 and arch is not None and pool > 0:
        largest = _largest_context(arch, options, pool)
    tokens = engine.kv_cache_tokens(pool, estimate.kv_bytes_per_token)
    ratio = tokens * estimate.kv_bytes_per_token / per_seq if estimate.kv_bytes_per_sequence else 0.0
    return Capacity(budget, pool, int(fits), largest, tokens, ratio, outside)


def kv_pool_bytes(estimate: ServingEstimate, options: ServingOptions, usable_bytes: int) -> int:
    """What the budget leaves for the KV cache (vLLM's "Available KV cache memory"; negative: does not start).

    Activations that grow with concurrency (transformers' per-sequence prefill) travel with each sequence and
    are not taken here; overhead the engine holds outside its budget is not taken either.
    """
    engine = options.engine_model
    fixed_activations = estimate.activation_bytes - estimate.concurrency * estimate.activation_bytes_per_sequence
    if engine.activations_outside_budget:
        fixed_activations = 0
    inside = estimate.overhead_bytes - engine.overhead_outside_budget(options)
    return engine.budget(usable_bytes, options) - estimate.weights_bytes - inside - fixed_activations


def _largest_context(arch: Architecture, options: ServingOptions, pool: int) -> int:
    """Longest single sequence whose KV cache (and activations that travel with it) fits in `pool`."""
    engine = options.engine_model

    def cost(tokens: int) -> int:
        return kv_bytes_per_sequence(arch, tokens, options) + engine.activation_peak(arch, options, tokens)[1]
    low, high = 0, options.context
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= pool:
            low = mid
        else:
            high = mid - 1
    return low
