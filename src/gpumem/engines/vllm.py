"""vLLM: budget = usable memory x gpu_memory_utilization; the KV pool is what the budget leaves after weights,
the profile run's activation peak and non-torch memory.

- Activation peak: the profile run prefills `max_num_batched_tokens` tokens plus a sampler pass over
  `max_num_seqs` logits (3 fp32 copies), which reproduces the 1.26 GiB "activation peak" vLLM logs for
  Meta-Llama-3-8B (vllm PR #10511, Nov 2024). Concurrency adds nothing: the pool holds the sequences.
- Overhead: CUDA context + torch, non-torch memory (cuBLAS workspaces, 200 MiB as vLLM logs it) and CUDA
  graphs (512 MiB; 0.1-1.3 GiB in practice); TP > 1 adds NCCL buffers.
- Sliding-window layers: vLLM allocates the window plus one scheduled chunk (`window - 1 +
  max_num_batched_tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..activations import LOGIT_BYTES, activation_bytes_per_token
from . import MIB, Engine, EngineConstants

if TYPE_CHECKING:
    from ..architecture import Architecture
    from ..memory import ServingOptions


@dataclass(frozen=True, slots=True)
class VllmConstants(EngineConstants):
    """One vLLM version's defaults and fixed costs (setting names as `vllm serve` spells them)."""

    gpu_memory_utilization: float = 0.9
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    non_torch_bytes: int = 200 * MIB
    cuda_graph_bytes: int = 512 * MIB
    sampler_logit_copies: int = 3


@dataclass(frozen=True)
class Vllm(Engine[VllmConstants]):
    """vLLM's memory behaviour: a fixed budget fraction, a profiled activation peak, a paged KV pool."""

    def budget(self, usable_bytes: int, options: ServingOptions) -> int:
        """usable x gpu_memory_utilization."""
        return int(usable_bytes * self.setting(options, "gpu_memory_utilization"))

    def overhead(self, options: ServingOptions) -> int:
        """CUDA context, non-torch memory and CUDA graphs (+ NCCL at TP > 1)."""
        c = self.constants(options)
        return Engine.overhead(self, options) + c.non_torch_bytes + c.cuda_graph_bytes

    def activation_peak(self, arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
        """The profile run: max_num_batched_tokens tokens plus the sampler over max_num_seqs logits."""
        c = self.constants(options)
        sampler = c.sampler_logit_copies * self.setting(options, "max_num_seqs") * arch.vocab_size * LOGIT_BYTES
        tokens = self.setting(options, "max_num_batched_tokens")
        return tokens * activation_bytes_per_token(arch, options.tp) + sampler, 0

    def sliding_window_tokens(self, window: int, context: int, options: ServingOptions) -> int:
        """The window plus one scheduled chunk."""
        return min(context, window - 1 + self.setting(options, "max_num_batched_tokens"))


# Today's single modelled version: the constants above, sized on vLLM 0.6-era logs (PR #10511).
VLLM = Vllm(
    name="vllm", label="vLLM",
    versions={"0.6": VllmConstants(version="0.6")},
    vendors=frozenset({"NVIDIA", "AMD"}),
    formats=frozenset({"safetensors", "pytorch-bin", "gguf"}),  # GGUF: vLLM's single-file loader
)
