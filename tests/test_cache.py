"""The result cache: round trip, corrupt entries, path safety, atomic writes."""

from __future__ import annotations

import json
import os

import pytest
from conftest import manifest_tensors

from gpumem.model.types import RepoMetadata, WeightSet
from gpumem.reading.cache import ResultCache

ENDPOINT = "https://huggingface.co"
SHA = "607a30d783dfa663caf39e06633721c8d4cfcd7e"


def gpt2(sha: str = SHA) -> RepoMetadata:
    weights = WeightSet("", "safetensors", ("model.safetensors",), tuple(manifest_tensors("openai-community__gpt2")),
                        {"model_type": "gpt2"})
    return RepoMetadata("openai-community/gpt2", sha, "hub", (weights,), ("config.json", "model.safetensors"))


def test_round_trip_and_revision_mapping(tmp_path):
    cache = ResultCache(tmp_path)
    cache.store(ENDPOINT, "main", gpt2())
    assert cache.sha_for(ENDPOINT, "openai-community/gpt2", "main") == SHA
    assert cache.sha_for(ENDPOINT, "openai-community/gpt2", SHA) == SHA  # a full sha needs no lookup
    assert cache.load(ENDPOINT, "openai-community/gpt2", SHA) == gpt2()
    assert cache.load("http://127.0.0.1:9", "openai-community/gpt2", SHA) is None  # keyed by endpoint
    info = cache.info()
    assert (info.repos, info.entries) == (1, 1) and info.size_bytes > 0


def test_a_corrupt_entry_is_a_miss_and_is_removed(tmp_path):
    cache = ResultCache(tmp_path)
    cache.store(ENDPOINT, "main", gpt2())
    (entry,) = tmp_path.rglob(f"{SHA}.json")
    entry.write_text('{"repo_id": "openai-community/gpt2", "revis')
    assert cache.load(ENDPOINT, "openai-community/gpt2", SHA) is None
    assert not entry.exists()
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(json.dumps({**gpt2().to_dict(), "repo_id": "someone/else"}))
    assert cache.load(ENDPOINT, "openai-community/gpt2", SHA) is None


@pytest.mark.parametrize(("repo_id", "revision"), [("..", "main"), ("../../etc", "main"), ("/etc/passwd", "main"),
                                                     ("org/model", ".."), ("org/model", "../../../x")])
def test_keys_never_escape_the_cache_folder(tmp_path, repo_id, revision):
    cache = ResultCache(tmp_path / "cache")
    metadata = RepoMetadata(repo_id, SHA, "hub", ())
    cache.store(ENDPOINT, revision, metadata)
    cache.load(ENDPOINT, repo_id, SHA)
    cache.sha_for(ENDPOINT, repo_id, revision)
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all((tmp_path / "cache") in p.parents for p in written)


def test_an_interrupted_write_leaves_the_old_entry_and_no_temp_file(tmp_path, monkeypatch):
    cache = ResultCache(tmp_path)
    cache.store(ENDPOINT, "main", gpt2())

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.store(ENDPOINT, "main", gpt2())
    monkeypatch.undo()
    assert cache.load(ENDPOINT, "openai-community/gpt2", SHA) == gpt2()
    assert not [p for p in tmp_path.rglob("*.part")]


def test_an_entry_is_not_flushed_to_disk_but_a_users_file_is(tmp_path, monkeypatch):
    """An fsync per entry (10-60 ms of a cold read) buys nothing for what is checked on load and fetched again; a
    file the user asked for (an SVG) is still flushed before it is renamed into place."""
    from gpumem.reading.files import write_atomically

    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", synced.append)
    ResultCache(tmp_path).store(ENDPOINT, "main", gpt2())
    assert synced == [] and ResultCache(tmp_path).load(ENDPOINT, "openai-community/gpt2", SHA) == gpt2()
    write_atomically(tmp_path / "report.svg", "<svg/>")
    assert len(synced) == 1 and (tmp_path / "report.svg").read_text() == "<svg/>"


def test_non_sha_revisions_are_not_cached_and_clear_empties(tmp_path):
    cache = ResultCache(tmp_path)
    cache.store(ENDPOINT, "main", gpt2(sha="snapshot"))
    assert cache.info().entries == 0
    cache.store(ENDPOINT, "main", gpt2())
    assert cache.clear().entries == 1
    assert cache.info().entries == 0


def test_default_location_is_under_hf_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert ResultCache().root == tmp_path / "home" / "gpumem" / "v3"


def test_cache_list_and_clearing_one_repo(hub, gpumem, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = gpumem("cache", "list")
    assert code == 0 and "nothing cached yet" in out
    for repo in ("openai-community/gpt2", "Qwen/Qwen2.5-7B"):
        assert gpumem("hf", repo, "--json")[0] == 0
    code, out, _ = gpumem("cache", "list")
    rows = {line.split()[0]: line for line in out.splitlines() if "/" in line.split()[0]}
    assert set(rows) >= {"openai-community/gpt2", "Qwen/Qwen2.5-7B"} and "main" in rows["Qwen/Qwen2.5-7B"]
    code, out, _ = gpumem("cache", "list", "--json")
    listed = json.loads(out)["repos"]
    assert {r["repo_id"] for r in listed} == {"openai-community/gpt2", "Qwen/Qwen2.5-7B"}
    assert all(len(r["commits"]) == 1 and r["size_bytes"] > 0 and r["revisions"] == ["main"] for r in listed)
    code, out, _ = gpumem("cache", "clear", "https://huggingface.co/qwen/qwen2.5-7b")
    assert code == 0 and "Removed  1 entry of Qwen/Qwen2.5-7B" in out
    code, out, _ = gpumem("cache", "list", "--format", "csv")
    assert "openai-community/gpt2" in out and "Qwen" not in out
    code, out, _ = gpumem("cache", "clear", "Qwen/Qwen2.5-7B", "--json")
    assert code == 0 and json.loads(out)["entries"] == 0
