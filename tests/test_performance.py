"""Round trips, bytes and start-up imports, checked structurally (no timing asserts; see scripts/benchmark.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from conftest import unwrap

from gpumem import api
from gpumem_dev.fakehub import GOOD_TOKEN, llama2_70b_repo, repo_from_fixture, synthetic_sharded_repo

REPO_405B = "gpumem-perf/Llama-3.1-405B-191-shards"  # its own id: the session Hub's other repos stay as they are


@pytest.fixture
def big_repo(hub):
    """The 191-shard Llama-3.1-405B layout, served by the session's fake Hub."""
    return hub.add_repo(synthetic_sharded_repo(REPO_405B))


def _read(hub, repo_id: str) -> None:
    api.inspect_repo(repo_id, options=api.HubOptions(endpoint=hub.endpoint, token=GOOD_TOKEN, use_cache=False))


def _shard_requests(hub, shards: list[str]) -> tuple[list, list]:
    """(resolve requests on the Hub host, CDN requests) for the given weight files."""
    resolves = [r for r in hub.requests if "/resolve/" in r.path and r.path.endswith(tuple(shards))]
    cdn = [r for r in hub.requests if r.path.startswith("/cdn/")]
    return resolves, cdn


@pytest.mark.parametrize("make_repo", [llama2_70b_repo, lambda: synthetic_sharded_repo(REPO_405B)],
                         ids=["15-shards", "191-shards"])
def test_one_wave_of_shard_reads_each_read_once_and_bytes_bounded(hub, make_repo):
    repo = hub.add_repo(make_repo())
    shards = sorted(p for p in repo.files if p.endswith(".safetensors"))
    _read(hub, repo.repo_id)

    resolves, cdn = _shard_requests(hub, shards)
    assert sorted(r.path.rsplit("/", 1)[1] for r in resolves) == shards  # one resolve per shard, none twice
    assert all(r.method == "GET" and r.status == 302 for r in resolves)  # no HEAD round trip before the read
    assert len(cdn) == len(shards) and all(r.status == 206 and r.headers.get("range") for r in cdn)
    assert len(hub.requests) == 3 + 2 * len(shards)  # wave 1 (model info, config, index) + resolve/CDN per shard

    header_bytes = {path: len(repo.files[path].prefix) for path in shards}  # the 8-byte length + JSON header
    for record in cdn:
        shard = record.path.rsplit("%2F", 1)[-1].rsplit("/", 1)[-1]
        assert record.bytes_sent >= header_bytes[shard]  # the first read held the whole header: no second read
    weight_bytes = sum(r.bytes_sent for r in resolves + cdn)
    assert weight_bytes <= 1.25 * sum(header_bytes.values()) + 16 * 1024 * len(shards)


def test_shard_reads_fill_the_concurrency_at_once(hub, big_repo, monkeypatch):
    # Hold the first MAX_CONCURRENCY resolve answers until all of them have arrived: a client that reads
    # one by one (or with a lock around requests) never gets there. The cap (48) trades a few rounds at
    # the Hub's latency for reusing connections: 191 TLS handshakes per host cost more than they save.
    from gpumem.constants import MAX_CONCURRENCY

    wave = min(MAX_CONCURRENCY, sum(p.endswith(".safetensors") for p in big_repo.files))
    barrier = threading.Barrier(wave, timeout=20)
    arrived, answered, broken = [], [], []
    answer = hub.answer

    def gated(record):
        if "/resolve/" in record.path and record.path.endswith(".safetensors") and len(arrived) < wave:
            arrived.append(time.monotonic())
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                broken.append(record.path)
            answered.append(time.monotonic())
        return answer(record)

    monkeypatch.setattr(hub, "answer", gated)
    _read(hub, REPO_405B)
    assert not broken
    assert len(arrived) == wave and max(arrived) <= min(answered)  # every read started before the first ended


def _index_held_until(hub, monkeypatch, shards: int) -> dict:
    """Hold the index's answer until `shards` weight-file reads have reached the Hub (at most 20 s)."""
    state = {"resolves": 0, "all_in": threading.Event(), "held_until_all_in": None}
    answer = hub.answer

    def gated(record):
        if record.path.endswith("model.safetensors.index.json"):
            state["held_until_all_in"] = state["all_in"].wait(20)
        elif "/resolve/" in record.path and record.path.endswith(".safetensors"):
            state["resolves"] += 1
            if state["resolves"] == shards:
                state["all_in"].set()
        return answer(record)

    monkeypatch.setattr(hub, "answer", gated)
    return state


