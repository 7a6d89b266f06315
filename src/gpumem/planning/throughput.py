"""Pure: how fast a plan decodes and how long the first token takes, from bandwidth and FLOPs.

Decode is memory-bound. One step of `batch` sequences reads, per GPU, the weights the step touches (for a
mixture of experts: the shared part plus the experts `batch` tokens are routed to, expected
`E * (1 - (1 - k/E) ** batch)` of E experts with top-k routing) and every sequence's KV cache at the asked
context. Time per step:

    step = bytes_read_per_gpu / (efficiency * bandwidth) + dense_layers * dense_layer_s + moe_layers * moe_layer_s

The per-layer terms are what is not bandwidth: kernel launches, all-reduces under TP, MoE routing and
dispatch. Pipeline stages run one after another for a token, so PP changes neither term (each stage reads
its share). Prefill is compute-bound: the first token takes

    ttft = (2 * active_params * prompt + 2 * layers * prompt**2 * attention_width) / (prefill_efficiency *
           peak_flops * tp) + step + fixed_s

Constants are fitted on published benchmarks (fixtures/measurements/speed-public-benchmarks.jsonl, by
speed_calibration.py; docs/speed.md shows fitted and held-out errors). Serving engines (vLLM, SGLang,
TensorRT-LLM) and llama.cpp get their own per-layer costs; llama.cpp's are CPU launch costs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SpeedConstants:
    """One engine family's fitted constants (see docs/speed.md for the fit and its errors)."""

    family: str
    bandwidth_efficiency: float  # fraction of the datasheet bandwidth a decode step reaches
    dense_layer_s: float  # per dense layer per step, beyond the bytes
    moe_layer_s: float  # per MoE layer per step, beyond the bytes
    prefill_efficiency: float  # fraction of the dense peak FLOPS a prefill reaches
    fixed_s: float  # per request, beyond the FLOPs (scheduling, HTTP, sampling)


# Fitted by `scripts/fit_speed.py` (docs/speed.md has the fit and held-out errors per row);
# tests/test_throughput.py refits and compares. Serving: vLLM, SGLang, TensorRT-LLM and NIM rows.
SERVING = SpeedConstants("serving", bandwidth_efficiency=0.95, dense_layer_s=94e-6, moe_layer_s=389.9e-6,
                         prefill_efficiency=0.615, fixed_s=0.0)
# llama.cpp: decode fitted on llama-bench rows (CPU launch costs per layer); no first-token rows were
# published with it, so its prefill uses the serving fit.
LLAMA_CPP = SpeedConstants("llama.cpp", bandwidth_efficiency=0.88, dense_layer_s=132e-6, moe_layer_s=132e-6,
                           prefill_efficiency=SERVING.prefill_efficiency, fixed_s=0.0)
FAMILIES = {"serving": SERVING, "llama.cpp": LLAMA_CPP}


@dataclass(frozen=True, slots=True)
class ModelShape:
    """What speed needs of a model: layers, parameters and, for MoE, its routed experts."""

    dense_layers: int
    moe_layers: int
    attention_width: int  # heads x head_dim (prefill attention FLOPs)
    parameters: int
    active_parameters: int  # per token
    experts: int = 0
    experts_per_token: int = 0

    @property
    def routed_fraction(self) -> float:
        """Share of the parameters in routed experts: (total - active) x E / (E - k) of the total."""
        if not self.experts or self.experts == self.experts_per_token or not self.parameters:
            return 0.0
        routed = (self.parameters - self.active_parameters) * self.experts / (self.experts - self.experts_per_token)
        return min(routed / self.parameters, 1.0)

    def experts_touched(self, tokens: int) -> float:
        """Expected distinct routed experts `tokens` tokens reach in one MoE layer (uniform top-k routing)."""
        if not self.experts:
            return 0.0
        return self.experts * (1 - (1 - self.experts_per_token / self.experts) ** tokens)

    def weight_fraction_read(self, tokens: int) -> float:
        """Share of the weights one decode step of `tokens` sequences reads."""
        routed = self.routed_fraction
        if not routed:
            return 1.0
        return 1 - routed + routed * self.experts_touched(tokens) / self.experts


