"""vLLM: what `vllm serve` does with a GPU, per version, read from vLLM's released sources and checked against
the startup logs people posted (fixtures/measurements/vllm-public-logs.jsonl fits the constants,
vllm-heldout-logs.jsonl checks them; docs/accuracy.md has the table).

Source paths below are inside the released wheels (`pip download vllm==X --no-deps`).

- Budget: `requested_memory = total x gpu_memory_utilization`, total = `torch.cuda.mem_get_info()[1]` (the
  CUDA-visible total, not nvidia-smi's): v1/worker/gpu_worker.py `request_memory` / `init_device`.
- KV pool ("Available KV cache memory"): `requested_memory - non_kv_cache_memory` where non_kv = loaded weights
  + torch peak increase of the profile run + non-torch increase (gpu_worker.py `determine_available_memory`,
  0.10.1.1 L255-299, 0.19.0 L364-421). The baseline snapshot is taken after CUDA init, so the CUDA context is
  neither charged nor budgeted: the process holds it on top of the budget.
- CUDA graphs are captured after the pool is sized (`compile_or_warm_up_model`), so they sit on top of the
  budget too. 0.18/0.19 can estimate them first (`profile_cudagraph_memory`) but only subtract them from the
  pool under VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 (envs.py default "0"; the log says it becomes the default
  later). Logged captures: 0.13-1.88 GiB. From 0.20.0 envs.py defaults it to "1" (0.20.0 and 0.21.0 wheels; their
  log line says "CUDA graph memory profiling is enabled (default since v0.21.0)"): the estimate comes out of the
  pool (gpu_worker.py `available_kv_cache_memory_bytes = requested - non_kv - cudagraph_memory_estimate_applied`;
  logged estimates 0.17-0.36 GiB).
- Profile run: `_dummy_run(max_num_tokens)` then `_dummy_sampler_run` over `min(max_num_tokens, max_num_seqs)`
  last positions (v1/worker/gpu_model_runner.py `profile_run`). The peak is the larger of the forward's
  transient activations and the sampler's fp32 logits copies over `max_num_seqs x vocab`:
  * 0.10-0.16 sort top-k/top-p (v1/sample/ops/topk_topp_sampler.py `apply_top_k_top_p`: `logits.sort`, fp32
    values + int64 indices, softmax, scatter): 9.7 copies, fitted on the llm-d 0.11 H100 rows (Qwen3-0.6B 5.56,
    Qwen3-32B 5.64, gpt-oss 7.38, Llama-3.3-70B 4.84 GiB logged). FlashInfer's sampler, which 0.10 and 0.11.0 use when
    flashinfer is installed (it is in the Docker images; pip's `vllm[flashinfer]` extra): 2 copies (fitted on the
    4 x A100 gpt-oss-120b 0.10.1.1 log); from 0.11.1 only on VLLM_USE_FLASHINFER_SAMPLER=1 (0.11.2
    topk_topp_sampler.py L34), as in 0.13+.
  * 0.17+ a Triton top-k/top-p kernel for batches >= 8 (`apply_top_k_top_p_triton`): 3.86 copies (llm-d-planner's
    0.19 Llama-3.1-8B rows: 1.89 GiB at TP 1, 2 and 4 alike, as the logits are gathered whole on every rank).
  * 0.21: FlashInfer's sampler again by default (envs.py VLLM_USE_FLASHINFER_SAMPLER defaults to True, the wheel
    requires flashinfer-python 0.6.8; topk_topp_sampler.py uses it when the GPU's capability is supported): 2 copies.
  The forward's share is the fitted per-token figure (activations.py) x 0.93 (the 0.6.4 RTX 3090 logs: 2.07 and
  2.99 GiB at 20,000 and 29,000 tokens).
- Defaults per GPU (engine/arg_utils.py `_set_default_args`, identical in 0.10.1.1-0.19.0 for `vllm serve`):
  `max_num_batched_tokens` 8192 and `max_num_seqs` 1024 when the device has >= 70 GiB and is not an A100, else
  2048 and 256. V0 (0.6-0.8) without chunked prefill profiles a whole `max_model_len` batch (max(len, 2048)).
- Non-torch memory: 0.13 GiB at TP 1 (0.11 logs 0.13-0.14, 0.19 0.25); NCCL / custom all-reduce buffers at
  TP >= 2: 0.54 GiB in 0.11 (Qwen3-32B, Llama-3.3-70B TP 2), 2.1 GiB in 0.19 (Llama-3.1-8B TP 2: 2.07, TP 4:
  2.13). Versions between take the value of the last fitted version before them.
- Sliding-window layers: from 0.10 the hybrid KV-cache manager is on by default on CUDA
  (config `disable_hybrid_kv_cache_manager`, set only for KV transfer / events / chunked local attention) and a
  sliding layer holds `min(window - 1 + max_num_batched_tokens, max_model_len)` tokens plus one block
  (v1/kv_cache_interface.py `SlidingWindowSpec.max_memory_usage_bytes`). Before 0.10 (V0, and V1 in 0.8-0.9
  via `unify_hybrid_kv_cache_specs`) a model mixing sliding and full layers gets full-length pages everywhere.
- "GPU KV cache size": blocks of 16 tokens; with sliding and full groups the pool is split evenly into groups
  of equal layer count (v1/core/kv_cache_utils.py: `num_tokens = num_blocks // len(groups) * block_size`);
  "Maximum concurrency" = blocks / blocks one max_model_len request needs (`get_max_concurrency_for_kv_cache_config`).
- Loaded weights: dtype auto loads an F32 checkpoint in 16 bit (config/model.py `_get_and_verify_dtype`);
  DeepSeek-V3/R1's multi-token-prediction layer (`model.layers.{num_hidden_layers}`) is skipped by the main
  model's loader (model_executor/models/deepseek_v2.py `get_spec_layer_idx_from_weight_name`); MXFP4 (gpt-oss)
  experts are padded for their kernels (layers/quantization/mxfp4.py `create_weights`: Marlin pads the hidden
  size to 256 and the per-rank intermediate to 128, Hopper's Triton path the hidden size to 256): gpt-oss-120b
  loads 64.38 GiB on H100 in 0.11 and 65.97 GiB in 0.10.1 (Marlin) from 60.75 GiB stored.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ...model.activations import LOGIT_BYTES, activation_bytes_per_token
from ...model.types import ModelSummary
from . import MIB, Engine, EngineConstants, GpuTarget, LoraSlots

if TYPE_CHECKING:
    from ...model.adapters import LoraServing, Module
    from ...model.architecture import Architecture
    from ..memory import ServingOptions

GIB = 2**30
LARGE_GPU_BYTES = 70 * GIB  # arg_utils.py: `device_memory >= 70 * GiB_bytes and "a100" not in device_name`
BLOCK_TOKENS = 16  # cache_config.block_size default on CUDA
FORWARD_SHARE = 0.93  # vLLM's fused forward holds 93% of the eager per-token figure (0.6.4 RTX 3090 logs)


@dataclass(frozen=True, slots=True)
class VllmConstants(EngineConstants):
    """One vLLM version's defaults and fixed costs (setting names as `vllm serve` spells them)."""

    gpu_memory_utilization: float = 0.9
    v1: bool = True  # V1 engine: the profile run prefills max_num_batched_tokens (chunked prefill always on)
    large_gpu_max_num_batched_tokens: int = 8192
    large_gpu_max_num_seqs: int = 1024
    small_gpu_max_num_batched_tokens: int = 2048
    small_gpu_max_num_seqs: int = 256
    sampler_logit_copies: float = 9.7  # fp32 [max_num_seqs, vocab] copies at the sampler's peak
    flashinfer_sampler: bool = False  # 0.10/0.11.0 use it when flashinfer is installed (Docker images), not on pip
    flashinfer_logit_copies: float = 2.0
    non_torch_bytes: int = int(0.13 * GIB)  # cuBLAS workspaces etc., TP 1
    non_torch_tp_bytes: int = int(0.54 * GIB)  # TP >= 2: NCCL and custom all-reduce buffers
    cuda_graph_bytes: int = 512 * MIB  # captured on top of the budget (0.13-1.88 GiB logged)
    hybrid_kv_allocator: bool = True  # sliding layers hold window + one chunk, not the whole context
    cuda_graphs_in_budget: bool = False  # 0.20+: the profiled CUDA-graph estimate comes out of the KV pool
    mxfp4_marlin_on_hopper: bool = False  # 0.10 and 0.19: Hopper runs MXFP4 through Marlin too (0.10 log: "Marlin kernel")


