"""The public API's small pieces: parameter counts as users type them, the formula, calc."""

from __future__ import annotations

import pytest

from gpumem import api
from gpumem.errors import UsageError


@pytest.mark.parametrize(("text", "count"), [
    ("70B", 70_000_000_000), ("7.24B", 7_240_000_000), ("125M", 125_000_000), ("70e9", 70_000_000_000),
    ("68976648192", 68_976_648_192), ("1.5T", 1_500_000_000_000), (" 8b ", 8_000_000_000), ("350k", 350_000),
])
def test_parameter_counts_as_users_write_them(text, count):
    assert api.parse_parameter_count(text) == count


@pytest.mark.parametrize("text", ["", "seventy", "70 GB", "-7B", "0", "B", "1e", "7.2.4B"])
def test_unreadable_counts_are_usage_errors(text):
    with pytest.raises(UsageError):
        api.parse_parameter_count(text)


@pytest.mark.parametrize(("params", "bits", "gb"), [("70B", 16, 168.0), ("70B", 4, 42.0), ("70B", 8, 84.0),
                                                    ("7B", 32, 33.6), ("68976648192", 16, 165.54)])
def test_the_formula_as_users_know_it(params, bits, gb):
    report = api.calc(params, bits)
    assert report.formula.memory_gb == pytest.approx(gb, abs=0.005)
    assert report.to_dict()["formula"]["overhead"] == 1.2


@pytest.mark.parametrize(("gpu", "bits", "count"), [("A100 80GB", 16, 2), ("L4", 4, 2), ("H200", 16, 1),  # at --gpu-memory-utilization 0.95
                                                    ("a100-80gb", 16, 2), ("4090", 4, 2)])
def test_calc_places_a_70b_model(gpu, bits, count):
    (rec,) = api.calc("70B", bits, gpu=gpu).recommendations
    assert rec.fits and rec.count == count


def test_calc_json_has_the_keys_that_apply(gpumem):
    import json

    code, out, _ = gpumem("calc", "--params", "70B", "--bits", "16", "--json")
    data = json.loads(out)
    assert code == 0 and data["formula"] == {"bits": 16, "overhead": 1.2, "memory_gb": 168.0}
    assert {"parameters", "formula", "formula_by_bits", "recommendations"} <= set(data)


@pytest.mark.parametrize("text", ["1e400", "1e15", "200T"])
def test_absurd_counts_are_usage_errors_not_overflows(text):
    with pytest.raises(UsageError, match="between 1 and 100T"):
        api.parse_parameter_count(text)


def test_hf_hands_the_api_its_flags_and_prints_what_the_api_answers(hub, gpumem, monkeypatch):
    # The CLI is a thin layer: --gpu is api.estimate's `gpu` and the serving options are the flags' (each plan sizes
    # on its own GPU); the same call through the API answers the same JSON.
    import json

    from gpumem.planning.options import ServingOptions

    passed = {}
    real = api.estimate_many

    def spy(*args, **kwargs):
        passed.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "estimate_many", spy)
    code, out, _ = gpumem("hf", "Qwen/Qwen2.5-7B", "--gpu", "A10", "--context", "8k", "--engine", "sglang", "--json",
                          "--no-cache")
    assert code == 0
    serving = ServingOptions(engine="sglang", context=8192)
    assert (passed["gpu"], passed["serving"]) == (("A10",), serving)
    metadata = api.inspect_repo("Qwen/Qwen2.5-7B", options=api.HubOptions(use_cache=False))
    (report,) = api.estimate(metadata, gpu="A10", serving=serving)
    assert json.loads(out) == json.loads(json.dumps(report.to_dict()))
