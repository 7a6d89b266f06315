"""End to end: the real CLI against the loopback fake Hub (real HTTP, Range, redirects, errors)."""

from __future__ import annotations

import json

import pytest

from gpumem_dev.fakehub import GOOD_TOKEN, NO_ACCESS_TOKEN, repo_from_fixture

# Published exact counts (fixtures/hub/SOURCES.md).
PUBLISHED = [
    ("meta-llama/Llama-2-7b-hf", 6_738_415_616, {"F16": 6_738_415_616, "F32": 2_048}),
    ("meta-llama/Llama-2-70b-hf", 68_976_648_192, {"F16": 68_976_648_192, "F32": 5_120}),
    ("mistralai/Mixtral-8x7B-v0.1", 46_702_792_704, {"BF16": 46_702_792_704}),
    ("Qwen/Qwen2.5-7B", 7_615_616_512, {"BF16": 7_615_616_512}),
    ("openai-community/gpt2", 124_439_808, {"F32": 137_022_720}),
    ("microsoft/Phi-3-mini-4k-instruct", 3_821_079_552, None),
    ("meta-llama/Llama-3.1-8B", 8_030_261_248, {"BF16": 8_030_261_248}),
]


def as_json(out: str):
    return json.loads(out)


@pytest.mark.parametrize(("repo_id", "parameters", "stored"), PUBLISHED)
def test_exact_published_counts_over_http(hub, gpumem, repo_id, parameters, stored):
    code, out, err = gpumem("hf", repo_id, "--token", GOOD_TOKEN, "--json", "--no-cache")
    assert code == 0, err
    report = as_json(out)
    assert report["parameters"] == parameters
    assert report["source"] == "hub"
    assert report["revision"] == hub.repos[repo_id].sha
    if stored:
        assert report["stored_elements"] == stored


def test_llama2_70b_bytes_formula_and_recommendations(hub, gpumem):
    code, out, _ = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--token", GOOD_TOKEN, "--json", "--bits", "4",
                          "--no-cache")
    report = as_json(out)
    assert code == 0
    assert report["weight_bytes"] == 137_953_316_864
    assert report["formula"] == {"bits": 4, "overhead": 1.2, "memory_gb": pytest.approx(68_976_648_192 * 0.5 * 1.2 / 1e9)}
    assert report["formula_by_bits"]["16"] == pytest.approx(165.54, abs=0.01)
    assert report["recommendations"][0]["fits"]
    assert {"gpu", "count", "tp", "headroom_gb", "max_concurrency"} <= set(report["recommendations"][0])
    assert set(report["serving"]["per_gpu"]) == {"weights_bytes", "kv_cache_bytes", "activation_bytes",
                                                  "overhead_bytes", "total_bytes"}


def test_request_waves_range_reads_and_sha_pinning(hub, gpumem):
    repo = hub.repos["meta-llama/Llama-2-70b-hf"]
    code, _, err = gpumem("hf", repo.repo_id, "--token", GOOD_TOKEN, "--json", "--no-cache")
    assert code == 0, err
    api_calls = [r for r in hub.requests if r.path.startswith("/api/")]
    resolves = [r for r in hub.requests if "/resolve/" in r.path]
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    assert len(api_calls) == 1
    shard_reads = [r for r in resolves if r.path.endswith(".safetensors")]
    assert len(shard_reads) == 15 and len(cdn) == 15  # one read per shard: the index predicts header sizes
    assert all(f"/resolve/{repo.sha}/" in r.path for r in shard_reads)  # pinned to the commit
    assert all(r.headers.get("range", "").startswith("bytes=0-") for r in cdn)
    header_bytes = sum(repo.files[r.path.rsplit("/", 1)[1]].prefix.__len__() for r in shard_reads)
    cdn_bytes = sum(r.bytes_sent for r in cdn)
    assert cdn_bytes <= 1.25 * header_bytes + 16 * 1024 * 15


def test_token_only_reaches_the_hub_host_and_is_never_printed(hub, gpumem):
    code, out, err = gpumem("hf", "meta-llama/Llama-2-7b-hf", "--token", GOOD_TOKEN, "--no-cache", "--debug")
    assert code == 0
    with_auth = [r for r in hub.requests if "authorization" in r.headers]
    assert with_auth and all(r.host.startswith("127.0.0.1") for r in with_auth)
    assert not [r for r in hub.requests if r.host.startswith("localhost") and "authorization" in r.headers]
    assert GOOD_TOKEN not in out + err