def test_shard_reads_start_before_the_index_arrives_and_are_still_sized_by_it(hub, monkeypatch):
    # The 9 MB index of DeepSeek-V3 takes a redirect, its transfer and its parse: the header reads go out as soon
    # as model info lists the shards, and take their sizes from the index when the Hub redirects them to the CDN.
    repo = hub.add_repo(llama2_70b_repo())
    shards = sorted(p for p in repo.files if p.endswith(".safetensors"))
    state = _index_held_until(hub, monkeypatch, len(shards))
    _read(hub, repo.repo_id)
    assert state["held_until_all_in"] is True  # every shard's read reached the Hub while the index was held
    resolves, cdn = _shard_requests(hub, shards)
    assert len(resolves) == len(cdn) == len(shards)  # still one read per shard
    for record in cdn:
        shard = record.path.rsplit("/", 1)[-1]
        assert len(repo.files[shard].prefix) <= record.bytes_sent <= 1.25 * len(repo.files[shard].prefix) + 16 * 1024


def test_a_big_index_is_not_waited_for_and_reads_stay_one_per_shard_and_bounded(hub, monkeypatch):
    # An index over fetch._WAIT_FOR_INDEX_UP_TO (DeepSeek-V3's: 8.9 MB) is not waited for: each CDN read takes a size
    # guessed from the listing. The threshold is lowered so that Llama-2-70B's index counts as big, and the index is
    # held until every shard's CDN read has reached the Hub: none waited, one read each, bytes still bounded.
    from gpumem.reading import fetch

    monkeypatch.setattr(fetch, "_WAIT_FOR_INDEX_UP_TO", 0)
    repo = hub.add_repo(llama2_70b_repo())
    shards = sorted(p for p in repo.files if p.endswith(".safetensors"))
    state = {"cdn": 0, "all_in": threading.Event(), "held_until_all_in": None}
    answer = hub.answer

    def gated(record):
        if record.path.endswith("model.safetensors.index.json"):
            state["held_until_all_in"] = state["all_in"].wait(20)
        elif record.path.startswith("/cdn/"):
            state["cdn"] += 1
            if state["cdn"] == len(shards):
                state["all_in"].set()
        return answer(record)

    monkeypatch.setattr(hub, "answer", gated)
    _read(hub, repo.repo_id)
    assert state["held_until_all_in"] is True
    resolves, cdn = _shard_requests(hub, shards)
    assert len(resolves) == len(cdn) == len(shards)
    for record in cdn:
        shard = record.path.rsplit("/", 1)[-1]
        assert len(repo.files[shard].prefix) <= record.bytes_sent <= 1.25 * len(repo.files[shard].prefix) + 16 * 1024


def test_a_failed_index_read_is_the_error_and_no_shard_is_read_past_the_hub(hub):
    from gpumem.errors import AccessError

    repo = hub.add_repo(repo_from_fixture("meta-llama__Llama-2-70b-chat-hf", repo_id="gpumem-perf/index-refused"))
    hub.fail_next("gpumem-perf/index-refused/resolve/main/model.safetensors.index.json", status=403)
    with pytest.raises(AccessError):
        _read(hub, repo.repo_id)
    assert not [r for r in hub.requests if r.path.startswith("/cdn/")]


def test_one_worker_reads_a_sharded_repo(hub):
    # With a single worker the wave-1 calls run one after another: the index comes first, so the header reads
    # (started by the model-info call) never wait for a call that has not run.
    from gpumem.reading.fetch import fetch_repo
    from gpumem.reading.hub import HubClient

    repo = hub.add_repo(llama2_70b_repo())
    result = []
    reader = threading.Thread(target=lambda: result.append(fetch_repo(HubClient(hub.endpoint, GOOD_TOKEN,
                                                                                 concurrency=1), repo.repo_id)))
    reader.start()
    reader.join(60)
    assert result and result[0].weight_sets[0].summary.count.parameters == 68_976_648_192


def test_a_server_that_does_not_redirect_gets_first_reads_sized_from_the_index_once_it_is_read(hub, monkeypatch):
    # A server answering weight-file reads itself (no CDN redirect) takes the first hop's range: reads that start
    # once the index is read ask its size at once (with one worker, all of them), so a 69 KB header is one read.
    from gpumem.reading.fetch import fetch_repo
    from gpumem.reading.hub import HubClient

    repo = hub.add_repo(synthetic_sharded_repo("gpumem-perf/served-directly", n_shards=2))
    assert min(len(f.prefix) for p, f in repo.files.items() if p.endswith(".safetensors")) > 64 * 1024
    answer = hub.answer

    def served_directly(record):
        shard = record.path.rsplit("/", 1)[-1]
        if "/resolve/" in record.path and shard.endswith(".safetensors") and shard in repo.files:
            return hub._ranged(repo.files[shard], record, {"Content-Type": "application/octet-stream"})
        return answer(record)

    monkeypatch.setattr(hub, "answer", served_directly)
    result = []
    reader = threading.Thread(target=lambda: result.append(fetch_repo(HubClient(hub.endpoint, GOOD_TOKEN,
                                                                                 concurrency=1), repo.repo_id)))
    reader.start()
    reader.join(60)
    assert result
    shard_reads = [r for r in hub.requests if r.path.endswith(".safetensors")]
    assert len(shard_reads) == 2 and all(r.status == 206 for r in shard_reads)


