"""Fit throughput.py's constants on published benchmarks, and measure the fit on rows it never saw.

Input: fixtures/measurements/speed-public-benchmarks.jsonl (one published decode / first-token figure per
line, with source and quote) and speed-model-shapes.json (each model's layers, parameters, KV bytes from
its config.json). The split is fixed before fitting: within each engine family and kind (decode, first
token), rows sorted by id, every third one (positions 3, 6, 9, ...) is held out, and so is every row whose
`confidence` is "low". Rows whose bytes cannot be known (a community AWQ of unknown layout) are left out
and listed. Used by scripts/fit_speed.py (which prints docs/speed.md's tables) and by the tests.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .throughput import ModelShape, SpeedConstants, decode_step_seconds, prefill_flops


@dataclass(frozen=True, slots=True)
class Observation:
    """One benchmark row turned into the fit's terms."""

    id: str
    family: str  # "serving" | "llama.cpp"
    kind: str  # "decode" | "ttft"
    held_out: bool
    measured_s: float  # seconds per decode step, or to the first token
    shape: ModelShape
    weight_bytes_per_gpu: int
    kv_bytes_per_sequence_per_gpu: int
    batch: int
    tp: int
    bandwidth_bytes_s: float
    peak_flops: float  # at the precision the row's ttft_speed_of_light states
    prompt_tokens: int
    gpu: str


def _decode_rate(row: dict[str, Any]) -> float | None:
    reported, derived = row["reported"], row.get("derived") or {}
    for key, value in reported.items():
        if key.startswith("llamacpp_tg"):
            return float(value)
    for key, value in derived.items():
        if key.startswith("decode_tokens_per_s"):
            return float(value)
    return reported.get("decode_tokens_per_s_per_seq_bs1")


_TTFT_KEYS = ("ttft_ms_first_token_latency", "ttft_ms", "ttft_ms_mean", "ttft_ms_p50_ep_none")


def _ttft(row: dict[str, Any]) -> float | None:
    if (row.get("concurrency") or 1) != 1:  # queueing behind other requests' prefills
        return None
    return next((row["reported"][k] / 1e3 for k in _TTFT_KEYS if k in row["reported"]), None)