def test_gated_repo_without_token_falls_back_to_the_snapshot(hub, gpumem):
    code, out, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--json", "--no-cache")
    assert code == 0
    report = as_json(out)
    assert report["source"] == "snapshot" and report["parameters"] == 68_976_648_192
    assert "gated" in err and "snapshot" in err


def test_gated_repo_outside_the_snapshot_explains_how_to_get_access(hub, gpumem):
    repo = repo_from_fixture("openai-community__gpt2", repo_id="acme/gated-gpt2", gated="manual")
    hub.add_repo(repo)
    code, out, err = gpumem("hf", "acme/gated-gpt2", "--no-cache")
    assert code == 4 and out == ""
    assert err.splitlines()[0] == "Error: acme/gated-gpt2 is gated: your request had no token"
    assert f"{hub.endpoint}/acme/gated-gpt2" in err and "Traceback" not in err
    code, _, err = gpumem("hf", "acme/gated-gpt2", "--token", NO_ACCESS_TOKEN, "--no-cache")
    assert code == 4 and "token has no access" in err and NO_ACCESS_TOKEN not in err


@pytest.mark.parametrize(("args", "code", "message"), [
    (("hf", "nobody/nothing"), 3, "repository nobody/nothing not found"),
    (("hf", "openai-community/gpt2", "--revision", "v9.9"), 3, "revision 'v9.9' not found"),
    (("hf", "not a repo"), 2, "invalid repo id"),
    (("hf", "openai-community/gpt2", "--gpu", "GTX 9999"), 2, "GTX 9999"),
    (("hf", "openai-community/gpt2", "--tp", "5"), 2, "5"),
])
def test_errors_are_one_line_with_an_exit_code(hub, gpumem, args, code, message):
    got, out, err = gpumem(*args, "--no-cache")
    assert got == code, err
    assert err.startswith("Error: ") and message in err.splitlines()[0] and "Traceback" not in err


def test_revision_refs_and_sha(hub, gpumem):
    repo = hub.repos["openai-community/gpt2"]
    code, out, _ = gpumem("hf", repo.repo_id, "--revision", repo.sha, "--json", "--no-cache")
    assert code == 0 and as_json(out)["revision"] == repo.sha


def test_second_run_uses_the_cache_with_one_request_and_offline_none(hub, gpumem):
    code, first, _ = gpumem("hf", "Qwen/Qwen2.5-7B", "--json")
    assert code == 0 and as_json(first)["source"] == "hub"
    hub.reset_log()
    code, second, _ = gpumem("hf", "Qwen/Qwen2.5-7B", "--json")
    assert code == 0 and as_json(second)["source"] == "cache" and len(hub.requests) == 1
    hub.reset_log()
    code, third, _ = gpumem("hf", "Qwen/Qwen2.5-7B", "--json", "--offline")
    assert code == 0 and as_json(third)["source"] == "cache" and hub.requests == []
    assert as_json(third)["parameters"] == as_json(first)["parameters"]


