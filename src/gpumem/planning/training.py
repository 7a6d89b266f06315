"""Pure: GPU memory of fine-tuning a model (full, LoRA, QLoRA) per GPU, and the plans that hold it.

Per GPU = frozen weights + trainable weights + gradients + optimizer states + activations + overhead.

- Trainable parameters are exact: full fine-tuning trains every parameter; LoRA/QLoRA add
  r x (in + out) per targeted linear (adapters.py, PEFT's rules), counted over the base's modules.
- Bytes per trainable parameter follow the ZeRO paper's accounting (Rajbhandari et al. 2020): mixed
  precision with fp32 master weights keeps 16-bit weights (2) and gradients (2) plus the optimizer's
  fp32 master copy (4) and its states (AdamW: momentum and variance, 4 + 4) = 16 bytes. Without master
  weights ("pure" bf16, as torchtune and LitGPT's bf16-true run) weights, gradients and AdamW states are
  all 16-bit: 2 + 2 + 4 = 8. fp32: 4 + 4 + 8 = 16. bitsandbytes 8-bit AdamW keeps each state in 1 byte
  plus an fp32 absmax per 256-value block; Adafactor (no momentum, as transformers runs it) keeps a row
  and a column vector per matrix; SGD without momentum keeps nothing.
- QLoRA's frozen weights are bitsandbytes NF4, exactly (bitsandbytes functional.py `quantize_4bit`):
  per linear of N weights, ceil(N / 2) packed bytes, ceil(N / 64) absmax blocks; with double
  quantization (QLoRA's recipe, assumed) each absmax is 1 byte plus one fp32 absmax per 256 blocks, a
  256-entry fp32 code and an fp32 offset, and every weight carries its 16-entry fp32 NF4 code. The
  output head, embeddings and norms stay 16-bit.
- ZeRO: stage 1 shards optimizer states (master weights included) over the data-parallel GPUs, stage 2
  also gradients, stage 3 (= FSDP full shard) also the weights, frozen ones included; stage 3 then
  gathers a layer's weights to run it, and prefetches the next in the backward pass (FSDP's default
  BACKWARD_PRE): two layers, counted in overhead.
- Activations (flash/SDPA attention, no S x S scores): per token and layer the tensors autograd keeps
  (the two norms' inputs and outputs, q, k, v and the attention output, and the MLP's intermediates: four
  for a gated MLP, two otherwise), 16-bit, times ACTIVATION_FACTOR fitted on published measurements
  (docs/training.md, fixtures/measurements/finetune-public-memory.jsonl). With gradient checkpointing
  only each layer's input is kept, plus one layer recomputed during the backward pass. The fp32 logits,
  batch x seq x vocab x 4 bytes, are added in both cases.
- Overhead: the CUDA context and torch (measured, as for serving), NCCL buffers when GPUs > 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from ..model.activations import mlp_width
from ..model.architecture import Architecture
from .options import TrainingOptions  # noqa: F401 (re-exported with the training model)

if TYPE_CHECKING:  # the adapter rules load with the first estimate
    from ..model.adapters import Module

PLAN_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
GPUS_PER_NODE = 8

# Fitted on part of the published measurements, checked on the rest (docs/training.md).
ACTIVATION_FACTOR = 1.39
CUDA_CONTEXT_BYTES = 552_402_944  # CUDA context + torch, measured on an H200 (memory.py)
NCCL_BYTES = 512 * 2**20

NF4_BLOCK = 64  # weights per absmax
DOUBLE_QUANT_BLOCK = 256  # absmax values per second-level fp32 absmax
NF4_CODE_BYTES = 16 * 4  # the NF4 code (quant_map), fp32, one per weight
DOUBLE_QUANT_FIXED_BYTES = 256 * 4 + 4  # the 8-bit dynamic code (nested_quant_map) and the offset, fp32
ADAM_8BIT_BLOCK = 256  # bitsandbytes 8-bit optimizers: one fp32 absmax per 256 state values

_GATED_MLP = (".gate_proj", ".w3", ".gate_up_proj", ".w1")


@dataclass(frozen=True)
class TrainingBase:
    """What training needs to know about the base checkpoint (from the model summary)."""

    parameters: int  # real parameters, tied embeddings once
    modules: tuple[Module, ...]  # its linear layers and embeddings with their shapes
    architecture: Architecture
    quantization: str | None = None  # a pre-quantized checkpoint's method (bitsandbytes-4bit, gptq, ...)
    stored_bytes: int = 0  # its exact stored bytes: the frozen weights of LoRA on it


@dataclass(frozen=True)
class TrainingBreakdown:
    """Per-GPU bytes of one training set-up on `gpus` GPUs."""

    gpus: int
    weights_bytes: int  # frozen weights
    trainable_bytes: int
    gradients_bytes: int
    optimizer_bytes: int  # optimizer states, fp32 master weights included
    activation_bytes: int
    overhead_bytes: int

    @property
    def total_bytes(self) -> int:
        """Everything one GPU holds at the peak."""
        return (self.weights_bytes + self.trainable_bytes + self.gradients_bytes + self.optimizer_bytes
                + self.activation_bytes + self.overhead_bytes)

    def to_dict(self) -> dict[str, int]:
        """JSON `per_gpu`."""
        return {"weights_bytes": self.weights_bytes, "trainable_bytes": self.trainable_bytes,
                "gradients_bytes": self.gradients_bytes, "optimizer_bytes": self.optimizer_bytes,
                "activation_bytes": self.activation_bytes, "overhead_bytes": self.overhead_bytes,
                "total_bytes": self.total_bytes}


@dataclass(frozen=True)
class TrainingEstimate:
    """Training memory of one model with one set of options: unsharded parts and the per-GPU view."""

    options: TrainingOptions
    trainable_parameters: int
    frozen_parameters: int
    frozen_weight_bytes: int  # all frozen weights (NF4 with its side data for QLoRA)
    trainable_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    activation_bytes: int  # per GPU: each GPU runs its own micro-batch
    largest_layer_bytes: int  # what ZeRO-3 gathers at once
    notes: tuple[str, ...] = ()

    @property
    def model_state_bytes(self) -> int:
        """Weights, gradients and optimizer states over all GPUs (what ZeRO shards)."""
        return self.frozen_weight_bytes + self.trainable_bytes + self.gradients_bytes + self.optimizer_bytes

    @property
    def total_bytes(self) -> int:
        """All of it before sharding: model states, one micro-batch's activations, one GPU's overhead."""
        return self.model_state_bytes + self.activation_bytes + overhead_bytes(1)

    def per_gpu(self, gpus: int = 1) -> TrainingBreakdown:
        """The breakdown on one of `gpus` data-parallel GPUs with the options' ZeRO stage."""
        zero = self.options.zero if gpus > 1 else 0
        def shard(size: int, from_stage: int) -> int:
            return -(-size // gpus) if zero >= from_stage else size
        # ZeRO-3 / FSDP unshards a layer's weights to run it, and prefetches the next one during backward
        overhead = overhead_bytes(gpus) + (2 * self.largest_layer_bytes if zero == 3 else 0)
        return TrainingBreakdown(gpus, shard(self.frozen_weight_bytes, 3), shard(self.trainable_bytes, 3),
                                 shard(self.gradients_bytes, 2), shard(self.optimizer_bytes, 1),
                                 self.activation_bytes, overhead)

    def to_dict(self, gpus: int = 1) -> dict[str, Any]:
        """JSON `training`: the options, the exact trainable count, the per-GPU breakdown on `gpus` GPUs and
        the total before sharding."""
        return {**self.options.to_dict(), "trainable_parameters": self.trainable_parameters,
                "frozen_parameters": self.frozen_parameters, "gpus": gpus,
                "per_gpu": self.per_gpu(gpus).to_dict(), "total_bytes": self.total_bytes, "notes": list(self.notes)}


def overhead_bytes(gpus: int) -> int:
    """CUDA context and torch, plus NCCL buffers when there is more than one GPU."""
    return CUDA_CONTEXT_BYTES + (NCCL_BYTES if gpus > 1 else 0)


def nf4_bytes(elements: int, double_quant: bool = True) -> int:
    """Exact bytes bitsandbytes keeps for one NF4-quantized weight of `elements` values."""
    blocks = -(-elements // NF4_BLOCK)
    packed = (elements + 1) // 2
    if not double_quant:
        return packed + blocks * 4 + NF4_CODE_BYTES
    return packed + blocks + -(-blocks // DOUBLE_QUANT_BLOCK) * 4 + DOUBLE_QUANT_FIXED_BYTES + NF4_CODE_BYTES


def _quantized(module: Module) -> bool:
    """bitsandbytes replaces every nn.Linear but the output head; embeddings stay 16-bit."""
    return module.kind == "linear" and not module.name.endswith(("lm_head", "embed_out"))


def estimate_training(base: TrainingBase, options: TrainingOptions) -> TrainingEstimate:
    """Training memory of `base` under `options` (see the module docstring for every rule)."""
    arch = base.architecture
    notes: list[str] = []
    width = options.weight_bytes
    if options.method == "full" and base.quantization:
        raise UsageError(f"full fine-tuning trains 16-bit weights, and this checkpoint is stored quantized "
                         f"({base.quantization})", hint="use method lora (or qlora) on it, or the 16-bit original",
                         hint_options=("method",))
    if options.method == "full":
        trainable = base.parameters
        frozen, frozen_bytes = 0, 0
        matrices = [(m.out_features, m.in_features) for m in base.modules]
        layer_bytes = _largest_layer_params(base) * width
    else:
        from ..model.adapters import lora_layers, trainable_parameters

        config = options.lora_config()
        layers = lora_layers(base.modules, config)
        if not layers:
            raise UsageError(f"no module of the model matches target_modules {options.to_dict()['target_modules']!r}",
                             hint="use module names such as q_proj,v_proj, or all-linear")
        trainable = trainable_parameters(base.modules, config)
        frozen = base.parameters
        matrices = [shape for layer in layers for shape in layer.matrices()]
        if base.quantization:  # LoRA on a pre-quantized checkpoint: its weights stay as stored
            frozen_bytes = base.stored_bytes
            layer_bytes = base.stored_bytes // max(1, arch.num_layers)
            notes.append(f"frozen weights as stored ({base.quantization}), exactly")
        elif options.method == "qlora":
            quantized = [m for m in base.modules if _quantized(m)]
            nf4 = sum(nf4_bytes(m.parameters, options.double_quant) for m in quantized)
            frozen_bytes = nf4 + (base.parameters - sum(m.parameters for m in quantized)) * 2
            layer_bytes = nf4 // max(1, arch.num_layers)
        else:
            frozen_bytes = base.parameters * width
            layer_bytes = _largest_layer_params(base) * width
    gradients = trainable * width
    optimizer = _optimizer_bytes(options, trainable, matrices)
    if options.optimizer == "paged-adamw-8bit":
        notes.append("paged optimizer states live in unified memory: under pressure they move to the CPU")
    return TrainingEstimate(options, trainable, frozen, frozen_bytes, trainable * width, gradients, optimizer,
                            activation_bytes(arch, base.modules, options), layer_bytes, tuple(notes))


def _largest_layer_params(base: TrainingBase) -> int:
    linear = sum(m.parameters for m in base.modules if m.kind == "linear" and not m.name.endswith("lm_head"))
    return linear // max(1, base.architecture.num_layers)


def _optimizer_bytes(options: TrainingOptions, trainable: int, matrices: Sequence[tuple[int, int]]) -> int:
    """Optimizer states (and the fp32 master copy) of `trainable` parameters."""
    master = 4 * trainable if options.mixed_precision else 0
    state = 4 if options.precision == "fp32" or options.mixed_precision else options.weight_bytes
    if options.optimizer == "adamw":
        return master + 2 * state * trainable
    if options.optimizer in ("adamw-8bit", "paged-adamw-8bit"):
        return master + 2 * (trainable + -(-trainable // ADAM_8BIT_BLOCK) * 4)
    if options.optimizer == "adafactor":  # factored second moment: a row and a column per matrix, vectors whole
        in_matrices = sum(rows * cols for rows, cols in matrices)
        factored = sum(rows + cols for rows, cols in matrices) + max(0, trainable - in_matrices)
        return master + state * factored
    return master  # plain SGD keeps no state


def layer_activation_elements(arch: Architecture, modules: Sequence[Module]) -> int:
    """Elements autograd keeps per token for one decoder layer (before ACTIVATION_FACTOR)."""
    hidden = arch.hidden_size
    q = arch.num_attention_heads * arch.head_dim
    kv = arch.num_kv_heads * arch.head_dim
    attention = 2 * hidden + q + 2 * kv + q
    gated = any(m.name.endswith(_GATED_MLP) for m in modules)
    mlp = 2 * hidden + (4 if gated else 2) * mlp_width(arch)
    return attention + mlp


def activation_terms(arch: Architecture, modules: Sequence[Module], options: TrainingOptions) -> tuple[int, int]:
    """(fixed, scaled): activation bytes that do not and that do take ACTIVATION_FACTOR (the part it was fitted on).

    fixed: the fp32 logits, and with checkpointing each layer's kept input; scaled: the tensors autograd keeps
    inside a layer, for every layer (no checkpointing) or the one being recomputed.
    """
    tokens = options.batch * options.seq_len
    inside = tokens * layer_activation_elements(arch, modules) * 2
    logits = tokens * arch.vocab_size * 4
    if options.gradient_checkpointing:
        return logits + tokens * arch.num_layers * arch.hidden_size * 2, inside
    return logits, arch.num_layers * inside


def activation_bytes(arch: Architecture, modules: Sequence[Module], options: TrainingOptions,
                     factor: float | None = None) -> int:
    """Activation peak of one micro-batch on one GPU, fp32 logits included."""
    fixed, scaled = activation_terms(arch, modules, options)
    return fixed + math.ceil((ACTIVATION_FACTOR if factor is None else factor) * scaled)


# --- plans ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainingPlan:
    """GPU type x count that holds the training run, data parallel with the options' ZeRO stage."""

    gpu: str
    count: int
    fits: bool
    budget_bytes: int  # usable memory of one GPU
    per_gpu: TrainingBreakdown
    notes: tuple[str, ...] = field(default=())
    gpu_usd_per_hour: float | None = None  # one GPU's on-demand price, when one is known
    price_label: str = ""  # where the price comes from ("on-demand 2026-05", prices.GIVEN_PRICE)

    @property
    def nodes(self) -> int:
        """Machines of GPUS_PER_NODE GPUs."""
        return -(-self.count // GPUS_PER_NODE)

    @property
    def headroom_bytes(self) -> int:
        """Budget minus the per-GPU total (negative when it does not fit)."""
        return self.budget_bytes - self.per_gpu.total_bytes

    def to_dict(self) -> dict[str, Any]:
        """One JSON `recommendations[i]`, shaped as serving plans are."""
        usd = None if self.gpu_usd_per_hour is None else round(self.count * self.gpu_usd_per_hour, 2)
        return {"gpu": self.gpu, "count": self.count, "nodes": self.nodes, "tp": 1, "pp": 1,
                "per_gpu": self.per_gpu.to_dict(), "headroom_gb": round(self.headroom_bytes / 10**9, 2),
                "fits": self.fits, "usd_per_hour": usd, "price": self.price_label or None, "notes": list(self.notes)}


def plan_training(estimate: TrainingEstimate, gpus: Sequence[tuple[str, int]],
                  counts: Sequence[int] = PLAN_COUNTS,
                  prices: Mapping[str, tuple[float, str]] | None = None) -> list[TrainingPlan]:
    """For each (GPU name, usable bytes), the fewest GPUs that hold the run; best first.

    `prices` (GPU name -> (USD per GPU-hour, where from)) adds each plan's cost per hour.

    Ranked: plans that fit first, then fewest GPUs, then least memory in all (the least left idle).
    Without ZeRO (stage 0) more GPUs do not lower the per-GPU need, so only one GPU is tried.
    """
    tried = counts if estimate.options.zero > 0 else counts[:1]
    plans = []
    for name, usable in gpus:
        plan = None
        for count in tried:
            breakdown = estimate.per_gpu(count)
            plan = TrainingPlan(name, count, breakdown.total_bytes <= usable, usable, breakdown)
            if plan.fits:
                break
        assert plan is not None
        if not plan.fits:
            plan = replace(plan, notes=(f"does not fit on {plan.count} or fewer {name}",))
        if prices and name in prices:
            plan = replace(plan, gpu_usd_per_hour=prices[name][0], price_label=prices[name][1])
        plans.append(plan)
    return sorted(plans, key=lambda p: (not p.fits, p.count, p.count * p.budget_bytes, p.gpu))
