"""The Hub client, request by request, with `responses` (no network)."""

from __future__ import annotations

import pytest
import requests
import responses

from gpumem.errors import (
    AuthError,
    EntryNotFound,
    GatedRepo,
    HubUnavailable,
    RepoNotFound,
    RevisionNotFound,
    UsageError,
)
from gpumem.hub import HubClient

API = "https://hub.test"
CDN = "https://cdn.test"
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "hf_secretsecretsecretsecret"
INFO = {"id": "org/model", "sha": SHA, "gated": False, "private": False,
        "siblings": [{"rfilename": "config.json", "size": 10},
                     {"rfilename": "model.safetensors", "size": 999, "lfs": {"size": 1000, "sha256": "x"}}]}


def client(token=False, **kwargs) -> HubClient:
    return HubClient(API, token, backoff=0.0, **kwargs)


@responses.activate
def test_resolve_encodes_the_revision_and_lists_files_with_sizes():
    responses.get(f"{API}/api/models/org/model/revision/refs%2Fpr%2F3", json=INFO)
    listing = client().resolve("org/model", "refs/pr/3")
    assert listing.sha == SHA
    sizes = {f.path: f.size for f in listing.files}
    assert sizes == {"config.json": 10, "model.safetensors": 1000}  # the LFS size wins over the pointer's
    assert responses.calls[0].request.params == {"blobs": "true"}


@responses.activate
def test_token_goes_to_the_hub_host_but_never_across_a_redirect():
    responses.get(f"{API}/org/model/resolve/{SHA}/model.safetensors", status=302,
                  headers={"Location": f"{CDN}/blob?sig=abc"})
    responses.get(f"{CDN}/blob", body=b"x" * 64, status=206, headers={"Content-Range": "bytes 0-63/1000"})
    data = client(TOKEN).read_range("org/model", SHA, "model.safetensors", 0, 64)
    assert data == b"x" * 64
    hub_request, cdn_request = (c.request for c in responses.calls)
    assert hub_request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert "Authorization" not in cdn_request.headers
    assert hub_request.headers["Range"] == cdn_request.headers["Range"] == "bytes=0-63"


@responses.activate
def test_a_server_ignoring_range_is_read_only_up_to_the_limit():
    body = b"h" * 100 + b"\0" * 5_000_000
    responses.get(f"{API}/org/model/resolve/{SHA}/model.safetensors", body=body, status=200)
    data = client().read_range("org/model", SHA, "model.safetensors", 0, 100)
    assert data == b"h" * 100


@responses.activate
def test_relative_redirects_and_the_redirect_cap():
    responses.get(f"{API}/org/model/resolve/main/config.json", status=307,
                  headers={"Location": f"/org/model/resolve/{SHA}/config.json"})
    responses.get(f"{API}/org/model/resolve/{SHA}/config.json", json={"a": 1}, headers={"X-Repo-Commit": SHA})
    content, commit = client().read_file("org/model", "main", "config.json")
    assert content == b'{"a": 1}' and commit == SHA
    responses.get(f"{API}/org/model/resolve/{SHA}/loop.json", status=302,
                  headers={"Location": f"{API}/org/model/resolve/{SHA}/loop.json"})
    with pytest.raises(HubUnavailable, match="too many redirects"):
        client().read_file("org/model", SHA, "loop.json")


@pytest.mark.parametrize("value", ["12abc", "²", "-5", ""])
@responses.activate
def test_odd_content_length_headers_are_ignored_not_a_crash(value):
    # Regression: int(Content-Length) raised ValueError on a non-numeric header (read_file and the request log).
    responses.get(f"{API}/org/model/resolve/{SHA}/config.json", body=b'{"a": 1}', headers={"Content-Length": value},
                  auto_calculate_content_length=False)
    responses.get(f"{API}/org/model/resolve/{SHA}/model.safetensors", body=b"x" * 64, status=200,
                  headers={"Content-Length": value}, auto_calculate_content_length=False)
    hub = client(retries=0)
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
@responses.activate
def test_hub_errors_become_gpumem_errors(status, headers, error, message):
    responses.get(f"{API}/org/model/resolve/main/config.json", status=status, headers=headers)
    with pytest.raises(error, match=message) as info:
        client(TOKEN).read_file("org/model", "main", "config.json")
    assert TOKEN not in str(info.value) and TOKEN not in (info.value.hint or "")


