"""End to end over HTTPS, as the real Hub speaks: the fake Hub with a throw-away CA (trustme) and the
resolve-cache redirect for small files; the rules of the token and of redirects over TLS."""

from __future__ import annotations

import json
import time

import pytest

from gpumem.errors import HubUnavailable
from gpumem.reading.hub import HubClient
from gpumem_dev.fakehub import GOOD_TOKEN, FakeHub, fixture_repos
from gpumem_dev.fakehub.scripted import Reply, ScriptedServer

SHA = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def tls_hub(ca):
    with FakeHub(fixture_repos(), tls=ca[0], resolve_cache=True) as running:
        yield running


@pytest.fixture
def https_hub(tls_hub, ca, monkeypatch):
    tls_hub.reset_log()
    tls_hub.reset_faults()
    monkeypatch.setenv("HF_ENDPOINT", tls_hub.endpoint)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca[1])
    return tls_hub


def test_a_cold_read_over_https_follows_the_resolve_cache_redirect(https_hub, gpumem):
    code, out, err = gpumem("hf", "openai-community/gpt2", "--json", "--no-cache")
    assert code == 0, err
    assert json.loads(out)["parameters"] == 124_439_808
    paths = [r.path for r in https_hub.requests]
    assert any(p.startswith("/api/resolve-cache/models/openai-community/gpt2/") for p in paths)


def test_over_https_the_token_reaches_the_api_origin_only(https_hub, gpumem):
    code, out, err = gpumem("hf", "meta-llama/Llama-2-70b-hf", "--token", GOOD_TOKEN, "--json", "--no-cache")
    assert code == 0, err
    with_auth = [r for r in https_hub.requests if "authorization" in r.headers]
    assert with_auth and all(r.host.startswith("127.0.0.1") for r in with_auth)
    assert any(r.path.startswith("/api/resolve-cache/") for r in with_auth)  # same origin: gated files need it
    assert not [r for r in https_hub.requests if r.path.startswith("/cdn/") and "authorization" in r.headers]
    assert GOOD_TOKEN not in out + err


def test_an_untrusted_certificate_is_one_clean_line_exit_6(tls_hub, gpumem, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", tls_hub.endpoint)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    code, out, err = gpumem("hf", "bad/anything", "--no-cache")
    assert code == 6 and "Traceback" not in err
    assert err.startswith(f"Error: could not reach {tls_hub.endpoint}: its TLS certificate is not trusted")


def test_ssl_cert_file_is_honoured(tls_hub, ca, gpumem, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", tls_hub.endpoint)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", ca[1])
    code, _, err = gpumem("hf", "openai-community/gpt2", "--json", "--no-cache")
    assert code == 0, err


@pytest.mark.parametrize("downgrade", ["http://127.0.0.1:{port}/x", "http://localhost:{port}/x"])
def test_a_redirect_from_https_to_http_is_refused_and_the_token_never_sent(ca, monkeypatch, downgrade):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca[1])
    with ScriptedServer(tls=ca[0]) as server, ScriptedServer() as plain:
        port = plain.url.rsplit(":", 1)[1]
        server.on(f"/org/model/resolve/{SHA}/config.json", Reply(302, {"Location": downgrade.format(port=port)}))
        plain.on("/x", Reply(200, {}, b"{}"))
        with pytest.raises(HubUnavailable, match="from https to an insecure address"):
            HubClient(server.url, "hf_tokentokentokentoken", retries=0).read_file("org/model", SHA, "config.json")
        assert server.seen()[0].headers["authorization"].startswith("Bearer ")
        assert not plain.seen()


def _curl(url: str, bundle: str, version: int) -> tuple[int, int, bytes, int]:
    """(status, HTTP version libcurl used, body, libcurl error number) of one GET."""
    import io

    import pycurl

    body, handle = io.BytesIO(), pycurl.Curl()
    handle.setopt(pycurl.URL, url)
    handle.setopt(pycurl.CAINFO, bundle)
    handle.setopt(pycurl.HTTP_VERSION, version)
    handle.setopt(pycurl.WRITEDATA, body)
    try:
        handle.perform()
        error = 0
    except pycurl.error as exc:
        error = exc.args[0]
    try:
        return handle.getinfo(pycurl.RESPONSE_CODE), handle.getinfo(pycurl.INFO_HTTP_VERSION), body.getvalue(), error
    finally:
        handle.close()


def test_the_fake_hub_speaks_http2_and_http11_on_one_port(https_hub, ca):
    import pycurl

    config = f"{https_hub.endpoint}/openai-community/gpt2/resolve/main/config.json"
    for version, spoken in ((pycurl.CURL_HTTP_VERSION_2TLS, pycurl.CURL_HTTP_VERSION_2_0),
                            (pycurl.CURL_HTTP_VERSION_1_1, pycurl.CURL_HTTP_VERSION_1_1)):
        status, used, body, error = _curl(config, ca[1], version)
        assert (status, used, error) == (307, spoken, 0)
        assert body.startswith(b"Temporary Redirect. Redirecting to /api/resolve-cache/models/openai-community/gpt2/")
    assert [r.status for r in https_hub.requests] == [307, 307]
    assert len({r.peer for r in https_hub.requests}) == 2 and https_hub.requests[0].host == https_hub.endpoint[8:]


HTTP2_ERRORS = (16, 92)  # CURLE_HTTP2, CURLE_HTTP2_STREAM: the stream was reset


def test_faults_over_http2(https_hub, ca):
    import pycurl

    url = f"{https_hub.endpoint}/api/models/openai-community/gpt2"
    https_hub.fail_next("/api/models/", 503)
    assert _curl(url, ca[1], pycurl.CURL_HTTP_VERSION_2TLS)[0] == 503
    https_hub.drop_connection_next("/api/models/")
    assert _curl(url, ca[1], pycurl.CURL_HTTP_VERSION_2TLS)[3] in HTTP2_ERRORS
    https_hub.truncate_next("/api/models/")
    status, _, body, error = _curl(url, ca[1], pycurl.CURL_HTTP_VERSION_2TLS)
    assert status == 200 and error in HTTP2_ERRORS and 0 < len(body) < 4861
    https_hub.latency = 0.05
    started = time.monotonic()
    status, used, body, _ = _curl(url, ca[1], pycurl.CURL_HTTP_VERSION_2TLS)
    assert (status, used) == (200, pycurl.CURL_HTTP_VERSION_2_0)
    assert body == _curl(url, ca[1], pycurl.CURL_HTTP_VERSION_1_1)[2]
    assert time.monotonic() - started >= 0.1  # the injected latency holds on both faces
