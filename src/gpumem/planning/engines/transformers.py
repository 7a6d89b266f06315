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
- Model code: activations.py's per-token figure (3 intermediate + 4 hidden tensors) is what a Llama-style
  decoder block holds at its peak. A model type whose modeling code holds more says so in `BLOCK_HOLDS`.
- Loaded weights as torch's caching allocator holds them (c10/cuda/CUDACachingAllocator.cpp): a tensor of
  10 MiB or more gets its own segment rounded up to 2 MiB, and when the rest of the segment is 1 MiB or less the
  allocator does not split it, so the whole segment counts as allocated (Qwen2.5-7B: 28 x 3 MLP matrices of
  129.5 MiB in 130 MiB segments, +43 MiB measured). Tensors of 1-10 MiB share 20 MiB segments and can lose up to
  1 MiB each depending on construction order (GPT-2: 5.75 MiB measured); that packing is not modelled.
- Overhead: CUDA context + torch (measured on an H200, torch 2.11, transformers 5.17); the cuBLAS and cuBLASLt
  workspaces torch allocates at the first matmul and keeps for the life of the process; NCCL at TP > 1.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...model.activations import ACTIVATION_BYTES, LOGIT_BYTES, activation_bytes_per_token, mlp_width
from . import MIB, Engine, EngineConstants, GpuTarget

if TYPE_CHECKING:
    from ...model.architecture import Architecture
    from ...model.types import ModelSummary
    from ..memory import ServingOptions

# transformers has no scheduler cap: a model without KV cache (an encoder) is bounded as vLLM's default would be.
_SEQUENCE_CAP = 256


# torch's caching allocator (c10/cuda/CUDACachingAllocator.cpp): kMinBlockSize, kMinLargeAlloc, kRoundLarge, and
# kSmallSize, the largest remainder it leaves unsplit inside a large block.
_BLOCK_ROUND = 512
_OWN_SEGMENT = 10 * MIB
_SEGMENT_ROUND = 2 * MIB
_UNSPLIT_REMAINDER = 1 * MIB


@dataclass(frozen=True, slots=True)
class BlockHold:
    """What a model type's transformers code holds at the prefill peak beyond a Llama-style decoder block."""

    intermediate: int = 0  # more intermediate-width tensors per token
    hidden: int = 0  # more hidden-width tensors per token
    position_table: bool = False  # learned absolute positions looked up once per forward, shape (1, S, hidden)


# Read from transformers 5.17's models/<type>/modeling_<type>.py.
BLOCK_HOLDS = {
    # GPT-2: the MLP's NewGELUActivation (activations.py) is an unfused tanh formula, so c_fc's output, 0.5 * x and
    # two temporaries are alive at once (4 intermediate tensors, not a gated MLP's 3); GPT2Block.forward keeps
    # `attn_output` in a local through the MLP (a 5th hidden tensor); GPT2Model.forward keeps
    # `position_embeds = self.wpe(position_ids)`, one (1, S, hidden) tensor for the whole batch. Measured on the
    # H200: 265,822,208 B over the cache at 8 x 1024 tokens; this gives 265,814,016.
    "gpt2": BlockHold(intermediate=1, hidden=1, position_table=True),
}


@dataclass(frozen=True, slots=True)
class TransformersConstants(EngineConstants):
    """One transformers version's fixed costs beyond the CUDA context."""

    # torch's default cuBLAS workspace on sm90 (H100/H200) plus the cuBLASLt one (aten/src/ATen/cuda/
    # CublasHandlePool.cpp: 4096 * 8 KiB "32MiB for Hopper", CUBLASLT_WORKSPACE_SIZE 1024 KiB), allocated through
    # the caching allocator at the first matmul and never freed. Measured: 33.0 MiB more allocated before Phi-3's
    # and Mixtral's build than the weights (the workspaces of the models measured before them). Other GPUs use
    # 8.125 + 1 MiB; the Hopper figure is kept for all (24 MiB more).
    blas_workspace_bytes: int = 33 * MIB


@dataclass(frozen=True)
class Transformers(Engine[TransformersConstants]):
    """transformers' memory behaviour: whole-prompt prefill, activations per sequence, no budget fraction."""

    def gpu_class(self, gpu: GpuTarget) -> Hashable:
        """None: nothing transformers holds depends on the GPU."""
        return None

    def overhead(self, options: ServingOptions) -> int:
        """CUDA context, the BLAS workspaces and NCCL at TP > 1."""
        return Engine.overhead(self, options) + self.constants(options).blas_workspace_bytes

    def loaded_weights(self, loaded: ModelSummary, arch: Architecture | None, options: ServingOptions,
                       bits: float | None = None) -> int:
        """The checkpoint's bytes plus what the caching allocator rounds each tensor of 10 MiB or more up to."""
        from ..memory import REPLICATED, weights_per_gpu, what_if_bytes

        rounding = 0
        for c in loaded.classes:
            if c.role == "buffer":
                continue
            size = c.nbytes if bits is None else what_if_bytes(c, bits)
            rounding += c.count * _segment_rounding(size if c.split == REPLICATED else -(-size // options.tp))
        return weights_per_gpu(loaded, options.tp, bits) + rounding

    def activation_peak(self, arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
        """Every sequence's prefill at once: concurrency x one sequence's activations, plus what the forward
        holds once for the whole batch."""
        per_sequence = self.sequence_activations(arch, options, context)
        hold = BLOCK_HOLDS.get(arch.model_type, BlockHold())
        once = context * arch.hidden_size * ACTIVATION_BYTES if hold.position_table else 0
        return options.concurrency * per_sequence + once, per_sequence

    def sequence_activations(self, arch: Architecture, options: ServingOptions, tokens: int) -> int:
        """Prefill activations one sequence of `tokens` adds, per GPU, with the sliding layers' full-length K/V
        beyond their window (alive until the first decode step)."""
        from ..memory import kv_bytes_per_layer_token

        hold = BLOCK_HOLDS.get(arch.model_type, BlockHold())
        per_token = activation_bytes_per_token(arch, options.tp) + ACTIVATION_BYTES * (
            hold.intermediate * mlp_width(arch) // options.tp + hold.hidden * arch.hidden_size)
        per_sequence = tokens * per_token + arch.vocab_size * LOGIT_BYTES
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


def _segment_rounding(nbytes: int) -> int:
    """Bytes the caching allocator counts beyond one tensor of `nbytes` that gets a segment of its own."""
    requested = -(-nbytes // _BLOCK_ROUND) * _BLOCK_ROUND
    if requested < _OWN_SEGMENT:
        return requested - nbytes
    remainder = -(-requested // _SEGMENT_ROUND) * _SEGMENT_ROUND - requested
    return requested - nbytes + (remainder if remainder <= _UNSPLIT_REMAINDER else 0)


TRANSFORMERS = Transformers(
    name="transformers", label="transformers",
    versions={"5.17": TransformersConstants(version="5.17")},
    vendors=frozenset({"NVIDIA", "AMD", "Intel", "Apple"}),
    formats=frozenset({"safetensors", "pytorch-bin", "gguf"}),  # GGUF is dequantized on load
)
