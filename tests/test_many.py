"""The many-repo API (typed per-repo outcomes, one error shape), the source policy module and the public names."""

from __future__ import annotations

import pytest

import gpumem
from gpumem import api
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
    assert {"ServingOptions", "ModelSummary", "RepoOutcome", "estimate_many", "fit_many", "get_engine"} <= set(
        gpumem.__all__)