def test_offline_without_cache_or_snapshot_is_a_clear_error(hub, gpumem, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = gpumem("hf", "acme/unknown-model")
    assert code == 6 and "offline" in err and hub.requests == []


def test_server_ignoring_range_reads_headers_only(hub, gpumem):
    hub.ignore_range = True
    code, out, err = gpumem("hf", "mistralai/Mixtral-8x7B-v0.1", "--json", "--no-cache")
    assert code == 0, err
    assert as_json(out)["parameters"] == 46_702_792_704
    repo = hub.repos["mistralai/Mixtral-8x7B-v0.1"]
    headers = sum(len(f.prefix) for name, f in repo.files.items() if name.endswith(".safetensors"))
    # The server streams whole 5 GB shards; the client stops after the header (socket buffers aside).
    assert hub.bytes_sent < headers + 19 * 8 * 1024 * 1024


def test_transient_5xx_and_429_are_retried(hub, gpumem):
    hub.fail_next("/api/models/", status=503, count=2)
    hub.fail_next("config.json", status=429, count=1, headers={"Retry-After": "0"})
    code, out, err = gpumem("hf", "openai-community/gpt2", "--json", "--no-cache")
    assert code == 0, err and as_json(out)["parameters"] == 124_439_808


def test_many_repos_in_one_run_give_one_array(hub, gpumem, tmp_path):
    listing = tmp_path / "repos.txt"
    listing.write_text("# models to audit\nQwen/Qwen2.5-7B\nopenai-community/gpt2  # small\n")
    code, out, err = gpumem("hf", "microsoft/Phi-3-mini-4k-instruct", "--from-file", str(listing), "--json",
                            "--no-cache")
    assert code == 0, err
    assert [r["repo_id"] for r in as_json(out)] == ["microsoft/Phi-3-mini-4k-instruct", "Qwen/Qwen2.5-7B",
                                                      "openai-community/gpt2"]


def test_many_repos_with_one_failure_report_the_rest(hub, gpumem):
    code, out, err = gpumem("hf", "openai-community/gpt2", "nobody/nothing", "--json", "--no-cache")
    assert code == 3
    rows = as_json(out)
    assert rows[0]["parameters"] == 124_439_808 and rows[1]["exit_code"] == 3
    assert "nobody/nothing" in err


def test_table_output_has_no_escape_codes_when_piped(hub, gpumem):
    code, out, _ = gpumem("hf", "openai-community/gpt2", "--no-cache")
    assert code == 0 and "\x1b[" not in out
    assert "124,439,808" in out and "GB" in out


def test_a_cached_repo_still_answers_when_the_hub_goes_down(hub, gpumem, monkeypatch):
    code, _, _ = gpumem("hf", "Qwen/Qwen2.5-7B", "--json")
    assert code == 0
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: connection refused
    monkeypatch.setattr("gpumem.reading.hub.time.sleep", lambda seconds: None)
    code, out, err = gpumem("hf", "Qwen/Qwen2.5-7B", "--json")
    assert code == 0, err  # the first run cached the endpoint of the fake Hub, not this one: snapshot
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint + "/")  # same Hub, trailing slash: the same cache entry
    hub.fail_next("/api/models/", status=503, count=10)
    code, out, err = gpumem("hf", "Qwen/Qwen2.5-7B", "--json")
    assert code == 0 and as_json(out)["source"] == "cache"
    assert "may have moved" in err


def test_offline_finds_entries_whatever_the_endpoint_spelling(hub, gpumem, monkeypatch):
    assert gpumem("hf", "openai-community/gpt2", "--json")[0] == 0
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint + "/")
    code, out, _ = gpumem("hf", "openai-community/gpt2", "--json", "--offline")
    assert code == 0 and as_json(out)["source"] == "cache"


def test_option_errors_come_before_any_request(hub, gpumem, tmp_path):
    code, out, err = gpumem("hf", "openai-community/gpt2", "--gpu", "Voodoo 5")
    assert code == 2 and hub.requests == [] and err.startswith("Error: unknown GPU 'Voodoo 5'")
    code, _, err = gpumem("hf", "openai-community/gpt2", "--svg", str(tmp_path / "missing" / "x.svg"))
    assert code == 2 and hub.requests == [] and "does not exist" in err
    code, _, err = gpumem("hf", "openai-community/gpt2", "--file", "model.Q4_K_M.gguf", "--no-cache")
    assert code == 2 and "has no GGUF files" in err


def test_fit_reports_each_repo_and_the_worst_exit_code(hub, gpumem):
    code, out, err = gpumem("fit", "--gpu", "L4", "openai-community/gpt2", "nobody/nothing", "--json", "--no-cache")
    assert code == 3
    fitted, failed = as_json(out)  # the failed repo in place, in the same shape as hf and compare
    assert fitted["repo_id"] == "openai-community/gpt2"
    assert failed == {"repo_id": "nobody/nothing", "exit_code": 3,
                      "error": "repository nobody/nothing not found, or private and not visible to anonymous requests"}
    assert "Error: repository nobody/nothing not found" in err  # the id said once


@pytest.mark.parametrize("command", [("hf",), ("compare",), ("fit", "--gpu", "L4")])
def test_one_failed_repo_is_its_error_and_with_json_its_record(hub, gpumem, command):
    code, out, err = gpumem(*command, "nobody/nothing", "--no-cache")
    assert (code, out) == (3, "")
    assert err.splitlines()[0] == ("Error: repository nobody/nothing not found, or private and not visible to "
                                   "anonymous requests")
    code, out, err2 = gpumem(*command, "nobody/nothing", "--no-cache", "--json")
    assert code == 3 and err2 == err
    assert as_json(out) == [{"repo_id": "nobody/nothing", "exit_code": 3, "error": err.splitlines()[0][7:]}]
