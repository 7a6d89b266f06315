"""Token and cache safety against the fake Hub: where the token goes (the Hub host only), where it never
appears (output, logs, cache, exceptions), and a cache that stays inside its folder and valid under
concurrent runs, interrupts and corruption."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

import pytest
from conftest import assert_interrupted_at_once, manifest_tensors

from gpumem.errors import GpumemError
from gpumem.model.types import RepoMetadata, WeightSet
from gpumem.reading.cache import ResultCache
from gpumem.reading.hub import HubClient
from gpumem_dev.fakehub import FakeHub, FakeRepo, repo_from_fixture

# Distinctive enough that any appearance anywhere is a leak, never a coincidence.
CANARY = "hf_CANARYdoNotLeak7f3a9c1e5b2d8f4a6c0e"
GPT2 = "openai-community/gpt2"


@pytest.fixture
def secret_repo(hub) -> FakeRepo:
    """gpt2's real files as a gated repo only the canary token opens."""
    base = repo_from_fixture("openai-community__gpt2")
    return hub.add_repo(FakeRepo("acme/secret-gpt2", base.files, gated="manual", allowed_tokens=frozenset({CANARY}),
                                 info=base.info))


def cache_root() -> Path:
    return Path(os.environ["HF_HOME"]) / "gpumem"


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def assert_no_canary_on_disk(folder: Path) -> None:
    for path in files_under(folder):
        assert CANARY.encode() not in path.read_bytes(), path
        assert CANARY not in str(path)


# -- where the token goes ---------------------------------------------------------------------------------

@pytest.mark.parametrize("via", ["flag", "env"])
def test_token_reaches_only_the_hub_host(hub, gpumem, secret_repo, monkeypatch, via):
    if via == "env":
        monkeypatch.setenv("HF_TOKEN", CANARY)
        monkeypatch.delenv("HF_HUB_DISABLE_IMPLICIT_TOKEN")
    args = ("--token", CANARY) if via == "flag" else ()
    code, out, err = gpumem("hf", secret_repo.repo_id, *args, "--json", "--no-cache")
    assert code == 0, err and json.loads(out)["source"] == "hub"
    hub_host, cdn_host = hub.endpoint.split("//")[1], hub.cdn_endpoint.split("//")[1]
    with_token = [r for r in hub.requests if "authorization" in r.headers]
    assert with_token and {r.host for r in with_token} == {hub_host}
    assert all(r.headers["authorization"] == f"Bearer {CANARY}" for r in with_token)
    cdn = [r for r in hub.requests if r.host == cdn_host]
    assert cdn and not [r for r in cdn if "authorization" in r.headers]  # the cross-host redirect drops it


def test_token_never_follows_a_redirect_to_another_endpoint(hub, gpumem, secret_repo):
    """Same IP, another port: another origin, so no token (the CDN answer fails, cleanly)."""
    with FakeHub() as other:
        saved, hub.cdn_endpoint = hub.cdn_endpoint, other.endpoint
        try:
            code, _, err = gpumem("hf", secret_repo.repo_id, "--token", CANARY, "--no-cache")
        finally:
            hub.cdn_endpoint = saved
        assert other.requests and not [r for r in other.requests if "authorization" in r.headers]
    assert code != 0 and "Traceback" not in err and CANARY not in err


# -- where the token never appears -------------------------------------------------------------------------

def test_token_never_printed_logged_or_cached(hub, gpumem, secret_repo, caplog):
    caplog.set_level(logging.DEBUG)  # any logger that runs (http.client itself logs nothing) is captured
    outputs = []
    for args in [("--json",), ("--debug",), ("--format", "markdown"), ("--format", "csv")]:
        code, out, err = gpumem("hf", secret_repo.repo_id, "--token", CANARY, *args)
        assert code == 0, err
        outputs.append(out + err)
    code, out, err = gpumem("hf", "acme/nothing-here", "--token", CANARY)  # an error path
    assert code == 3
    outputs.append(out + err)
    assert CANARY not in "".join(outputs) + caplog.text
    assert files_under(cache_root()) and not [p for p in files_under(cache_root()) if "secret" in p.read_text()
                                              and CANARY in p.read_text()]
    assert_no_canary_on_disk(Path(os.environ["HF_HOME"]))


