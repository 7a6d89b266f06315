"""The speed model: its fit on published benchmarks (fitted and held-out rows apart) and its bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpumem.planning.speed_calibration import fit_family, load_observations, summary
from gpumem.planning.throughput import FAMILIES, LLAMA_CPP, SERVING, ModelShape, estimate_speed

MEASUREMENTS = Path(__file__).resolve().parent.parent / "fixtures" / "measurements"


@pytest.fixture(scope="module")
def observations():
    found, left_out = load_observations(MEASUREMENTS / "speed-public-benchmarks.jsonl",
                                        MEASUREMENTS / "speed-model-shapes.json")
    assert left_out == ["vllm-tt356-8xh100-dsr1-awq-c1: community AWQ checkpoint, bytes per expert unknown"]
    return found


def test_split_is_fixed_and_covers_every_published_figure(observations):
    decode = [o for o in observations if o.kind == "decode"]
    ttft = [o for o in observations if o.kind == "ttft"]
    assert len(decode) == 43 and len(ttft) == 13
    assert sum(o.held_out for o in observations) == 18
    assert {o.id for o in observations if o.held_out} >= {"vllm-i18725-h200-qwq32b-c1", "sglang-pr2643-8xh200-dsv3-bs1"}


def test_shipped_constants_are_the_fit(observations):
    assert fit_family(observations, "serving") == SERVING
    fitted = fit_family(observations, "llama.cpp")  # no first-token rows: prefill is the serving fit's
    assert (fitted.bandwidth_efficiency, fitted.dense_layer_s) == (LLAMA_CPP.bandwidth_efficiency,
                                                                   pytest.approx(LLAMA_CPP.dense_layer_s))


def test_errors_on_rows_the_fit_never_saw(observations):
    errors = summary(observations, FAMILIES)
    # dense models on serving engines: decode within 8% at the median, first token within 15%
    assert errors[("serving", "decode", "dense", True)]["median_abs"] < 0.09
    assert errors[("serving", "ttft", "dense", True)]["median_abs"] < 0.15
    assert errors[("llama.cpp", "decode", "dense", True)]["median_abs"] < 0.16
    # DeepSeek-R1 on 8 GPUs: engines differ 2-5x on the same hardware; the model sits in the middle
    assert errors[("serving", "decode", "MoE", True)]["median_abs"] < 0.55


LLAMA31_8B = ModelShape(dense_layers=32, moe_layers=0, attention_width=4096, parameters=8_030_261_248,
                        active_parameters=8_030_261_248)


def test_llama31_8b_on_one_h100_decodes_between_45_and_100_percent_of_the_bandwidth_limit():
    weights = 16_060_522_496  # its BF16 safetensors
    speed = estimate_speed(LLAMA31_8B, weight_bytes_per_gpu=weights, kv_bytes_per_sequence_per_gpu=131_072 * 4096,
                           batch=1, tp=1, bandwidth_gbps=3350, peak_tflops=989, prompt_tokens=4096)
    limit = 3.35e12 / weights
    assert 0.45 * limit < speed.decode_tokens_per_s < limit
    assert speed.ttft_s == pytest.approx(0.14, abs=0.03)  # 2 x 8B x 4096 + attention at 61.5% of 989 TFLOPS


def test_batching_raises_aggregate_not_per_sequence_speed():
    one = estimate_speed(LLAMA31_8B, weight_bytes_per_gpu=16_060_522_496, kv_bytes_per_sequence_per_gpu=0, batch=1,
                         tp=1, bandwidth_gbps=3350, peak_tflops=989, prompt_tokens=512)
    many = estimate_speed(LLAMA31_8B, weight_bytes_per_gpu=16_060_522_496, kv_bytes_per_sequence_per_gpu=0,
                          batch=32, tp=1, bandwidth_gbps=3350, peak_tflops=989, prompt_tokens=512)
    assert many.decode_tokens_per_s == pytest.approx(one.decode_tokens_per_s)  # weights are read once per step
    assert many.aggregate_tokens_per_s == pytest.approx(32 * one.decode_tokens_per_s)


def test_moe_reads_the_experts_a_batch_touches():
    deepseek = ModelShape(dense_layers=3, moe_layers=58, attention_width=16384, parameters=671_000_000_000,
                          active_parameters=671_000_000_000 - 653_908_770_816 * 248 // 256, experts=256,
                          experts_per_token=8)
    assert deepseek.experts_touched(1) == pytest.approx(8)
    assert deepseek.experts_touched(4) == pytest.approx(30.5, abs=0.1)
    assert deepseek.experts_touched(10_000) == pytest.approx(256)
    assert deepseek.weight_fraction_read(1) == pytest.approx(37.4e9 / 671e9, rel=0.01)  # ~37B active
    assert deepseek.weight_fraction_read(10_000) == pytest.approx(1.0)


def test_no_tflops_figure_means_no_first_token_estimate():
    speed = estimate_speed(LLAMA31_8B, weight_bytes_per_gpu=16_060_522_496, kv_bytes_per_sequence_per_gpu=0,
                           batch=1, tp=1, bandwidth_gbps=546, peak_tflops=None, prompt_tokens=512)
    assert speed.ttft_s is None and speed.decode_tokens_per_s > 0
