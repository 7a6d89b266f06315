"""Small files gzip-compressed, as the real Hub's CDN (CloudFront) sends them: the fake Hub compresses as CloudFront
does, gpumem asks gzip for whole small reads and identity for ranges, and inflates only up to its cap."""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from gpumem import constants
from gpumem.errors import BadConfig, HubUnavailable
from gpumem.reading.hub import HubClient
from gpumem_dev.fakehub import FakeHub, synthetic_sharded_repo
from gpumem_dev.fakehub.scripted import Reply, ScriptedServer

REPO = "org/big"
INDEX = "model.safetensors.index.json"
SHA = "0123456789abcdef0123456789abcdef01234567"
CONFIG_PATH = f"/org/model/resolve/{SHA}/config.json"


def _repo():
    return synthetic_sharded_repo(REPO, n_shards=4, num_layers=8)  # a 6,136-byte index, an 827-byte config


@pytest.fixture(params=["http", "https-h2"])
def big_hub(request, ca, monkeypatch):
    """A fake Hub serving org/big over plain HTTP/1.1, or over HTTPS (h2) with the resolve-cache redirect."""
    tls = ca[0] if request.param != "http" else None
    if tls is not None:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca[1])
    with FakeHub([_repo()], tls=tls, resolve_cache=tls is not None) as running:
        yield running


def _file_answer(hub: FakeHub, path: str):
    return next(r for r in reversed(hub.requests) if r.path.endswith(path) and r.status == 200)


# -- the fake Hub imitates CloudFront ----------------------------------------------------------------------------

