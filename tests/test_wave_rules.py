"""The fetcher's rules on the HTTP-thread path: a repo's safetensors header wave (fetch_repo -> _HeaderWave ->
HubClient.start) keeps what the blocking path keeps — redirect rules and cap, the token's origin, retries within
the deadline, a stalled server cut at the deadline, a second read for a long header, one clean error (never a
hang) when something fails on the HTTP thread, and nothing left in flight afterwards. No network: loopback fake
Hubs over HTTP and HTTPS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import pytest
from conftest import assert_interrupted_at_once

from gpumem.errors import GpumemError, HubUnavailable
from gpumem.reading import transport
from gpumem.reading.fetch import fetch_repo
from gpumem.reading.hub import HubClient
from gpumem_dev.fakehub import FakeFile, FakeHub, synthetic_sharded_repo
from gpumem_dev.fakehub.formats import json_file, model_repo
from gpumem_dev.fakehub.scripted import Reply, ScriptedServer
from gpumem_dev.fuzz import header

SHARDED = "gpumem-wave/rules-8"
LONG_HEADER = "gpumem-wave/long-header"
SHA = "b" * 40
TOKEN = "hf_wavetokenwavetokenwavetoken"


def _long_header_repo():
    """One model.safetensors whose header (~100 kB of metadata) is longer than the 64 KiB first read."""
    text = json.dumps({"__metadata__": {"format": "pt", "pad": "x" * 100_000},
                       "w": {"dtype": "F16", "shape": [4, 4], "data_offsets": [0, 32]}})
    prefix = header(text)
    return model_repo(LONG_HEADER, {"model.safetensors": FakeFile(prefix, len(prefix) + 32),
                                    "config.json": json_file({"model_type": "llama"})})


@pytest.fixture(scope="module")
def own_hub():
    with FakeHub([synthetic_sharded_repo(SHARDED, n_shards=8, num_layers=4), _long_header_repo()]) as running:
        yield running


@pytest.fixture
def wave_hub(own_hub):
    own_hub.reset_log()
    own_hub.reset_faults()
    yield own_hub
    own_hub.reset_faults()


def bounded(call: Callable[[], object], seconds: float) -> tuple[object, BaseException | None, float]:
    """Run `call` on a thread: (result, error, seconds taken); fails the test if it has not ended in `seconds`
    (a lost callback on the HTTP thread would wait forever)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    error = outcome.get("error")
    return outcome.get("result"), error if isinstance(error, BaseException) else None, time.monotonic() - started


def nothing_in_flight(client: HubClient) -> bool:
    """No transfer of this client's transport left on the HTTP thread, nor a timer of it."""
    driver = transport._driver()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        running = [t for t in list(driver.running.values()) if t.transport is client.transport]
        timers = [t for t in list(driver.timers) if t[2] is client.transport]
        if not running and not timers:
            return True
        time.sleep(0.02)
    return False


def scripted_repo(server: ScriptedServer, shard: Reply) -> None:
    """A one-shard repo org/m on a scripted Hub: model info, config.json, no index, and `shard` as the answer to
    the shard's resolve (pinned to the sha)."""
    info = {"sha": SHA, "siblings": [{"rfilename": "config.json"},
                                     {"rfilename": "model.safetensors", "lfs": {"size": 1000}}]}
    server.on("/api/models/org/m/revision/main", Reply(200, {}, json.dumps(info).encode()))
    server.on("/org/m/resolve/main/config.json", Reply(200, {}, b'{"model_type": "llama"}'))
    server.on("/org/m/resolve/main/model.safetensors.index.json", Reply(404, {"X-Error-Code": "EntryNotFound"}))
    server.on(f"/org/m/resolve/{SHA}/model.safetensors", shard)


# -- redirects ---------------------------------------------------------------------------------------------------

def test_a_shard_redirect_to_an_address_curl_cannot_take_is_one_clean_error_not_a_hang():
    with ScriptedServer() as server:
        scripted_repo(server, Reply(302, {"Location": "/cdn/w\xe9ights"}))  # a raw non-ASCII byte
        client = HubClient(server.url, False, deadline=30)
        _, error, took = bounded(lambda: fetch_repo(client, "org/m"), 10)
    assert isinstance(error, HubUnavailable) and "redirected to an address gpumem cannot use" in str(error)
    assert took < 5 and nothing_in_flight(client)