@dataclass(frozen=True, slots=True)
class Speed:
    """Decode and first-token estimates of one plan, with the basis they rest on."""

    decode_tokens_per_s: float  # per sequence
    aggregate_tokens_per_s: float  # all `batch` sequences together
    batch: int
    step_s: float
    ttft_s: float | None  # None when the GPU has no TFLOPS figure
    prompt_tokens: int
    bytes_read_per_gpu: int
    basis: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {"decode_tokens_per_s": round(self.decode_tokens_per_s, 2),
                "aggregate_tokens_per_s": round(self.aggregate_tokens_per_s, 2), "batch": self.batch,
                "step_s": self.step_s, "ttft_s": None if self.ttft_s is None else round(self.ttft_s, 4),
                "prompt_tokens": self.prompt_tokens, "bytes_read_per_gpu": self.bytes_read_per_gpu,
                "basis": self.basis}


def decode_step_seconds(shape: ModelShape, weight_bytes_per_gpu: int, kv_bytes_per_sequence_per_gpu: int,
                        batch: int, bandwidth_bytes_s: float, constants: SpeedConstants) -> tuple[float, int]:
    """(seconds per decode step of `batch` sequences, bytes each GPU reads in it)."""
    read = int(weight_bytes_per_gpu * shape.weight_fraction_read(batch)) + batch * kv_bytes_per_sequence_per_gpu
    seconds = (read / (constants.bandwidth_efficiency * bandwidth_bytes_s) + shape.dense_layers * constants.dense_layer_s
               + shape.moe_layers * constants.moe_layer_s)
    return seconds, read


def prefill_flops(shape: ModelShape, prompt_tokens: int) -> float:
    """FLOPs of one prompt: 2 x active parameters per token plus causal attention (2 x layers x S^2 x width)."""
    layers = shape.dense_layers + shape.moe_layers
    return 2 * shape.active_parameters * prompt_tokens + 2 * layers * prompt_tokens**2 * shape.attention_width


def estimate_speed(shape: ModelShape, *, weight_bytes_per_gpu: int, kv_bytes_per_sequence_per_gpu: int,
                   batch: int, tp: int, bandwidth_gbps: float, peak_tflops: float | None, prompt_tokens: int,
                   constants: SpeedConstants = SERVING) -> Speed:
    """Decode tokens/s (per sequence and in aggregate over `batch`) and time to first token of one plan.

    `weight_bytes_per_gpu` and `kv_bytes_per_sequence_per_gpu` are one pipeline stage's when PP > 1 times
    the stage count (a token passes every stage), i.e. the TP-only figures; `peak_tflops` is the dense peak
    at the compute width (BF16, or FP8 for an FP8 checkpoint on an FP8 GPU).
    """
    batch = max(batch, 1)
    step, read = decode_step_seconds(shape, weight_bytes_per_gpu, kv_bytes_per_sequence_per_gpu, batch,
                                     bandwidth_gbps * 1e9, constants)
    ttft = None
    if peak_tflops:
        compute = prefill_flops(shape, prompt_tokens) / (constants.prefill_efficiency * peak_tflops * 1e12 * tp)
        ttft = compute + decode_step_seconds(shape, weight_bytes_per_gpu, 0, 1, bandwidth_gbps * 1e9, constants)[0] \
            + constants.fixed_s
    basis = (f"{constants.family}: {constants.bandwidth_efficiency:.0%} of {bandwidth_gbps:g} GB/s over "
             f"{read / 1e9:.2f} GB read per GPU per step + {constants.dense_layer_s * 1e6:.0f} µs per layer")
    return Speed(decode_tokens_per_s=1 / step, aggregate_tokens_per_s=batch / step, batch=batch, step_s=step,
                 ttft_s=ttft, prompt_tokens=prompt_tokens, bytes_read_per_gpu=read, basis=basis)
