"""The built-in snapshot: current with its fixtures, and giving the published counts offline."""

from __future__ import annotations

import gzip
import json

import pytest

from gpumem import api
from gpumem.reading.snapshot import SNAPSHOT_DIR, load_snapshot, snapshot_repo_ids
from gpumem_dev import build_snapshot as builder


def test_snapshot_is_current_with_the_fixtures():
    expected = builder.entries()
    assert sorted(expected) == snapshot_repo_ids()
    for repo_id, metadata in expected.items():
        shipped = json.loads(gzip.decompress((SNAPSHOT_DIR / builder.file_name(repo_id)).read_bytes()))
        assert metadata.to_dict() == shipped, f"rebuild the snapshot: {repo_id}"


@pytest.mark.parametrize(("repo_id", "parameters"), [
    ("meta-llama/Llama-2-70b-hf", 68_976_648_192), ("meta-llama/Llama-2-7b-hf", 6_738_415_616),
    ("mistralai/Mixtral-8x7B-v0.1", 46_702_792_704), ("Qwen/Qwen2.5-7B-Instruct", 7_615_616_512),
    ("openai-community/gpt2", 124_439_808), ("meta-llama/Meta-Llama-3-8B", 8_030_261_248),
    ("TheBloke/Llama-2-13B-chat-GPTQ", 13_015_864_320),
    ("IrfanUruchi/Llama-3.1-8B-Computer-Networks-LLM", 8_030_261_248),
])
def test_offline_answers_carry_the_published_counts_and_say_snapshot(repo_id, parameters, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (report,) = api.estimate(api.inspect_repo(repo_id))
    assert report.parameters == parameters and report.source == "snapshot"
    assert any("snapshot" in note for note in report.notes)


def test_lookup_is_case_insensitive_and_lists_every_repo():
    assert load_snapshot("META-LLAMA/llama-2-70b-HF").repo_id == "meta-llama/Llama-2-70b-hf"
    assert load_snapshot("nobody/nothing") is None
    assert len(snapshot_repo_ids()) == 14