def test_a_shard_redirect_to_an_address_urlsplit_refuses_is_one_clean_error():
    with ScriptedServer() as server:
        scripted_repo(server, Reply(302, {"Location": "http://[cdn/model.safetensors"}))  # its bracket never closes
        client = HubClient(server.url, False, deadline=30)
        _, error, took = bounded(lambda: fetch_repo(client, "org/m"), 10)
    assert isinstance(error, HubUnavailable) and "redirected to an address gpumem cannot use" in str(error)
    assert took < 5 and nothing_in_flight(client)


def test_a_shard_redirect_from_https_to_http_is_refused_and_the_token_stays_with_the_hub(ca, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca[1])
    with ScriptedServer(tls=ca[0]) as server, ScriptedServer() as plain:
        scripted_repo(server, Reply(302, {"Location": f"{plain.url}/cdn/model.safetensors"}))
        client = HubClient(server.url, TOKEN, retries=0)
        _, error, _ = bounded(lambda: fetch_repo(client, "org/m"), 10)
        assert isinstance(error, HubUnavailable) and "from https to an insecure address" in str(error)
        assert not plain.seen()
        assert server.seen(f"/org/m/resolve/{SHA}/model.safetensors")[0].headers["authorization"] == f"Bearer {TOKEN}"
        assert TOKEN not in str(error)


def test_a_shard_read_redirected_to_another_origin_never_carries_the_token(ca, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca[1])
    text = json.dumps({"w": {"dtype": "F16", "shape": [4, 4], "data_offsets": [0, 32]}})
    weights = header(text) + bytes(32)
    with ScriptedServer(tls=ca[0]) as server:
        scripted_repo(server, Reply(302, {"Location": f"{server.other_url}/cdn/model.safetensors?sig=1"}))
        server.on("/cdn/model.safetensors", Reply(200, {}, weights))  # ignores Range: only the header is kept
        info = {"sha": SHA, "siblings": [{"rfilename": "config.json"},
                                         {"rfilename": "model.safetensors", "lfs": {"size": len(weights)}}]}
        server.on("/api/models/org/m/revision/main", Reply(200, {}, json.dumps(info).encode()))
        client = HubClient(server.url, TOKEN)
        metadata, error, _ = bounded(lambda: fetch_repo(client, "org/m"), 10)
        assert error is None and metadata is not None
        cdn = server.seen("/cdn/model.safetensors")
        assert len(cdn) == 1 and "authorization" not in cdn[0].headers and cdn[0].host.startswith("localhost")
        assert all("authorization" in seen.headers for seen in server.seen() if seen.host.startswith("127.0.0.1"))


def test_a_redirect_loop_on_a_shard_read_stops_at_the_cap(wave_hub):
    wave_hub.redirect_loop("model-00003")
    client = HubClient(wave_hub.endpoint, False)
    _, error, _ = bounded(lambda: fetch_repo(client, SHARDED), 20)
    assert isinstance(error, HubUnavailable) and "too many redirects" in str(error)
    assert nothing_in_flight(client)


# -- retries, the deadline, a stalled server ----------------------------------------------------------------------

def test_cut_short_and_dropped_shard_reads_are_retried_on_the_http_thread(wave_hub):
    wave_hub.truncate_next("/cdn/", count=2)
    wave_hub.drop_connection_next("/cdn/", count=2)
    client = HubClient(wave_hub.endpoint, False, backoff=0.05)
    metadata, error, _ = bounded(lambda: fetch_repo(client, SHARDED), 30)
    assert error is None and metadata.weight_sets[0].summary.count.parameters > 0
    cdn = [r for r in wave_hub.requests if r.path.startswith("/cdn/")]
    assert len(cdn) == 8 + 4  # each faulty read asked once more


def test_a_retry_after_past_the_deadline_ends_the_wave_at_once(wave_hub):
    wave_hub.fail_next("/cdn/", 503, 1, {"Retry-After": "25"})
    client = HubClient(wave_hub.endpoint, False, deadline=10)
    _, error, took = bounded(lambda: fetch_repo(client, SHARDED), 20)
    assert isinstance(error, HubUnavailable) and "deadline would pass" in str(error)
    assert took < 5 and nothing_in_flight(client)