def test_the_fake_hub_compresses_a_text_file_as_cloudfront_does():
    repo = _repo()
    index = repo.files[INDEX]
    with FakeHub([repo]) as hub, requests.Session() as http:
        http.trust_env = False
        url = f"{hub.endpoint}/{REPO}/resolve/main/{INDEX}"
        first = http.get(url, headers={"Accept-Encoding": "gzip, deflate"})
        second = http.get(url, headers={"Accept-Encoding": "gzip"})
        assert first.headers["Content-Encoding"] == second.headers["Content-Encoding"] == "gzip"
        assert first.headers["Vary"] == "Accept-Encoding"
        assert first.headers["ETag"].startswith('W/"')  # CloudFront turns a strong ETag weak
        assert first.content == second.content == index.prefix  # requests inflates it
        wire = [r.bytes_sent for r in hub.requests]
        assert wire[0] == wire[1] == int(first.headers["Content-Length"]) < index.size // 4
        assert len(hub._gzipped) == 1  # compressed once, then served from its cache
        for asked in ({"Accept-Encoding": "identity"}, {"Accept-Encoding": "gzip;q=0"}, {"Accept-Encoding": "br"}):
            plain = http.get(url, headers=asked)
            assert "Content-Encoding" not in plain.headers and plain.content == index.prefix
        ranged = http.get(url, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-99"})
        assert ranged.status_code == 206 and "Content-Encoding" not in ranged.headers  # ranges stay identity
        small = http.get(f"{hub.endpoint}/{REPO}/resolve/main/config.json", headers={"Accept-Encoding": "gzip"})
        assert "Content-Encoding" not in small.headers  # under 1,000 bytes: CloudFront leaves it
        info = http.get(f"{hub.endpoint}/api/models/{REPO}?blobs=true", headers={"Accept-Encoding": "gzip"})
        assert info.headers["Content-Encoding"] == "gzip" and info.json()["id"] == REPO
        shard = http.get(f"{hub.endpoint}/{REPO}/resolve/main/model-00001-of-00004.safetensors",
                         headers={"Accept-Encoding": "gzip", "Range": "bytes=0-7"})
        assert shard.status_code == 206 and "Content-Encoding" not in shard.headers
        hub.compress = False
        assert "Content-Encoding" not in http.get(url, headers={"Accept-Encoding": "gzip"}).headers


# -- gpumem asks gzip for whole small reads, identity for ranges ------------------------------------------------

def test_a_compressed_index_read_takes_fewer_bytes_and_the_same_document(big_hub):
    index = big_hub.repos[REPO].files[INDEX]
    client = HubClient(big_hub.endpoint, None, retries=0)
    listing = client.resolve(REPO)
    content, commit = client.read_file(REPO, listing.sha, INDEX)
    assert content == index.prefix and commit == listing.sha
    answer = _file_answer(big_hub, INDEX)
    assert answer.headers["accept-encoding"] == "gzip"
    assert 0 < answer.bytes_sent < index.size // 4
    info = next(r for r in big_hub.requests if r.path.startswith("/api/models/"))
    assert info.headers["accept-encoding"] == "gzip"
    header = client.read_range(REPO, listing.sha, "model-00001-of-00004.safetensors", 0, 8)
    assert len(header) == 8
    ranged = [r for r in big_hub.requests if r.path.endswith(".safetensors")]
    assert ranged and all(r.headers["accept-encoding"] == "identity" for r in ranged)


def test_identity_when_the_hub_does_not_compress(big_hub):
    big_hub.compress = False
    index = big_hub.repos[REPO].files[INDEX]
    client = HubClient(big_hub.endpoint, None, retries=0)
    content, _ = client.read_file(REPO, "main", INDEX)
    assert content == index.prefix and _file_answer(big_hub, INDEX).bytes_sent == index.size


def test_a_compressed_answer_cut_short_is_retried(big_hub):
    big_hub.truncate_next("/api/resolve-cache/" if big_hub.resolve_cache else INDEX)  # the answer, not the 307
    client = HubClient(big_hub.endpoint, None, retries=2, backoff=0.01)
    content, _ = client.read_file(REPO, "main", INDEX)
    assert content == big_hub.repos[REPO].files[INDEX].prefix
    cut, whole = [r.bytes_sent for r in big_hub.requests if r.path.endswith(INDEX) and r.status == 200]
    assert 0 < cut < whole < big_hub.repos[REPO].files[INDEX].size // 4


def test_the_gzip_bomb_is_still_cut_at_the_inflated_cap(big_hub, monkeypatch):
    monkeypatch.setattr(constants, "SMALL_FILE_CAP", 1 << 20)
    big_hub.gzip_bomb_next(INDEX, 24 << 20)
    client = HubClient(big_hub.endpoint, None, retries=0)
    with pytest.raises(BadConfig, match="over 1,048,576 bytes"):
        client.read_file(REPO, "main", INDEX, max_bytes=1 << 20)
    assert _file_answer(big_hub, INDEX).bytes_sent < 64 << 10  # the bomb's few KB, not 24 MiB


def test_a_corrupt_gzip_answer_is_one_line(ca):
    with ScriptedServer() as server:
        server.on(CONFIG_PATH, Reply(200, {"Content-Encoding": "gzip"}, b"\x1f\x8b\x08\x00 certainly not deflate"))
        with pytest.raises(HubUnavailable) as caught:
            HubClient(server.url, None, retries=1, backoff=0.01).read_file("org/model", SHA, "config.json")
        assert str(caught.value) == "the Hub's answer could not be read: its gzip-compressed body is damaged"


def test_a_gzip_stream_that_stops_early_is_retried_then_read():
    whole = gzip.compress(json.dumps({"model_type": "llama", "pad": "x" * 4000}).encode())
    with ScriptedServer() as server:
        server.on(CONFIG_PATH, Reply(200, {"Content-Encoding": "gzip"}, whole[: len(whole) // 2]),
                  Reply(200, {"Content-Encoding": "gzip"}, whole))
        content, _ = HubClient(server.url, None, retries=2, backoff=0.01).read_file("org/model", SHA, "config.json")
        assert json.loads(content)["model_type"] == "llama" and len(server.seen(CONFIG_PATH)) == 2
        server.on(CONFIG_PATH, Reply(200, {"Content-Encoding": "gzip"}, whole[:-20]))  # every time: no end, no luck
        with pytest.raises(HubUnavailable, match="kept cutting the response short"):
            HubClient(server.url, None, retries=1, backoff=0.01).read_file("org/model", SHA, "config.json")