def test_debug_shows_traceback_and_request_log_without_the_token(hub, secret_repo, tmp_path):
    """--debug on an error: the traceback and the request log, token redacted (a real process)."""
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "home")}
    hub.fail_next("acme/secret-gpt2/resolve/main/config.json", status=403)  # refused after the token was sent
    run = subprocess.run([sys.executable, "-m", "gpumem", "hf", secret_repo.repo_id, "--token", CANARY, "--debug",
                          "--no-cache"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 4  # --debug adds detail; the documented exit code stays
    assert "Traceback" in run.stderr and "AccessError" in run.stderr
    assert "[request] GET " in run.stderr and "-> 403" in run.stderr
    assert CANARY not in run.stdout + run.stderr
    assert_no_canary_on_disk(tmp_path)


def test_token_not_in_client_repr_log_or_exceptions(hub):
    with HubClient(hub.endpoint, CANARY, retries=0) as client:
        client.resolve(GPT2)
        errors = []
        for call in (lambda: client.resolve("acme/nothing-here"),
                     lambda: client.read_file(GPT2, "main", "no-such-file.json"),
                     lambda: HubClient(hub.endpoint, CANARY + "x", retries=0).resolve(GPT2)):  # rejected token
            with pytest.raises(GpumemError) as info:
                call()
            errors.append(info.value)
        assert CANARY not in repr(client) + repr(client.log) + repr(vars(client))
    for error in errors:
        text = "".join(traceback.format_exception(error)) + repr(error) + str(error.hint)
        assert CANARY not in text and "Bearer" not in text


# -- the cache stays in its folder --------------------------------------------------------------------------

@pytest.mark.parametrize("revision", ["..", ".", "../../../../escape", "main/../../x", "", "a\nb"])
def test_dot_revisions_are_refused_before_any_request(hub, gpumem, revision):
    """'..' would not even reach the Hub as written: HTTP clients resolve dot segments in URL paths."""
    code, _, err = gpumem("hf", GPT2, "--revision", revision)
    assert code == 2 and err.startswith("Error: invalid revision")
    assert hub.requests == [] and files_under(cache_root()) == []


def test_odd_revisions_and_file_names_stay_inside_the_cache(hub, gpumem, tmp_path):
    base = repo_from_fixture("openai-community__gpt2")
    files = {**base.files, "../../escape.safetensors": base.files["model.safetensors"],
             "/abs/escape.json": base.files["config.json"]}
    odd = ["%2e%2e%2f%2e%2e%2fescape", "refs/pr/1", "/etc/passwd", "~user", "C:\\windows"]
    repo = hub.add_repo(FakeRepo("acme/hostile-names", files, refs=dict.fromkeys(odd, "f" * 40), sha="f" * 40))
    for revision in odd:
        code, out, err = gpumem("hf", repo.repo_id, "--revision", revision, "--json")
        assert code == 0, err
        assert json.loads(out)["parameters"] == 124_439_808
    written = files_under(tmp_path)
    assert len(written) == 1 + len(odd)  # one entry and one ref per revision
    assert all(cache_root() in p.parents for p in written)
    for revision in odd:
        code, out, _ = gpumem("hf", repo.repo_id, "--revision", revision, "--json")
        assert code == 0 and json.loads(out)["source"] == "cache"


# -- concurrency, interrupts and corruption -------------------------------------------------------------------

SHA = "607a30d783dfa663caf39e06633721c8d4cfcd7e"


def gpt2_metadata() -> RepoMetadata:
    weights = WeightSet("", "safetensors", ("model.safetensors",), tuple(manifest_tensors("openai-community__gpt2")),
                        {"model_type": "gpt2"})
    return RepoMetadata(GPT2, SHA, "hub", (weights,), ("config.json", "model.safetensors"))


def test_threads_writing_and_reading_one_entry_never_see_it_half_written(tmp_path):
    cache, expected, seen, failures = ResultCache(tmp_path), gpt2_metadata(), [], []

    def work() -> None:
        try:
            for _ in range(25):
                cache.store("https://huggingface.co", "main", expected)
                seen.append(cache.load("https://huggingface.co", GPT2, SHA))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and len(seen) == 200
    assert all(entry == expected for entry in seen)  # never None: an entry is replaced whole, never removed
    assert not list(tmp_path.rglob("*.part"))


def test_concurrent_processes_share_one_valid_cache(hub, tmp_path):
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "gpumem", "hf", "Qwen/Qwen2.5-7B", GPT2, "--json"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    results = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], results
    # A run that starts after another has stored an entry answers from it: the same report, another source.
    answers = [[{k: v for k, v in r.items() if k not in ("source", "notes")} for r in json.loads(out)]
               for out, _ in results]
    assert answers[0] == answers[1] == answers[2]
    cache = ResultCache(tmp_path / "home" / "gpumem")
    assert cache.info().entries == 2 and not list(tmp_path.rglob("*.part"))
    hub.reset_log()
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and {r["source"] for r in json.loads(again.stdout)} == {"cache"}


def test_ctrl_c_mid_write_leaves_no_entry_then_the_next_run_refetches(hub, gpumem, monkeypatch):
    def interrupted(*args) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # the entry is written, not yet renamed into place
        patch.setattr("gpumem.reading.files.os.replace", interrupted)
        code, _, err = gpumem("hf", GPT2, "--json")
    assert code == 130 and err.strip() == "Interrupted."
    assert not list(cache_root().rglob("*.part")) and not list(cache_root().rglob("*.json"))
    code, out, _ = gpumem("hf", GPT2, "--json")
    assert code == 0 and json.loads(out)["source"] == "hub"
    code, out, _ = gpumem("hf", GPT2, "--json")
    assert code == 0 and json.loads(out)["source"] == "cache"


@pytest.mark.parametrize("garbage", [b"", b'{"repo_id": "openai-community/gpt2", "revis', b"\xff\xfe\x00", b"[]",
                                     b'{"repo_id": "someone/else"}'])
def test_a_corrupt_entry_is_ignored_and_refetched(hub, gpumem, garbage):
    code, first, _ = gpumem("hf", GPT2, "--json")
    assert code == 0
    (entry,) = cache_root().rglob(f"{hub.repos[GPT2].sha}.json")
    entry.write_bytes(garbage)
    code, second, err = gpumem("hf", GPT2, "--json")
    assert code == 0 and "Traceback" not in err
    assert json.loads(second)["source"] == "hub"
    assert json.loads(second)["parameters"] == json.loads(first)["parameters"]
    assert json.loads(entry.read_text())["repo_id"] == GPT2  # rewritten whole


# -- Ctrl-C ---------------------------------------------------------------------------------------------------

def test_first_ctrl_c_exits_130_at_once_while_requests_hang(hub):
    """Workers blocked on a Hub that answers in 30 s are not waited for: one SIGINT ends the run."""
    hub.latency = 30.0
    assert_interrupted_at_once(hub.endpoint, ["hf", "meta-llama/Llama-2-70b-hf", GPT2, "--no-cache"],
                               lambda: bool(hub.requests))