def test_a_stalled_shard_read_ends_at_the_deadline_and_the_next_read_works(wave_hub):
    wave_hub.trickle_next("/cdn/", 5.0, count=1, headers_too=True)  # one CDN answer: a byte every 5 s
    client = HubClient(wave_hub.endpoint, False, deadline=1.5)
    _, error, took = bounded(lambda: fetch_repo(client, SHARDED), 15)
    assert isinstance(error, HubUnavailable) and "deadline passed" in str(error)
    assert took < 4 and nothing_in_flight(client)
    again = HubClient(wave_hub.endpoint, False)  # a second read in the same process
    metadata, error, _ = bounded(lambda: fetch_repo(again, SHARDED), 20)
    assert error is None and metadata.weight_sets[0].summary is not None


# -- the header itself ----------------------------------------------------------------------------------------------

def test_a_header_longer_than_its_first_range_gets_a_second_read_on_the_http_thread(wave_hub):
    client = HubClient(wave_hub.endpoint, False)
    metadata, error, _ = bounded(lambda: fetch_repo(client, LONG_HEADER), 20)
    assert error is None and metadata.weight_sets[0].summary.count.parameters == 16
    ranges = [r.headers["range"] for r in wave_hub.requests if r.path.startswith("/cdn/")]
    assert len(ranges) == 2 and ranges[0] == "bytes=0-65535" and ranges[1].startswith("bytes=65536-")


# -- a fault on the HTTP thread ---------------------------------------------------------------------------------------

def test_a_progress_hook_that_raises_on_the_http_thread_fails_the_read_instead_of_hanging(wave_hub):
    client = HubClient(wave_hub.endpoint, False)

    def broken(path: str) -> None:
        raise RuntimeError("a bug in the progress display")

    client.on_range_read = broken
    _, error, _ = bounded(lambda: fetch_repo(client, SHARDED), 20)
    assert isinstance(error, RuntimeError) and nothing_in_flight(client)
    assert not isinstance(error, GpumemError)
    metadata, error, _ = bounded(lambda: fetch_repo(HubClient(wave_hub.endpoint, False), SHARDED), 20)
    assert error is None and metadata is not None  # the HTTP thread lives on


def test_a_fault_handing_a_redirected_hop_to_the_transport_fails_the_read_instead_of_hanging(wave_hub, monkeypatch):
    real = transport.Transport.start

    def broken(self, method, url, headers, **options):
        if "/cdn/" in url:  # on the HTTP thread, in the callback of the Hub's redirect
            raise RuntimeError("a bug below the Hub client")
        return real(self, method, url, headers, **options)

    monkeypatch.setattr(transport.Transport, "start", broken)
    client = HubClient(wave_hub.endpoint, False)
    _, error, _ = bounded(lambda: fetch_repo(client, SHARDED), 20)
    assert isinstance(error, RuntimeError) and nothing_in_flight(client)


def test_the_transport_refuses_a_url_libcurl_cannot_take_as_one_clean_error():
    sender = transport.Transport(timeout=5, user_agent="test")
    for url in ("http://127.0.0.1:9/w\xe9", "http://127.0.0.1:9/a\r\nX: y"):
        with pytest.raises(transport.TransportError, match="could not be encoded"):
            sender.request("GET", url, {}, limit=10)


def test_ctrl_c_during_the_header_wave_exits_130_at_once(wave_hub):
    """The CLI's first SIGINT while every shard read trickles on the HTTP thread: 130, one line, no waiting."""
    wave_hub.trickle_next("/cdn/", 5.0, headers_too=True)
    assert_interrupted_at_once(wave_hub.endpoint, ["hf", SHARDED, LONG_HEADER, "--no-cache"],
                               lambda: len([r for r in wave_hub.requests if r.path.startswith("/cdn/")]) >= 9)


def test_many_repos_at_once_on_one_client_each_get_their_own_outcome(wave_hub):
    """Two waves on the HTTP thread at once (read_repos, as `gpumem hf A B` and estimate_many read): a shard that
    fails in one repo is that repo's error; the other repo is read whole."""
    from gpumem.errors import EntryNotFound
    from gpumem.reading.sources import HubOptions, read_repos

    shard = sorted(p for p in wave_hub.repos[SHARDED].files if p.endswith(".safetensors"))[5]
    wave_hub.fail_next(shard, 404, 1, {"X-Error-Code": "EntryNotFound"})
    options = HubOptions(endpoint=wave_hub.endpoint, token=False, use_cache=False)
    outcomes, error, _ = bounded(lambda: read_repos([SHARDED, LONG_HEADER], options=options, return_errors=True), 20)
    assert error is None and isinstance(outcomes, list)
    assert isinstance(outcomes[0], EntryNotFound) and shard in str(outcomes[0])
    assert outcomes[1].weight_sets[0].summary.count.parameters == 16