def _shape(spec: dict[str, Any]) -> ModelShape:
    experts, k = spec.get("experts", 0), spec.get("experts_per_token", 0)
    routed = spec.get("routed_parameters", 0)
    active = spec["parameters"] - (routed * (experts - k) // experts if experts else 0)
    return ModelShape(dense_layers=spec["layers"] - spec["moe_layers"], moe_layers=spec["moe_layers"],
                      attention_width=spec["attention_width"], parameters=spec["parameters"],
                      active_parameters=active, experts=experts, experts_per_token=k)


def load_observations(benchmarks: Path, shapes: Path) -> tuple[list[Observation], list[str]]:
    """(every usable observation with its fit / held-out flag, the ids left out with why)."""
    rows = [json.loads(line) for line in benchmarks.read_text(encoding="utf-8").splitlines() if line.strip()]
    spec = json.loads(shapes.read_text(encoding="utf-8"))
    found: list[Observation] = []
    left_out: list[str] = []
    for row in rows:
        family = "llama.cpp" if row["engine"].startswith("llama.cpp") else "serving"
        model = spec["shapes"][spec["rows"][row["id"]]]
        shape = _shape(model)
        if "AWQ" in row["dtype_or_quant"]:
            left_out.append(f"{row['id']}: community AWQ checkpoint, bytes per expert unknown")
            continue
        # Layer-split llama.cpp runs the GPUs one after another: one GPU's bandwidth, all the bytes.
        tp = row.get("tensor_parallel") or 1
        light = row.get("speed_of_light") or {}
        ttft_light = row.get("ttft_speed_of_light") or {}
        bandwidth = (light.get("bandwidth_TBps_per_gpu") or _bandwidth_from_ttft(row)) * 1e12
        if shape.moe_layers:  # checkpoints here are FP8: one byte per parameter
            weights = shape.parameters
        else:
            weights = int((light.get("weight_bytes_GB") or 2 * shape.parameters / 1e9) * 1e9)
        batch = row.get("concurrency") or 1
        prompt = row.get("input_len") or 0
        output = row.get("output_len") or 128
        # Average context during decode: llama-bench generates from an empty context.
        context = output // 2 if family == "llama.cpp" else int(prompt + output / 2)
        kv_split = 1 if shape.moe_layers else tp  # MLA's latent cache is on every rank
        common: dict[str, Any] = {
            "family": family, "shape": shape, "weight_bytes_per_gpu": weights // tp,
            "kv_bytes_per_sequence_per_gpu": model["kv_bytes_per_token"] * context // kv_split, "batch": batch,
            "tp": tp, "bandwidth_bytes_s": bandwidth, "prompt_tokens": int(prompt), "gpu": row["gpu"],
            "peak_flops": (ttft_light.get("peak_TFLOPS_per_gpu") or 0) * 1e12}
        rate = _decode_rate(row)
        if rate:
            found.append(Observation(id=row["id"], kind="decode", held_out=False, measured_s=1 / rate, **common))
        ttft = _ttft(row)
        if ttft and prompt and common["peak_flops"]:
            found.append(Observation(id=row["id"], kind="ttft", held_out=False, measured_s=ttft, **common))
    confidence = {row["id"]: row.get("confidence") for row in rows}
    return _split(found, confidence), left_out


def _bandwidth_from_ttft(row: dict[str, Any]) -> float:
    """Prefill-only rows state no decode bandwidth: the datasheet figure of their GPU (TB/s)."""
    gpu = row["gpu"]
    return 3.35 if "H100" in gpu else 2.039 if "A100" in gpu else 0.864 if "L40S" in gpu else 0.0


def _split(found: list[Observation], confidence: dict[str, str | None]) -> list[Observation]:
    from dataclasses import replace

    result = []
    for family in ("serving", "llama.cpp"):
        for kind in ("decode", "ttft"):
            group = sorted((o for o in found if o.family == family and o.kind == kind), key=lambda o: o.id)
            result += [replace(o, held_out=(i % 3 == 2 or confidence.get(o.id) == "low"))
                       for i, o in enumerate(group)]
    return result


def _log_error(predicted: list[float], measured: list[float]) -> float:
    return sum(abs(math.log(p / m)) for p, m in zip(predicted, measured, strict=True))


def _best_offset(base: list[float], slope: list[float], measured: list[float]) -> tuple[float, float]:
    """(c >= 0 minimising sum |log((base + slope * c) / measured)|, that sum), trying each row's own root."""
    candidates = {0.0} | {max((m - b) / s, 0.0) for b, s, m in zip(base, slope, measured, strict=True) if s}
    scored = [(_log_error([b + s * c for b, s in zip(base, slope, strict=True)], measured), c)
              for c in sorted(candidates)]
    error, best = min(scored)
    return best, error


def fit_family(observations: list[Observation], family: str) -> SpeedConstants:
    """Fit one family's constants on its non-held-out rows, minimising the summed |log(predicted / measured)|.

    Absolute log errors (a median-like fit) keep one engine's slow configuration from dragging every other
    prediction: same GPUs, same model, the published DeepSeek-R1 decode steps differ 2-5x between engines.
    Decode first (bandwidth efficiency on a 0.01 grid within 0.40-0.95: no engine beats the datasheet, HBM
    streams reach about 0.9-0.95 of it; per-dense-layer cost on a 2 µs grid; per-MoE-layer cost exactly), then
    the first token's prefill efficiency (0.005 grid) and fixed cost.
    """
    unit = SpeedConstants(family, 1.0, 0.0, 0.0, 1.0, 0.0)
    decode = [o for o in observations if o.family == family and o.kind == "decode" and not o.held_out]
    measured = [o.measured_s for o in decode]
    read = [decode_step_seconds(o.shape, o.weight_bytes_per_gpu, o.kv_bytes_per_sequence_per_gpu, o.batch,
                                o.bandwidth_bytes_s, unit)[0] for o in decode]
    has_moe = any(o.shape.moe_layers for o in decode)
    dense = [float(o.shape.dense_layers + (0 if has_moe else o.shape.moe_layers)) for o in decode]
    moe = [float(o.shape.moe_layers if has_moe else 0) for o in decode]
    best = (math.inf, 0.0, 0.0, 0.0)
    for step in range(40, 96):  # efficiency 0.40 ... 0.95
        efficiency = step / 100
        for micro in range(0, 401, 2):
            base = [r / efficiency + d * micro * 1e-6 for r, d in zip(read, dense, strict=True)]
            per_moe, error = _best_offset(base, moe, measured) if has_moe else (0.0, _log_error(base, measured))
            if error < best[0]:
                best = (error, efficiency, micro * 1e-6, per_moe)
    _, efficiency, per_dense, per_moe = best
    constants = SpeedConstants(family, efficiency, per_dense, round(per_moe if has_moe else per_dense, 7), 1.0, 0.0)
    ttft = [o for o in observations if o.family == family and o.kind == "ttft" and not o.held_out]
    if len(ttft) >= 2:
        measured = [o.measured_s for o in ttft]
        compute = [prefill_flops(o.shape, o.prompt_tokens) / (o.peak_flops * o.tp) for o in ttft]
        step_s = [_step(o, constants) for o in ttft]
        fits = []
        for step in range(20, 201):  # prefill efficiency 0.100 ... 1.000
            base = [c / (step / 200) + s for c, s in zip(compute, step_s, strict=True)]
            fixed, error = _best_offset(base, [1.0] * len(base), measured)
            fits.append((error, step / 200, fixed))
        _, prefill, fixed = min(fits)
        constants = SpeedConstants(family, efficiency, per_dense, constants.moe_layer_s, prefill, round(fixed, 4))
    return constants


def _step(o: Observation, constants: SpeedConstants) -> float:
    return decode_step_seconds(o.shape, o.weight_bytes_per_gpu, 0, 1, o.bandwidth_bytes_s, constants)[0]


def predict(o: Observation, constants: SpeedConstants) -> float:
    """The model's seconds for an observation: one decode step, or the first token."""
    if o.kind == "decode":
        return decode_step_seconds(o.shape, o.weight_bytes_per_gpu, o.kv_bytes_per_sequence_per_gpu, o.batch,
                                   o.bandwidth_bytes_s, constants)[0]
    compute = prefill_flops(o.shape, o.prompt_tokens) / (constants.prefill_efficiency * o.peak_flops * o.tp)
    return compute + _step(o, constants) + constants.fixed_s


def relative_error(o: Observation, constants: SpeedConstants) -> float:
    """(predicted rate - measured rate) / measured rate; for first-token time, of the time."""
    predicted = predict(o, constants)
    if o.kind == "decode":  # compare tokens/s, what users read
        return o.measured_s / predicted - 1
    return predicted / o.measured_s - 1


def summary(observations: list[Observation], constants: dict[str, SpeedConstants]) -> dict[tuple[str, str, str, bool], dict]:
    """Per (family, kind, dense/MoE, held out): row count, median and mean absolute relative error, worst row."""
    out = {}
    for family, family_constants in constants.items():
        for kind in ("decode", "ttft"):
            for layers in ("dense", "MoE"):
                for held in (False, True):
                    group = [o for o in observations if (o.family, o.kind, o.held_out) == (family, kind, held)
                             and bool(o.shape.moe_layers) == (layers == "MoE")]
                    if not group:
                        continue
                    errors = {o.id: relative_error(o, family_constants) for o in group}
                    worst = max(errors, key=lambda i: abs(errors[i]))
                    out[(family, kind, layers, held)] = {
                        "rows": len(group), "median_abs": statistics.median(abs(e) for e in errors.values()),
                        "mean_abs": statistics.fmean(abs(e) for e in errors.values()),
                        "worst": (worst, errors[worst]), "errors": errors}
    return out
