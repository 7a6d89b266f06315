"""Pure: the transient activation bytes a prefill token holds per GPU (the model's side; engines decide how many
tokens they run at once and what else they hold).

Fitted on the H200 measurements (prefill_peak_over_weights - kv over 9 rows, Llama-2-7B, Llama-3-8B,
Mistral-7B, 4k-64k tokens): a token holds three intermediate-size tensors of the MLP and four hidden-size
tensors, bf16 — within 0.1% of 98.8 KB/token (Llama-2-7B) and 118.8 KB/token (Llama-3-8B). MoE layers use
`(top_k + shared) * moe_intermediate` as the intermediate size (held-out Mixtral-8x7B: within 1.3%).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .architecture import Architecture

ACTIVATION_BYTES = 2  # activations are bf16/fp16 whatever the weights' storage
LOGIT_BYTES = 4  # logits are upcast to fp32


def mlp_width(arch: Architecture) -> int:
    """Intermediate width one token occupies in its widest feed-forward block."""
    if not arch.is_moe:
        return arch.intermediate_size
    expert = arch.moe_intermediate_size or arch.intermediate_size
    routed = (arch.experts_per_token + arch.num_shared_experts) * expert
    return max(routed, arch.intermediate_size if arch.first_dense_layers else 0)


def activation_bytes_per_token(arch: Architecture, tp: int = 1) -> int:
    """Transient prefill activation bytes per token per GPU (fit: 3 x I / tp + 4 x H, bf16)."""
    return ACTIVATION_BYTES * (3 * mlp_width(arch) // tp + 4 * arch.hidden_size)