def test_the_progress_display_is_never_built_on_the_thread_that_reports_a_header(monkeypatch):
    """header_read runs on the HTTP thread: building the bar (rich's imports, 0.1-0.2 s) would stall every
    transfer there (measured: a 118-129 ms stall of a 100-shard wave on a terminal), so it happens elsewhere."""
    from gpumem.output import progress

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(progress.ReadProgress, "DELAY_S", 0.0)
    built_on: list[str] = []

    def slow_show(self) -> None:
        built_on.append(threading.current_thread().name)
        time.sleep(0.5)  # as a slow import would
        self.shown.set()

    monkeypatch.setattr(progress.ReadProgress, "_show", slow_show)
    with progress.ReadProgress(1, quiet=False) as shown:
        started = time.monotonic()
        for _ in range(3):
            shown.header_read("model.safetensors")
        assert time.monotonic() - started < 0.1
        assert shown.shown.wait(5)
    assert len(built_on) == 1 and built_on[0] != threading.current_thread().name


def test_cancel_is_answered_without_parsing_the_headers_already_arrived(wave_hub, monkeypatch):
    """cancel() once every header has arrived: the wave ends with Interrupted at once instead of parsing each
    queued header first (each parse slowed to 0.3 s here)."""
    from gpumem.errors import Interrupted
    from gpumem.reading import fetch

    real_parse, parsed = fetch.parse_header, []

    def slow_parse(*args, **kwargs):
        parsed.append(time.monotonic())
        time.sleep(0.3)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(fetch, "parse_header", slow_parse)
    client = HubClient(wave_hub.endpoint, False)
    arrived: list[str] = []
    cancelled_at: list[float] = []

    def count(path: str) -> None:  # on the HTTP thread, as each header's bytes are in
        arrived.append(path)
        if len(arrived) == 8:
            cancelled_at.append(time.monotonic())
            client.cancel()  # (from the HTTP thread itself: no parse is under way meanwhile)

    client.on_range_read = count
    _, error, _ = bounded(lambda: fetch_repo(client, SHARDED), 20)
    assert isinstance(error, Interrupted) and cancelled_at
    assert not [t for t in parsed if t > cancelled_at[0]]


def test_an_index_that_cannot_be_read_is_the_error_and_the_waiting_shard_reads_end(wave_hub):
    """Shard reads redirected before the index is in wait for its sizes; when the index fails, they end and the
    index's own error is raised (the documented order: model info, config, index, then wave 2)."""
    wave_hub.latency = 0.2  # the shards' resolves are answered while the index is still being retried
    wave_hub.fail_next("model.safetensors.index.json", 500, count=10)
    client = HubClient(wave_hub.endpoint, False, backoff=0.1, retries=2)
    _, error, took = bounded(lambda: fetch_repo(client, SHARDED), 20)
    assert isinstance(error, HubUnavailable) and "HTTP 500 for model.safetensors.index.json" in str(error), error
    assert nothing_in_flight(client) and took < 10
    resolved = [r for r in wave_hub.requests if "/resolve/" in r.path and r.path.endswith(".safetensors")]
    assert resolved and not [r for r in wave_hub.requests if r.path.startswith("/cdn/")]  # none read unsized


def test_a_gzip_bomb_for_a_shard_range_is_inflated_only_up_to_the_range(wave_hub):
    """A CDN answering a range read with 200 and a gzip body of 64 MiB of spaces: only the asked bytes are
    inflated, so the header read ends with the header's own error (8 spaces as its length), at once."""
    from gpumem.errors import BadHeader

    wave_hub.gzip_bomb_next("/cdn/", 64 << 20, count=1)
    client = HubClient(wave_hub.endpoint, False)
    _, error, took = bounded(lambda: fetch_repo(client, SHARDED), 20)
    assert isinstance(error, BadHeader) and "exceeds" in str(error), error
    assert took < 5 and nothing_in_flight(client)


def test_the_http_thread_starts_with_a_pycurl_that_lacks_the_stream_limit(monkeypatch):
    """M_MAX_CONCURRENT_STREAMS needs libcurl 7.67: a pycurl built on an older one (a distro's) has no such name,
    and the driver must still start (libcurl's own limit then), not fail every request with a traceback."""
    import pycurl

    monkeypatch.delattr(pycurl, "M_MAX_CONCURRENT_STREAMS")
    driver = transport._Driver()  # (its idle thread waits on its pipe for the rest of the session)
    assert driver.multi is not None