def _modules_loaded_by(argv: list[str]) -> tuple[set[str], str]:
    """The modules a fresh interpreter holds after `gpumem ARGV` (stdout dropped), and what it said on stderr."""
    code = ("import contextlib, io, sys\n"
            "from gpumem.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(sys.argv[1:])\n    except SystemExit:\n        pass\n"
            "modules = sorted(sys.modules)\n"
            "import json\n"
            "print(json.dumps(modules))")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True,
                          env={**os.environ, "COLUMNS": "80"})
    return set(json.loads(done.stdout)), done.stderr


def test_help_imports_no_http_stack_or_rich():
    modules, _ = _modules_loaded_by(["--help"])
    assert not {name.split(".")[0] for name in modules} & {"requests", "urllib3", "huggingface_hub", "rich", "pycurl"}
    assert not modules & {"gpumem.api", "gpumem.reading.hub"}


@pytest.mark.parametrize("argv", [["--bogus"], ["hf", "Qwen/Qwen2.5-7B", "--context", "lots"]])
def test_a_usage_error_is_said_without_loading_the_writers_or_the_api(argv):
    # Wrapping one line on stderr needs output.wrapping only: not the tables, reports or planner behind render.
    modules, err = _modules_loaded_by(argv)
    assert err.startswith("Error: ") and "Hint: see `gpumem" in err
    assert "gpumem.output.wrapping" in modules
    assert not modules & {"gpumem.output.render", "gpumem.output.tables", "gpumem.output.views",
                          "gpumem.output.report", "gpumem.api", "gpumem.planning.memory", "gpumem.reading.hub"}
    assert not {name.split(".")[0] for name in modules} & {"rich", "pycurl"}


@pytest.mark.parametrize("argv", [["hf", "bad id!!"], ["hf", "https://huggingface.co/Qwen/Qwen2.5-7B/tree/.."],
                                  ["hf", "--revision", "..", "Qwen/Qwen2.5-7B"], ["compare", "a/b", "c d"],
                                  ["train", "bad id!!"], ["fit", "Qwen/Qwen2.5-7B", "--gpu", "NOPE"],
                                  ["hf", "Qwen/Qwen2.5-7B", "--gpu", "NOPE"], ["train", "Qwen/Qwen2.5-7B", "--gpu", "NOPE"]])
def test_a_bad_repo_id_revision_or_gpu_is_refused_before_the_api_or_the_http_stack_loads(argv, gpumem):
    # Checked while the command line is read (click callbacks): one line, exit code 2, and nothing of the answer's
    # path imported (hf 'bad id!!': 0.51 -> 0.19 s, fit X --gpu NOPE: 0.36 -> 0.24 s, medians of 6, load ~1.9).
    modules, err = _modules_loaded_by(argv)
    assert err.startswith(("Error: invalid repo id", "Error: invalid revision", "Error: unknown GPU"))
    assert not modules & {"gpumem.api", "gpumem.output.render", "gpumem.output.report", "gpumem.planning.plans",
                          "gpumem.reading.hub", "gpumem.reading.fetch", "gpumem.reading.cache"}
    assert not {name.split(".")[0] for name in modules} & {"rich", "pycurl"}
    code, _, said = gpumem(*argv)
    assert code == 2 and unwrap(said) == unwrap(err)


def test_calc_loads_neither_the_readers_nor_a_config_parser():
    # `gpumem calc` prints a formula and weights-only plans: no Hub, cache or config reading, no rich (piped),
    # no json or csv writer for a table, no traceback formatting.
    modules, err = _modules_loaded_by(["calc", "--params", "70B"])
    assert err == ""
    assert "gpumem.planning.plans" in modules
    assert not modules & {"gpumem.model.architecture", "gpumem.reading.hub", "gpumem.reading.cache",
                          "gpumem.reading.fetch", "gpumem.planning.training", "json", "csv", "traceback"}
    assert not {name.split(".")[0] for name in modules} & {"rich", "pycurl"}


def test_the_command_runs_without_the_cyclic_collector_and_exits_past_it(monkeypatch):
    import gc

    from gpumem import cli

    seen = []
    monkeypatch.setattr(cli, "main", lambda: seen.append(gc.isenabled()))
    try:
        cli.run()
        frozen = gc.get_freeze_count()
    finally:  # this test process goes on: its objects collectable again
        gc.unfreeze()
        gc.enable()
    assert seen == [False] and frozen > 0