@dataclass(frozen=True)
class Vllm(Engine[VllmConstants]):
    """vLLM's memory behaviour: a fixed budget fraction, a profiled activation peak, a paged KV pool."""

    budget_label = "memory budget"  # usable x --gpu-memory-utilization
    expert_parallel_note = "MoE: vLLM can place whole experts per GPU with --enable-expert-parallel (same memory)"
    across_nodes = "vLLM runs tensor parallel inside a node and pipeline parallel across nodes"
    start_across_nodes = "start a Ray cluster on the nodes, then the command on node 0"
    node_commands_title = "Ray on node 0, then on each other node (NODE0_IP: node 0's address), then the server on node 0"

    def lora_weights(self, lora: LoraServing, tp: int) -> int:
        """vLLM preallocates its LoRA slots (`--max-loras` x `--max-lora-rank` per linear), whatever the adapters."""
        return self.lora_slots(lora, tp).slot_bytes_per_gpu

    def lora_slots(self, lora: LoraServing, tp: int) -> LoraSlots:
        return lora_slots(lora.modules, lora.ranks, tp, lora.dtype_bytes)

    def quantize_on_load(self, bits: float) -> str | None:
        mode = {8.0: "fp8", 4.0: "bitsandbytes"}.get(bits)  # vLLM's documented on-load modes
        return f"let vLLM quantize it on load (add `--quantization {mode}`)" if mode else None

    def lora_note(self) -> str:
        return ("vLLM gives every linear layer --max-loras slots of --max-lora-rank, whatever the adapters target: "
                "the weights include those slots")

    def context_too_long_note(self, context: int, kv_tokens: int, largest_context: int) -> str:
        """vLLM's refusal in its own words, and what would fit."""
        return (f"The model's max seq len ({context}) is larger than the maximum number of tokens that can be stored "
                f"in KV cache ({kv_tokens}). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` "
                f"when initializing the engine: the largest context that fits is {largest_context:,} tokens")

    def gpu_class(self, gpu: GpuTarget) -> Hashable:
        """The scheduler's defaults by the GPU's size class, and the MXFP4 kernels' padding by its generation."""
        return _large_gpu(gpu), _mxfp4_generation(gpu)

    def setting(self, options: ServingOptions, name: str) -> Any:
        """A setting: the user's value, else this version's default (per GPU class for the scheduler's two)."""
        value = getattr(options, name, None)
        if value is not None:
            return value
        c = self.constants(options)
        if name in ("max_num_batched_tokens", "max_num_seqs"):
            size = "large" if _large_gpu(options.gpu) else "small"
            if name == "max_num_batched_tokens" and not c.v1:  # V0 without chunked prefill: one whole sequence
                return max(options.context, c.small_gpu_max_num_batched_tokens)
            return getattr(c, f"{size}_gpu_{name}")
        return getattr(c, name)

    def budget(self, usable_bytes: int, options: ServingOptions) -> int:
        """total x gpu_memory_utilization."""
        return int(usable_bytes * float(self.setting(options, "gpu_memory_utilization")))

    def non_torch(self, options: ServingOptions) -> int:
        """Non-torch memory the profile run measures (inside the budget)."""
        c = self.constants(options)
        return c.non_torch_tp_bytes if options.tp > 1 else c.non_torch_bytes

    def cuda_graphs(self, options: ServingOptions) -> int:
        """CUDA-graph memory captured after the pool is sized (0 with --enforce-eager)."""
        return 0 if options.enforce_eager else self.constants(options).cuda_graph_bytes

    def overhead(self, options: ServingOptions) -> int:
        """CUDA context, non-torch memory and CUDA graphs."""
        c = self.constants(options)
        return c.cuda_context_bytes + self.non_torch(options) + self.cuda_graphs(options)

    def overhead_outside_budget(self, options: ServingOptions) -> int:
        """The CUDA context (before vLLM's baseline snapshot) and, before 0.20, the CUDA graphs (captured after the
        pool is sized)."""
        c = self.constants(options)
        return c.cuda_context_bytes + (0 if c.cuda_graphs_in_budget else self.cuda_graphs(options))

    def loaded_summary(self, summary: ModelSummary, arch: Architecture | None,
                       bits: float | None = None) -> ModelSummary:
        """The checkpoint as vLLM loads it: dtype auto loads F32 weights in 16 bit, and the tensors of decoder
        layers past the last one (DeepSeek-V3/R1's multi-token-prediction layer, `num_nextn_predict_layers`)
        are skipped. A what-if width weighs the checkpoint as stored (the seed's rule)."""
        if bits is not None or not summary.classes:
            return summary
        last = arch.num_layers if arch is not None else None
        loaded = []
        for c in summary.classes:
            if last is not None and c.template.startswith(("model.layers.#", "layers.#")) and c.sites:
                kept = tuple(site for site in c.sites if int(site.split(".")[0]) < last)
                if len(kept) < len(c.sites):
                    if not kept:
                        continue
                    c = replace(c, sites=kept, count=len(kept))
            if c.dtype == "F32" and c.role != "buffer":
                c = replace(c, dtype="BF16", nbytes=c.nbytes // 2)
            loaded.append(c)
        return ModelSummary(summary.count, tuple(loaded))

    def loaded_weights(self, loaded: ModelSummary, arch: Architecture | None, options: ServingOptions,
                       bits: float | None = None) -> int:
        """`loaded_summary`'s weights on one GPU, with MXFP4 experts padded for their kernel (`mxfp4_padding`)."""
        from ..memory import weights_per_gpu

        padding = self.mxfp4_padding(loaded, arch, options) if bits is None else 1.0
        if padding == 1.0:
            return weights_per_gpu(loaded, options.tp, bits)
        padded = tuple(replace(c, nbytes=int(c.nbytes * padding)) if c.role == "routed_expert" else c
                       for c in loaded.classes)
        return weights_per_gpu(ModelSummary(loaded.count, padded), options.tp)

    def mxfp4_padding(self, summary: ModelSummary, arch: Architecture | None, options: ServingOptions) -> float:
        """Loaded / stored bytes of MXFP4 experts (layers/quantization/mxfp4.py `create_weights`): Marlin, on GPUs
        without FP4 (and Hopper in 0.10 and 0.19), pads hidden to 256 and the per-rank intermediate to 128; Hopper's Triton
        kernels pad hidden to 256; Blackwell's pad both to 256."""
        quant = summary.count.quantization
        if arch is None or quant is None or quant.method != "mxfp4":
            return 1.0
        hidden, inter = arch.hidden_size, (arch.moe_intermediate_size or arch.intermediate_size) // options.tp
        generation = _mxfp4_generation(options.gpu)
        if generation == "blackwell":
            return _round_up(hidden, 256) * _round_up(inter, 256) / (hidden * inter)
        if generation == "hopper" and not self.constants(options).mxfp4_marlin_on_hopper:
            return _round_up(hidden, 256) / hidden
        return _round_up(hidden, 256) * _round_up(inter, 128) / (hidden * inter)

    def sampler_bytes(self, arch: Architecture, options: ServingOptions) -> int:
        """The dummy sampler pass: fp32 logits copies over max_num_seqs x vocab."""
        c = self.constants(options)
        flashinfer = c.flashinfer_sampler if options.flashinfer_sampler is None else options.flashinfer_sampler
        copies = c.flashinfer_logit_copies if flashinfer else c.sampler_logit_copies
        seqs = min(int(self.setting(options, "max_num_seqs")), int(self.setting(options, "max_num_batched_tokens")))
        return int(copies * seqs * arch.vocab_size * LOGIT_BYTES)

    def activation_peak(self, arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
        """The profile run's torch peak: the larger of the forward pass and the sampler pass."""
        tokens = int(self.setting(options, "max_num_batched_tokens"))
        forward = int(tokens * activation_bytes_per_token(arch, options.tp) * FORWARD_SHARE)
        return max(forward, self.sampler_bytes(arch, options)), 0

    def sliding_window_tokens(self, window: int, context: int, options: ServingOptions) -> int:
        """Hybrid allocator: the window plus one scheduled chunk and one block; before it, the whole context."""
        if not self.constants(options).hybrid_kv_allocator:
            return context
        held = min(window - 1 + int(self.setting(options, "max_num_batched_tokens")), context)
        return min((math.ceil(held / BLOCK_TOKENS) + 1) * BLOCK_TOKENS, context)

    def kv_cache_tokens(self, pool_bytes: int, bytes_per_token: int, groups: int = 1) -> int:
        """"GPU KV cache size: N tokens": whole 16-token blocks of every layer, split evenly over layer groups."""
        if bytes_per_token <= 0 or pool_bytes <= 0:
            return 0
        blocks = pool_bytes // (bytes_per_token * BLOCK_TOKENS)
        return blocks // groups * BLOCK_TOKENS

    def launch_across_nodes(self, command: str, options: ServingOptions, nodes: int) -> tuple[str, tuple[str, ...]]:
        """A Ray cluster first (node 0 the head, then each other node joins it), then `command` on node 0
        (docs.vllm.ai, distributed serving: multi-node with Ray)."""
        return command, ("ray start --head --port=6379", *("ray start --address=NODE0_IP:6379" for _ in range(1, nodes)))

    def command(self, repo_id: str, options: ServingOptions, gpus: int) -> str | None:
        """`vllm serve REPO --tensor-parallel-size N [--pipeline-parallel-size M] --max-model-len C
        --gpu-memory-utilization U [--max-num-batched-tokens B] [--max-num-seqs S] [--enforce-eager]
        [--kv-cache-dtype fp8] [LoRA flags]` on `gpus` = TP x PP GPUs (pipeline stages on a Ray cluster)."""
        parts = ["vllm serve", shlex.quote(repo_id), f"--tensor-parallel-size {options.tp}"]
        if options.pp > 1:
            parts.append(f"--pipeline-parallel-size {options.pp}")
        parts.append(f"--max-model-len {options.context}")
        parts.append(f"--gpu-memory-utilization {self.setting(options, 'gpu_memory_utilization'):g}")
        for name in ("max_num_batched_tokens", "max_num_seqs"):
            value = getattr(options, name)
            if value is not None:
                parts.append(f"--{name.replace('_', '-')} {value}")
        if options.enforce_eager:
            parts.append("--enforce-eager")
        if options.kv_dtype == "fp8":
            parts.append("--kv-cache-dtype fp8")
        if options.lora:  # PEFT adapters served on the model: --enable-lora --lora-modules NAME=REPO and the slots
            slots = self.lora_slots(options.lora, options.tp)
            parts += [shlex.quote(flag) for flag in lora_flags(slots, adapter_names(options.lora.repos))]
        if options.pp > 1:
            parts.append("--distributed-executor-backend ray")
        return " ".join(parts)

def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _large_gpu(gpu: GpuTarget | None) -> bool:
    """vLLM's "H100-class" test; without a GPU the breakdown assumes one (the default in JSON notes)."""
    if gpu is None:
        return True
    return gpu.total_bytes >= LARGE_GPU_BYTES and "a100" not in gpu.name.lower()


def _mxfp4_generation(gpu: GpuTarget | None) -> str:
    """Which MXFP4 kernels vLLM runs on the GPU: "blackwell", "hopper" or "other" (Marlin); none named: an H100."""
    name = gpu.name.lower() if gpu else "h100"
    if any(k in name for k in ("b200", "b300", "gb200", "rtx 50", "5090", "5080", "pro 6000")):
        return "blackwell"
    if any(k in name for k in ("h100", "h200", "h20", "h800", "gh200")):
        return "hopper"
    return "other"


_V0_6 = VllmConstants(version="0.6", v1=False, large_gpu_max_num_seqs=256, non_torch_bytes=int(0.3 * GIB),
                      non_torch_tp_bytes=int(0.3 * GIB), hybrid_kv_allocator=False)
_V0_10 = VllmConstants(version="0.10", mxfp4_marlin_on_hopper=True)
_V0_11 = replace(_V0_10, version="0.11", mxfp4_marlin_on_hopper=False)
_V0_13 = replace(_V0_11, version="0.13")
_V0_17 = replace(_V0_13, version="0.17", sampler_logit_copies=3.86)
# 0.19 on H100 loads gpt-oss-20b at 13.64 / 7.01 GiB per rank (TP 1 / 2, llm-d-planner logs): Marlin's padding
# (hidden to 256, per-rank intermediate to 128: 13.63 / 7.04); 0.19's Triton backend pads the intermediate to 64
# only (model_executor/layers/fused_moe/oracle/mxfp4.py `mxfp4_round_up_hidden_size_and_intermediate_size`): 12.9.
_V0_19 = replace(_V0_17, version="0.19", non_torch_bytes=int(0.25 * GIB), non_torch_tp_bytes=int(2.1 * GIB),
                 mxfp4_marlin_on_hopper=True)
_V0_20 = replace(_V0_19, version="0.20", cuda_graphs_in_budget=True)
_V0_21 = replace(_V0_20, version="0.21", flashinfer_sampler=True)

# Newest first: the first is the default. Minor versions without their own entry take the closest below.
VLLM = Vllm(
    name="vllm", label="vLLM",
    versions={
        "0.21": _V0_21,
        "0.20": _V0_20,
        "0.19": _V0_19,
        "0.18": replace(_V0_17, version="0.18"),
        "0.17": _V0_17,
        "0.16": replace(_V0_13, version="0.16"),
        "0.15": replace(_V0_13, version="0.15"),
        "0.14": replace(_V0_13, version="0.14"),
        "0.13": _V0_13,
        "0.12": replace(_V0_11, version="0.12"),
        "0.11": _V0_11,
        "0.10": _V0_10,
        "0.9": replace(_V0_13, version="0.9", hybrid_kv_allocator=False),
        "0.8": replace(_V0_13, version="0.8", hybrid_kv_allocator=False),
        "0.7": replace(_V0_6, version="0.7"),
        "0.6": _V0_6,
    },
    vendors=frozenset({"NVIDIA", "AMD", "Intel"}),  # Intel Gaudi through the vllm-gaudi plugin
    formats=frozenset({"safetensors", "pytorch-bin", "gguf"}),  # GGUF: vLLM's single-file loader
    paged_kv=True,
)



# --- LoRA: what vLLM preallocates to serve adapters ----------------------------------------------------
# With `--enable-lora` vLLM wraps every linear layer of the model (lora/utils.py `get_supported_lora_modules`:
# "In vLLM, all linear layers support LoRA") and gives each `max_loras` slots of rank `max_lora_rank` in the
# model's dtype (lora/layers/base_linear.py `create_lora_weights`): column-parallel layers hold A (rank, in) and
# B (out / tp, rank) per GPU, row-parallel ones A (rank, in / tp) and B (out, rank). `--max-cpu-loras` sizes a
# host-memory cache only.

MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM accepts (config/lora.py `MaxLoRARanks`)
DEFAULT_MAX_LORA_RANK = 16


def max_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds `rank`; AdapterError above 512."""
    from ...model.adapters import AdapterError  # the adapter reader loads only when adapters are served

    for allowed in MAX_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise AdapterError(f"LoRA rank {rank} is above vLLM's largest --max-lora-rank ({MAX_LORA_RANKS[-1]})")


def lora_slots(modules: Sequence[Module], ranks: Sequence[int], tp: int = 1, dtype_bytes: int = 2) -> LoraSlots:
    """vLLM's LoRA slots for adapters of these ranks on a base with these modules, per GPU at `tp`: one slot per
    adapter (--max-loras), of the smallest rank vLLM accepts that holds the largest (--max-lora-rank)."""
    from ...model.adapters import is_output_head  # the adapter reader loads only when adapters are served

    max_loras = max(1, len(ranks))
    rank = max_lora_rank(max(ranks, default=DEFAULT_MAX_LORA_RANK))
    per_slot = 0
    wrapped = 0
    for module in modules:
        if module.kind != "linear" or is_output_head(module.name):
            continue
        in_gpu, out_gpu = module.in_features, module.out_features
        if module.split == "column":
            out_gpu = -(-out_gpu // tp)
        elif module.split == "row":
            in_gpu = -(-in_gpu // tp)
        per_slot += rank * (in_gpu + out_gpu)
        wrapped += 1
    return LoraSlots(max_loras, rank, per_slot * max_loras * dtype_bytes, wrapped)


def adapter_names(repos: Sequence[str]) -> list[tuple[str, str]]:
    """(name, repo) per adapter for --lora-modules: the repo's last path part, numbered when two clash."""
    names: list[tuple[str, str]] = []
    for repo in repos:
        name = re.sub(r"[^A-Za-z0-9._-]", "-", repo.rstrip("/").rpartition("/")[2]) or "adapter"
        taken = {n for n, _ in names}
        unique, k = name, 2
        while unique in taken:
            unique, k = f"{name}-{k}", k + 1
        names.append((unique, repo))
    return names


def lora_flags(slots: LoraSlots, adapters: Sequence[tuple[str, str]]) -> list[str]:
    """vllm serve flags: --enable-lora --lora-modules NAME=REPO ... --max-loras N --max-lora-rank R."""
    flags = ["--enable-lora", "--lora-modules", *(f"{name}={repo}" for name, repo in adapters)]
    return flags + ["--max-loras", str(slots.max_loras), "--max-lora-rank", str(slots.max_lora_rank)]
