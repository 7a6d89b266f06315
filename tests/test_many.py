"""The many-repo API (typed per-repo outcomes, one error shape), the source policy module and the public names."""

from __future__ import annotations

import json

import pytest

import gpumem
from gpumem import AdapterTraining, PlanRequest, ServingOptions, UsageError, api
from gpumem.errors import NotFoundError


def test_estimate_many_and_fit_many_answer_each_repo_in_place(hub):
    options = api.HubOptions(use_cache=False)
    outcomes = api.estimate_many(["openai-community/gpt2", "nobody/nothing"], options=options)
    assert [o.repo_id for o in outcomes] == ["openai-community/gpt2", "nobody/nothing"]
    ok, failed = outcomes
    assert ok.error is None and ok.reports[0].parameters == 124_439_808
    assert isinstance(failed.error, NotFoundError) and failed.reports == ()
    assert failed.error_dict() == {"repo_id": "nobody/nothing", "exit_code": 3, "error": failed.error.message}
    fits = api.fit_many(["nobody/nothing", "openai-community/gpt2"], "L4", options=options)
    assert fits[0].error_dict() == failed.error_dict() and fits[1].reports[0].gpu == "L4"


def test_fit_many_refuses_an_unknown_gpu_before_reading(hub):
    with pytest.raises(gpumem.UsageError, match="unknown GPU"):
        api.fit_many(["openai-community/gpt2"], "H10")
    assert hub.requests == []


def test_every_public_name_resolves():
    assert all(getattr(gpumem, name) is not None for name in gpumem.__all__)
    # Engine.plan_command returns a PlanStart: a type callers receive is exported with the function that returns it
    assert {"ServingOptions", "ModelSummary", "RepoOutcome", "estimate_many", "fit_many", "get_engine",
            "PlanStart"} <= set(gpumem.__all__)


def test_report_notes_are_in_library_words_and_the_cli_says_them_as_flags(gpumem, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metadata = api.inspect_repo("Qwen/Qwen2.5-7B", options=api.HubOptions(use_cache=False))
    (report,) = api.estimate(metadata, bits=4, gpu="L40S")
    snapshot, what_if = report.notes[0], next(n for n in report.notes if "what-if" in n)
    assert snapshot == ("offline: answered from the built-in snapshot; for live data, run without offline / "
                        "HF_HUB_OFFLINE=1") and snapshot.hint_options == ("offline",)
    assert what_if.startswith("bits 4 is a what-if") and what_if.option == "bits"
    assert not any("--offline" in n or "--bits" in n for n in report.to_dict()["notes"])
    code, out, err = gpumem("hf", "Qwen/Qwen2.5-7B", "--bits", "4", "--gpu", "L40S", "--no-cache", "--json")
    assert code == 0 and "Note: --bits 4 is a what-if" in err and "run without --offline /" in err
    notes = json.loads(out)["notes"]
    assert notes[0].endswith("run without --offline / HF_HUB_OFFLINE=1") and "--bits 4 is a what-if" in notes[-1]


def test_a_shape_refused_on_every_gpu_alike_is_said_once_with_its_hint_as_flags(gpumem, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    metadata = api.inspect_repo("Qwen/Qwen2.5-7B", options=api.HubOptions(use_cache=False))
    with pytest.raises(UsageError) as refused:
        api.estimate(metadata, serving=ServingOptions(engine="llama.cpp"), plan=PlanRequest(pp=2))
    assert refused.value.message == "llama.cpp splits the layers over the GPUs of one machine"
    assert refused.value.hint == "ask for them with tp N"
    code, _, err = gpumem("hf", "Qwen/Qwen2.5-7B", "--engine", "llama.cpp", "--pp", "2", "--no-cache")
    assert code == 2 and err.splitlines() == ["Error: llama.cpp splits the layers over the GPUs of one machine",
                                              "Hint: ask for them with --tp N"]


def test_training_an_adapter_names_its_base_in_library_words(hub):
    from gpumem_dev.fakehub.repos import adapter_repo

    hub.add_repo(adapter_repo("Rehman54454__gpt2-qlora"))
    adapter = api.inspect_repo("Rehman54454/gpt2-qlora", options=api.HubOptions(use_cache=False))
    with pytest.raises(AdapterTraining) as refused:
        api.training_base(adapter)
    error = refused.value
    assert (error.base, error.rank, error.target_modules) == ("openai-community/gpt2", 8, "attn.c_attn,attn.c_proj")
    assert error.hint == ("plan it on openai-community/gpt2 with method lora, rank 8 and target_modules "
                          "attn.c_attn,attn.c_proj") and "--" not in error.hint


def test_an_unknown_gpu_points_library_callers_at_load_catalog_and_cli_users_at_gpumem_gpus(gpumem):
    with pytest.raises(UsageError) as unknown:
        api.find_gpu("zzzzzz")
    assert unknown.value.message == "unknown GPU 'zzzzzz'"
    assert unknown.value.hint == "load_catalog() lists every GPU and its aliases"
    code, _, err = gpumem("calc", "--params", "70B", "--gpu", "zzzzzz")
    assert code == 2 and err.splitlines() == ["Error: unknown GPU 'zzzzzz'",
                                              "Hint: `gpumem gpus` lists every GPU and its aliases"]
