"""The Hub client, request by request, against a scripted loopback server (real HTTP, no network)."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from gpumem.errors import (
    AuthError,
    BadConfig,
    BadHeader,
    EntryNotFound,
    GatedRepo,
    HubUnavailable,
    RepoNotFound,
    RevisionNotFound,
    UsageError,
)
from gpumem.reading import hub as hub_module
from gpumem.reading.hub import HubClient
from gpumem_dev.fakehub.scripted import Reply, ScriptedServer

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_secretsecretsecretsecret"
INFO = {"id": "org/model", "sha": SHA, "gated": False, "private": False,
        "siblings": [{"rfilename": "config.json", "size": 10},
                     {"rfilename": "model.safetensors", "size": 999, "lfs": {"size": 1000, "sha256": "x"}}]}
INFO_PATH = "/api/models/org/model/revision/main"


def json_reply(document, status=200, **headers) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **headers}, json.dumps(document).encode())


@pytest.fixture
def server():
    with ScriptedServer() as running:
        yield running


@pytest.fixture
def no_sleep(monkeypatch):
    """Record retry waits instead of sleeping them."""
    slept = []
    monkeypatch.setattr("gpumem.reading.transport.Transport.sleep", lambda self, seconds: slept.append(seconds))
    return slept


def client(server, token=False, **kwargs) -> HubClient:
    return HubClient(server.url, token, backoff=0.0, **kwargs)


def test_resolve_encodes_the_revision_and_lists_files_with_sizes(server):
    server.on("/api/models/org/model/revision/refs%2Fpr%2F3", json_reply(INFO))
    listing = client(server).resolve("org/model", "refs/pr/3")
    assert listing.sha == SHA
    sizes = {f.path: f.size for f in listing.files}
    assert sizes == {"config.json": 10, "model.safetensors": 1000}  # the LFS size wins over the pointer's
    assert server.seen()[0].query == "blobs=true"


def test_token_goes_to_the_hub_origin_but_never_across_a_redirect(server):
    server.on(f"/org/model/resolve/{SHA}/model.safetensors",
              Reply(302, {"Location": f"{server.other_url}/blob?sig=abc"}))
    server.on("/blob", Reply(206, {"Content-Range": "bytes 0-63/1000"}, b"x" * 64))
    data = client(server, TOKEN).read_range("org/model", SHA, "model.safetensors", 0, 64)
    assert data == b"x" * 64
    hub_request, cdn_request = server.seen()
    assert hub_request.headers["authorization"] == f"Bearer {TOKEN}"
    assert "authorization" not in cdn_request.headers
    assert hub_request.headers["range"] == cdn_request.headers["range"] == "bytes=0-63"


def test_token_never_goes_to_another_port_of_the_same_host(server):
    with ScriptedServer() as other:
        other_port = other.url.rsplit(":", 1)[1]
        server.on(f"/org/model/resolve/{SHA}/model.safetensors",
                  Reply(307, {"Location": f"http://127.0.0.1:{other_port}/blob"}))
        other.on("/blob", Reply(206, {"Content-Range": "bytes 0-7/8"}, b"x" * 8))
        client(server, TOKEN).read_range("org/model", SHA, "model.safetensors", 0, 8)
        assert "authorization" not in other.seen()[0].headers


def test_a_server_ignoring_range_is_read_only_up_to_the_limit(server):
    body = b"h" * 100 + b"\0" * 5_000_000
    server.on(f"/org/model/resolve/{SHA}/model.safetensors", Reply(200, {}, body))
    data = client(server).read_range("org/model", SHA, "model.safetensors", 0, 100)
    assert data == b"h" * 100


def test_relative_redirects_and_the_redirect_cap(server):
    server.on("/org/model/resolve/main/config.json",
              Reply(307, {"Location": f"/api/resolve-cache/models/org/model/{SHA}/config.json", "X-Repo-Commit": SHA}))
    server.on(f"/api/resolve-cache/models/org/model/{SHA}/config.json", json_reply({"a": 1}))
    content, commit = client(server).read_file("org/model", "main", "config.json")
    assert content == b'{"a": 1}' and commit == SHA  # the commit the Hub named on the way
    server.on(f"/org/model/resolve/{SHA}/loop.json",
              Reply(302, {"Location": f"{server.url}/org/model/resolve/{SHA}/loop.json"}))
    with pytest.raises(HubUnavailable, match="too many redirects"):
        client(server).read_file("org/model", SHA, "loop.json")


@pytest.mark.parametrize("value", ["12abc", "²", "-5", ""])
def test_odd_content_length_headers_are_ignored_not_a_crash(server, value):
    # No Content-Length http.client can use: the body is read to the connection's end.
    server.on(f"/org/model/resolve/{SHA}/config.json", Reply(200, {"X-Length": value}, b'{"a": 1}', content_length=False))
    server.on(f"/org/model/resolve/{SHA}/model.safetensors", Reply(200, {}, b"x" * 64, content_length=False))
    hub = client(server, retries=0)
    assert hub.read_file("org/model", SHA, "config.json")[0] == b'{"a": 1}'
    assert hub.read_range("org/model", SHA, "model.safetensors", 0, 64) == b"x" * 64
    assert [r.received for r in hub.log] == [0, 0]


ERRORS = [
    (401, {"X-Error-Code": "RepoNotFound"}, RepoNotFound, "not found"),
    (404, {"X-Error-Code": "RevisionNotFound"}, RevisionNotFound, "revision 'main' not found"),
    (401, {"X-Error-Code": "GatedRepo"}, GatedRepo, "gated"),
    (403, {"X-Error-Code": "GatedRepo"}, GatedRepo, "gated"),
    (404, {"X-Error-Code": "EntryNotFound"}, EntryNotFound, "config.json not found"),
    (401, {"X-Error-Message": "Invalid credentials in Authorization header"}, AuthError, "rejected the token"),
]


@pytest.mark.parametrize(("status", "headers", "error", "message"), ERRORS)
def test_hub_errors_become_gpumem_errors(server, status, headers, error, message):
    server.on("/org/model/resolve/main/config.json", Reply(status, headers))
    with pytest.raises(error, match=message) as info:
        client(server, TOKEN).read_file("org/model", "main", "config.json")
    assert TOKEN not in str(info.value) and TOKEN not in (info.value.hint or "")


def test_gated_error_gives_the_access_url_and_token_advice(server):
    server.on("/org/model/resolve/main/config.json", Reply(401, {"X-Error-Code": "GatedRepo"}))
    with pytest.raises(GatedRepo) as info:
        client(server).read_file("org/model", "main", "config.json")
    assert f"{server.url}/org/model" in info.value.hint and "HF_TOKEN" in info.value.hint


def test_429_honours_retry_after_then_succeeds(server, no_sleep):
    server.on(INFO_PATH, Reply(429, {"Retry-After": "2"}), Reply(503), json_reply(INFO))
    assert client(server).resolve("org/model").sha == SHA
    assert no_sleep[0] == 2.0 and len(no_sleep) == 2


@pytest.mark.parametrize("value", ["²", "Fri, 31 Dec 99999 23:59:59 GMT", "Mon, 01 Jan 1 00:00:00 GMT", "9" * 400])
def test_odd_retry_after_falls_back_to_backoff_or_the_cap(server, no_sleep, value):
    server.on(INFO_PATH, Reply(429, {"Retry-After": value}), json_reply(INFO))
    assert client(server).resolve("org/model").sha == SHA and no_sleep in ([0.0], [30.0])


def test_retry_after_is_capped(server, no_sleep):
    server.on(INFO_PATH, Reply(429, {"Retry-After": "86400"}), json_reply(INFO))
    client(server, deadline=None).resolve("org/model")
    assert no_sleep == [30.0]


def test_persistent_5xx_and_connection_errors_end_in_hub_unavailable(server, no_sleep):
    server.on(INFO_PATH, Reply(502))
    with pytest.raises(HubUnavailable, match="HTTP 502"):
        client(server, retries=2).resolve("org/model")
    assert len(server.seen()) == 3
    server.on(INFO_PATH, Reply(drop=True))
    with pytest.raises(HubUnavailable, match="could not reach"):
        client(server, retries=1).resolve("org/model")


@pytest.mark.parametrize("repo_id", ["", "a/b/c", "org/model..name", "-bad/x", "org/" + "x" * 100, "../etc",
                                     "org/x\x1b[2J", "org/x.git"])
def test_invalid_repo_ids_are_usage_errors_before_any_request(server, repo_id):
    with pytest.raises(UsageError, match="invalid repo id"):
        client(server).resolve(repo_id)
    assert not server.seen()


def test_a_response_cut_short_is_retried_then_reported(server, no_sleep):
    server.on(f"/org/model/resolve/{SHA}/model.safetensors",
              Reply(206, {"Content-Range": "bytes 0-99/1000"}, b"x" * 100, send=10))
    with pytest.raises(HubUnavailable, match="cutting the response short"):
        client(server, retries=2).read_range("org/model", SHA, "model.safetensors", 0, 100)
    assert len(server.seen()) == 3


def test_explicit_token_wins_and_false_means_none(monkeypatch, server):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    monkeypatch.delenv("HF_HUB_DISABLE_IMPLICIT_TOKEN")
    assert client(server, None).has_token
    assert not client(server, False).has_token
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")  # huggingface_hub's rule: only explicit tokens
    assert not client(server, None).has_token and client(server, "hf_explicit").has_token


def test_a_shared_client_deadline_bounds_each_operation_not_its_life(monkeypatch, server):
    server.on(INFO_PATH, json_reply(INFO))
    shared = client(server, deadline=0.2)
    time.sleep(0.3)  # an hour-long notebook session between two calls
    with pytest.raises(HubUnavailable, match="deadline"):
        shared.resolve("org/model")
    shared.restart_deadline()
    assert shared.resolve("org/model").sha == SHA


# -- hostile answers ----------------------------------------------------------------------------------

def test_a_gzip_bomb_model_info_is_inflated_only_to_the_cap(server, monkeypatch):
    monkeypatch.setattr("gpumem.constants.SMALL_FILE_CAP", 1 << 20)
    bomb = gzip.compress(b'{"sha": "' + b" " * (64 << 20), compresslevel=9)  # 64 MiB from ~64 KiB
    server.on(INFO_PATH, Reply(200, {"Content-Encoding": "gzip"}, bomb))
    with pytest.raises(HubUnavailable, match="over 1,048,576 bytes"):
        client(server).resolve("org/model")


def test_a_gzipped_answer_is_read(server):
    server.on(INFO_PATH, Reply(200, {"Content-Encoding": "gzip"}, gzip.compress(json.dumps(INFO).encode())))
    assert client(server).resolve("org/model").sha == SHA


@pytest.mark.parametrize(("info", "message"), [
    ({"sha": SHA, "siblings": 5}, "unreadable model-info"),
    ({"sha": "../../etc"}, "no valid commit sha"),
    ([1, 2], "unreadable model-info"),
])
def test_malformed_model_info_is_the_hubs_fault_not_the_users(server, info, message):
    server.on(INFO_PATH, json_reply(info))
    with pytest.raises(HubUnavailable, match=message):
        client(server).resolve("org/model")


def test_model_info_nested_200000_deep_is_refused(server):
    server.on(INFO_PATH, Reply(200, {}, b'{"sha": "' + SHA.encode() + b'", "x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"))
    with pytest.raises(HubUnavailable, match="unreadable model-info"):
        client(server).resolve("org/model")


def test_odd_statuses_are_clean_errors(server):
    server.on("/org/model/resolve/main/config.json", Reply(204))
    with pytest.raises(HubUnavailable, match="HTTP 204 with no file content for config.json"):
        client(server).read_file("org/model", "main", "config.json")
    server.on("/org/model/resolve/main/config.json", Reply(302, {}, b'{"a": 1}'))
    with pytest.raises(HubUnavailable, match="HTTP 302 without saying where"):
        client(server).read_file("org/model", "main", "config.json")
    server.on(f"/org/model/resolve/{SHA}/model.safetensors", Reply(416, {"Content-Range": "bytes */*"}))
    with pytest.raises(BadHeader, match="runs past the end of the file"):
        client(server).read_range("org/model", SHA, "model.safetensors", 100, 8)


def test_an_oversized_content_length_is_refused_before_reading(server):
    server.on(f"/org/model/resolve/{SHA}/config.json", Reply(200, {}, b"{}", content_length=str(40 << 20), send=2))
    with pytest.raises(BadConfig, match="over 16,777,216 bytes"):
        client(server).read_file("org/model", SHA, "config.json")


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_answer_is_cut_at_the_deadline(server, where):
    slow = {"trickle": 0.05} if where == "body" else {"trickle_headers": 0.05}
    server.on(INFO_PATH, Reply(200, {"X-Pad": "x" * 200}, json.dumps(INFO).encode() + b" " * 2000, **slow))
    started = time.monotonic()
    with pytest.raises(HubUnavailable, match="the deadline passed") as info:
        client(server, deadline=0.5, timeout=5).resolve("org/model")
    assert info.value.hint == "retry later or raise deadline"  # library words; the CLI says --timeout
    assert time.monotonic() - started < 2.5  # each byte arrives within the 5 s per-read timeout: only the deadline cuts


def test_error_text_from_the_server_is_cleaned_and_redacted(server):
    echo = f"Bearer {TOKEN} \x1b]8;;http://evil\x07click\x1b]8;;\x07\x1b[2J\nError: forged"
    server.on("/org/model/resolve/main/config.json", Reply(418, {"X-Error-Message": echo}))
    with pytest.raises(hub_module.GpumemError) as info:
        client(server, TOKEN).read_file("org/model", "main", "config.json")
    text = str(info.value)
    assert TOKEN not in text and "\x1b" not in text and "\n" not in text and "\x07" not in text


def test_a_token_that_http_cannot_carry_is_a_usage_error_that_never_shows_it(server):
    for token in ("hf_abc\u0101def", "hf_abc def", "hf_abc\r\nX-Evil: 1"):
        with pytest.raises(UsageError, match="position") as info:
            client(server, token)
        assert token not in str(info.value) and "\u0101" not in str(info.value)
    assert client(server, "  hf_padded_token\n").has_token  # a pasted newline is trimmed, not refused


@pytest.mark.parametrize("endpoint", ["huggingface.co", "http://[::1", "http://127.0.0.1:99999", "ftp://x",
                                      "https://user:s3cr3t@hub.example", "https://hub.example/?x=1"])
def test_unusable_endpoints_are_usage_errors_without_their_credentials(endpoint):
    with pytest.raises(UsageError, match="endpoint") as info:
        HubClient(endpoint, False)
    assert "s3cr3t" not in str(info.value) + str(info.value.hint) and "user" not in str(info.value).replace("user name", "")


def test_an_endpoint_with_a_path_prefix_keeps_it(server):
    server.on("/mirror/api/models/org/model/revision/main", json_reply(INFO))
    assert HubClient(server.url + "/mirror/", False).resolve("org/model").sha == SHA
    server.on("/other/api/models/org/model/revision/main", Reply(404, {}, b"Not Found"))
    with pytest.raises(hub_module.NotFoundError, match="no model-info API"):
        HubClient(server.url + "/other", False).resolve("org/model")
