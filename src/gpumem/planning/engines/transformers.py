"""Hugging Face transformers (`generate` on one process): the whole GPU is the budget, the whole prefill
(`concurrency x context` tokens) runs at once, and each sequence's prefill activations sit beside its cache.

- Activations per sequence: `context` tokens of the fitted per-token activations plus the last-position
  logits in fp32.
- Sliding-window layers keep the last `window - 1` tokens once decoding runs (measured: Phi-3, 2,046 of 2,047),
  but not during the prefill: transformers' sliding cache layer (cache_utils.py `DynamicSlidingWindowLayer.update`)
  returns the full prompt's keys/values to attention and stores `full_states[:, :, -window + 1:, :]`, a view that
  keeps the whole prompt-length tensor allocated until the first decode step replaces it. So a prefill holds
  the full-length K/V of every layer; the part beyond the window travels with each sequence as a transient.
  SDPA gets the sliding mask as a boolean mask and runs its memory-efficient kernel, so no S x S scores are held.
- Overhead: CUDA context + torch (measured on an H200, torch 2.11, transformers 5.17); NCCL at TP > 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...model.activations import LOGIT_BYTES, activation_bytes_per_token
from . import Engine, EngineConstants

if TYPE_CHECKING:
    from ...model.architecture import Architecture
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

    def sequence_activations(self, arch: Architecture, options: ServingOptions, tokens: int) -> int:
        """Prefill activations one sequence of `tokens` adds, per GPU, with the sliding layers' full-length K/V
        beyond their window (alive until the first decode step)."""
        from ..memory import kv_bytes_per_layer_token

        per_sequence = tokens * activation_bytes_per_token(arch, options.tp) + arch.vocab_size * LOGIT_BYTES
        if arch.sliding_layers and arch.sliding_window:
            held = self.sliding_window_tokens(arch.sliding_window, tokens, options)
            per_sequence += arch.sliding_layers * kv_bytes_per_layer_token(arch, options.kv_bytes, options.tp) * \
                (tokens - held)
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
