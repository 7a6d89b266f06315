"""Hugging Face transformers (`generate` on one process): the whole GPU is the budget, the whole prefill
(`concurrency x context` tokens) runs at once, and each sequence's prefill activations sit beside its cache.

- Activations per sequence: `context` tokens of the fitted per-token activations plus the last-position
  logits in fp32. A sliding-window mask that cuts the prompt sends SDPA to its math path, which holds one
  layer's `heads x S x S` bf16 scores plus q/k/v per sequence (held-out Phi-3-mini: within 1.1%).
- Sliding-window layers keep the last `window - 1` tokens (measured: Phi-3, 2,046 of 2,047).
- Overhead: CUDA context + torch (measured on an H200, torch 2.11, transformers 5.17); NCCL at TP > 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..activations import ACTIVATION_BYTES, LOGIT_BYTES, activation_bytes_per_token
from . import Engine, EngineConstants

if TYPE_CHECKING:
    from ..architecture import Architecture
    from ..memory import ServingOptions

# transformers has no scheduler cap: a model without KV cache (an encoder) is bounded as vLLM's default would be.
_SEQUENCE_CAP = 256


@dataclass(frozen=True, slots=True)
class TransformersConstants(EngineConstants):
    """One transformers version's fixed costs (nothing beyond the CUDA context so far)."""


@dataclass(frozen=True)
class Transformers(Engine[TransformersConstants]):
    """transformers' memory behaviour: whole-prompt prefill, activations per sequence, no budget fraction."""

    def activation_peak(self, arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
        """Every sequence's prefill at once: concurrency x one sequence's activations."""
        per_sequence = self.sequence_activations(arch, options, context)
        return options.concurrency * per_sequence, per_sequence

    @staticmethod
    def sequence_activations(arch: Architecture, options: ServingOptions, tokens: int) -> int:
        """Prefill activations one sequence of `tokens` adds, per GPU."""
        per_sequence = tokens * activation_bytes_per_token(arch, options.tp) + arch.vocab_size * LOGIT_BYTES
        if arch.sliding_layers and arch.sliding_window and arch.sliding_window - 1 < tokens:
            # A sliding-window mask sends SDPA down its math path, which holds one layer's S x S bf16 scores
            # beside q/k/v (measured on Phi-3-mini: 1.19 GB at 1 x 4096, 9.42 GB at 8 x 4096 over the cache).
            heads = arch.num_attention_heads // options.tp
            qkv = (heads + 2 * max(1, arch.num_kv_heads // options.tp)) * arch.head_dim * ACTIVATION_BYTES
            per_sequence = max(per_sequence, heads * tokens * tokens * ACTIVATION_BYTES + tokens * qkv)
        return per_sequence

    def sliding_window_tokens(self, window: int, context: int, options: ServingOptions) -> int:
        """The last window - 1 tokens."""
        return min(context, window - 1)

    def max_sequences(self, options: ServingOptions) -> int:
        """No cap of its own (see _SEQUENCE_CAP)."""
        return options.max_num_seqs if options.max_num_seqs is not None else _SEQUENCE_CAP


TRANSFORMERS = Transformers(
    name="transformers", label="transformers",
    versions={"5.17": TransformersConstants(version="5.17")},
    vendors=frozenset({"NVIDIA", "AMD", "Intel", "Apple"}),
    formats=frozenset({"safetensors", "pytorch-bin", "gguf"}),  # GGUF is dequantized on load
)