@responses.activate
def test_gated_error_gives_the_access_url_and_token_advice():
    responses.get(f"{API}/org/model/resolve/main/config.json", status=401, headers={"X-Error-Code": "GatedRepo"})
    with pytest.raises(GatedRepo) as info:
        client().read_file("org/model", "main", "config.json")
    assert f"{API}/org/model" in info.value.hint and "HF_TOKEN" in info.value.hint


@responses.activate
def test_429_honours_retry_after_then_succeeds(monkeypatch):
    slept = []
    monkeypatch.setattr("gpumem.hub.time.sleep", slept.append)
    url = f"{API}/api/models/org/model/revision/main"
    responses.get(url, status=429, headers={"Retry-After": "2"})
    responses.get(url, status=503)
    responses.get(url, json=INFO)
    assert client().resolve("org/model").sha == SHA
    assert slept[0] == 2.0 and len(slept) == 2


@responses.activate
def test_non_ascii_digit_retry_after_falls_back_to_backoff(monkeypatch):
    slept = []
    monkeypatch.setattr("gpumem.hub.time.sleep", slept.append)
    url = f"{API}/api/models/org/model/revision/main"
    responses.get(url, status=429, headers={"Retry-After": "²"})  # str.isdigit() says yes, float() says no
    responses.get(url, json=INFO)
    assert client().resolve("org/model").sha == SHA and slept == [0.0]


@responses.activate
def test_retry_after_is_capped(monkeypatch):
    slept = []
    monkeypatch.setattr("gpumem.hub.time.sleep", slept.append)
    url = f"{API}/api/models/org/model/revision/main"
    responses.get(url, status=429, headers={"Retry-After": "86400"})
    responses.get(url, json=INFO)
    client(deadline=None).resolve("org/model")
    assert slept == [30.0]


@responses.activate
def test_persistent_5xx_and_connection_errors_end_in_hub_unavailable():
    url = f"{API}/api/models/org/model/revision/main"
    responses.get(url, status=502)
    with pytest.raises(HubUnavailable, match="HTTP 502"):
        client(retries=2).resolve("org/model")
    assert len(responses.calls) == 3
    responses.replace(responses.GET, url, body=requests.ConnectionError("refused"))
    with pytest.raises(HubUnavailable, match="could not reach"):
        client(retries=1).resolve("org/model")


@pytest.mark.parametrize("repo_id", ["", "a/b/c", "org/model..name", "-bad/x", "org/" + "x" * 100, "../etc"])
def test_invalid_repo_ids_are_usage_errors_before_any_request(repo_id):
    with responses.RequestsMock(), pytest.raises(UsageError, match="invalid repo id"):
        client().resolve(repo_id)


@responses.activate
def test_a_response_cut_short_is_retried_then_reported(monkeypatch):
    monkeypatch.setattr("gpumem.hub.time.sleep", lambda s: None)
    url = f"{API}/org/model/resolve/{SHA}/model.safetensors"
    responses.get(url, body=b"x" * 10, status=206, headers={"Content-Range": "bytes 0-99/1000"})
    with pytest.raises(HubUnavailable, match="cutting the response short"):
        client(retries=2).read_range("org/model", SHA, "model.safetensors", 0, 100)
    assert len(responses.calls) == 3


def test_explicit_token_wins_and_false_means_none(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert client(None).has_token
    assert not client(False).has_token


@responses.activate
def test_a_shared_client_deadline_bounds_each_operation_not_its_life(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("gpumem.hub.time.monotonic", lambda: clock[0])
    responses.get(f"{API}/api/models/org/model/revision/main", json=INFO)
    shared = client(deadline=10)
    clock[0] += 60  # an hour-long notebook session between two calls
    with pytest.raises(HubUnavailable, match="deadline"):
        shared.resolve("org/model")
    shared.restart_deadline()
    assert shared.resolve("org/model").sha == SHA
