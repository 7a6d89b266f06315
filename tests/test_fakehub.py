"""The fake Hub answers as the real Hub does: model info, refs, resolve + CDN redirects, Range, errors, faults."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from conftest import HUB_FIXTURES, load_fixture_json, manifest_tensors
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors import safe_open
from safetensors.numpy import save

from gpumem.model.safetensors_header import parse_header
from gpumem_dev.fakehub import (
    GOOD_TOKEN,
    NO_ACCESS_TOKEN,
    FakeFile,
    FakeRepo,
    fake_hub,
    llama2_70b_repo,
    safetensors_bytes,
    split_in_order,
    synthetic_sharded_repo,
    virtual_safetensors,
)

hub = pytest.fixture(fake_hub)  # a fresh server per test here: these tests add repos and flip knobs

LLAMA7 = "meta-llama/Llama-2-7b-hf"  # gated "manual", two shards, real model info
GPT2 = "openai-community/gpt2"  # public, one model.safetensors
GPT2_FILE = f"/{GPT2}/resolve/main/model.safetensors"
SHA_PR, SHA_TAG = "a" * 40, "b" * 40


@pytest.fixture
def http():
    with requests.Session() as session:
        session.trust_env = False  # never a proxy from the environment
        yield session


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _small_repo(**kwargs) -> FakeRepo:
    files = {"config.json": FakeFile.of('{"model_type": "llama"}'),
             "model.safetensors": virtual_safetensors([("w", "BF16", (4, 4)), ("b", "F32", (4,))])}
    return FakeRepo("org/small", files, refs={"v1.0": SHA_TAG, "refs/pr/1": SHA_PR}, **kwargs)


# -- model info ---------------------------------------------------------------------------------


def test_model_info_matches_the_real_hub_answer(hub, http):
    real = load_fixture_json("meta-llama__Llama-2-7b-hf", "hf_api_model_info.json")
    info = http.get(f"{hub.endpoint}/api/models/{LLAMA7}/revision/main", params={"blobs": "true"}).json()
    assert (info["id"], info["modelId"], info["sha"], info["gated"], info["private"]) == \
        (LLAMA7, LLAMA7, real["sha"], "manual", False)
    assert info["safetensors"] == real["safetensors"]
    assert info["config"] == real["config"] and info["tags"] == real["tags"]
    assert [s["rfilename"] for s in info["siblings"]] == sorted(s["rfilename"] for s in real["siblings"])
    shard = next(s for s in info["siblings"] if s["rfilename"] == "model-00001-of-00002.safetensors")
    assert shard["lfs"]["size"] == shard["size"] > 1_000_000_000 and len(shard["lfs"]["sha256"]) == 64
    config = next(s for s in info["siblings"] if s["rfilename"] == "config.json")
    assert "lfs" not in config
    assert config["size"] == (HUB_FIXTURES / "meta-llama__Llama-2-7b-hf" / "config.json").stat().st_size


def test_model_info_without_blobs_or_revision(hub, http):
    plain = http.get(f"{hub.endpoint}/api/models/{GPT2}").json()
    assert plain["sha"] == load_fixture_json("openai-community__gpt2", "hf_api_model_info.json")["sha"]
    assert all(set(s) == {"rfilename"} for s in plain["siblings"])


def test_the_real_client_reads_model_info_and_file_metadata(hub):
    info = HfApi(endpoint=hub.endpoint, token=False).model_info(LLAMA7, files_metadata=True)
    assert info.safetensors.total == 6_738_417_664 and info.gated == "manual"
    url = hf_hub_url(LLAMA7, "model-00001-of-00002.safetensors", endpoint=hub.endpoint)
    meta = get_hf_file_metadata(url, token=GOOD_TOKEN)
    assert meta.commit_hash == info.sha and meta.location.startswith(hub.cdn_endpoint)
    assert meta.size == next(s.size for s in info.siblings if s.rfilename == "model-00001-of-00002.safetensors")


@pytest.mark.parametrize(("repo", "revision", "token", "error"), [
    ("nobody/nothing", "main", False, RepositoryNotFoundError),
    (LLAMA7, "no-such-branch", False, RevisionNotFoundError),
    ("org/private", "main", False, RepositoryNotFoundError),
    ("org/private", "main", NO_ACCESS_TOKEN, RepositoryNotFoundError),
])
def test_the_real_client_raises_the_hubs_errors(hub, repo, revision, token, error):
    hub.add_repo(FakeRepo("org/private", {}, private=True, allowed_tokens=frozenset({GOOD_TOKEN})))
    with pytest.raises(error):
        HfApi(endpoint=hub.endpoint, token=token).model_info(repo, revision=revision)


@pytest.mark.parametrize(("token", "path", "error"), [
    (False, "config.json", GatedRepoError),
    (NO_ACCESS_TOKEN, "model-00001-of-00002.safetensors", GatedRepoError),
    (GOOD_TOKEN, "missing.json", RemoteEntryNotFoundError),
])
def test_the_real_client_raises_file_errors(hub, token, path, error):
    with pytest.raises(error):
        get_hf_file_metadata(hf_hub_url(LLAMA7, path, endpoint=hub.endpoint), token=token)


# -- revisions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("revision", "sha"), [
    ("main", None), ("v1.0", SHA_TAG), ("refs%2Fpr%2F1", SHA_PR), (SHA_PR, SHA_PR),
])
def test_revisions_resolve_through_refs(hub, http, revision, sha):
    repo = hub.add_repo(_small_repo())
    expected = sha or repo.sha
    assert http.get(f"{hub.endpoint}/api/models/org/small/revision/{revision}").json()["sha"] == expected
    answer = http.get(f"{hub.endpoint}/org/small/resolve/{revision}/config.json")
    assert answer.status_code == 200 and answer.headers["X-Repo-Commit"] == expected
    assert answer.content == b'{"model_type": "llama"}' and answer.headers["Content-Length"] == "23"


# -- errors as the Hub sends them -----------------------------------------------------------------


@pytest.mark.parametrize(("path", "token", "status", "code", "message"), [
    ("/api/models/nobody/nothing", None, 401, "RepoNotFound", "Repository not found"),
    ("/api/models/org/private/revision/main", NO_ACCESS_TOKEN, 401, "RepoNotFound", "Repository not found"),
    (f"/api/models/{LLAMA7}/revision/nope", None, 404, "RevisionNotFound", "Invalid rev id: nope"),
    (f"/{LLAMA7}/resolve/nope/config.json", GOOD_TOKEN, 404, "RevisionNotFound", "Invalid rev id: nope"),
    (f"/{LLAMA7}/resolve/main/missing.json", GOOD_TOKEN, 404, "EntryNotFound", "Entry not found"),
    (f"/{LLAMA7}/resolve/main/config.json", None, 401, "GatedRepo",
     f"Access to model {LLAMA7} is restricted. You must have access to it and be authenticated to access it. "
     "Please log in."),
    (f"/{LLAMA7}/resolve/main/config.json", NO_ACCESS_TOKEN, 403, "GatedRepo", None),
    (f"/api/models/{GPT2}", "hf_not_a_real_token", 401, None, "Invalid credentials in Authorization header"),
    (f"/{GPT2}/resolve/main/config.json", "hf_not_a_real_token", 401, None,
     "Invalid credentials in Authorization header"),
])
def test_error_answers_carry_the_hubs_headers(hub, http, path, token, status, code, message):
    hub.add_repo(FakeRepo("org/private", {}, private=True, allowed_tokens=frozenset({GOOD_TOKEN})))
    answer = http.get(hub.endpoint + path, headers=_auth(token), allow_redirects=False)
    assert answer.status_code == status
    assert answer.headers.get("X-Error-Code") == code
    if message:
        assert answer.headers["X-Error-Message"] == message and answer.json() == {"error": message}
    else:
        assert "not in the authorized list" in answer.headers["X-Error-Message"]


def test_gated_model_info_is_public_and_files_open_with_a_granted_token(hub, http):
    assert http.get(f"{hub.endpoint}/api/models/{LLAMA7}").status_code == 200
    answer = http.get(f"{hub.endpoint}/{LLAMA7}/resolve/main/config.json", headers=_auth(GOOD_TOKEN))
    assert answer.status_code == 200 and json.loads(answer.content)["hidden_size"] == 4096


# -- redirects, the CDN and Range ---------------------------------------------------------------


def test_lfs_files_redirect_to_a_signed_url_on_another_host(hub, http):
    path = f"/{LLAMA7}/resolve/main/model-00002-of-00002.safetensors"
    answer = http.head(hub.endpoint + path, headers=_auth(GOOD_TOKEN), allow_redirects=False)
    location = answer.headers["Location"]
    assert answer.status_code == 302 and location.startswith(hub.cdn_endpoint + "/cdn/")
    assert hub.cdn_endpoint.split("//")[1] != hub.endpoint.split("//")[1] and "X-Amz-Signature=" in location
    assert answer.headers["X-Repo-Commit"] == hub.repos[LLAMA7].sha
    assert int(answer.headers["X-Linked-Size"]) == hub.repos[LLAMA7].files[path.rsplit("/", 1)[1]].size
    assert answer.headers["X-Linked-Etag"] == answer.headers["ETag"]

    # requests drops Authorization when a redirect changes host; the CDN saw no token.
    hub.reset_log()
    followed = http.get(hub.endpoint + path, headers={**_auth(GOOD_TOKEN), "Range": "bytes=0-7"})
    assert followed.status_code == 206 and len(followed.content) == 8
    api, cdn = hub.requests
    assert "authorization" in api.headers and api.host == hub.endpoint.split("//")[1]
    assert "authorization" not in cdn.headers and cdn.host == hub.cdn_endpoint.split("//")[1]


def test_the_cdn_refuses_a_token_and_a_bad_signature(hub, http):
    location = http.get(f"{hub.endpoint}{GPT2_FILE}", allow_redirects=False).headers["Location"]
    assert http.get(location, headers=_auth(GOOD_TOKEN)).status_code == 400
    assert http.get(location.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403
    assert http.get(location, headers={"Range": "bytes=0-0"}).status_code == 206


@pytest.mark.parametrize(("range_header", "status", "content_range", "length"), [
    ("bytes=0-7", 206, "bytes 0-7/{size}", 8),
    ("bytes=8-15", 206, "bytes 8-15/{size}", 8),
    ("bytes={tail}-", 206, "bytes {tail}-{last}/{size}", 10),
    ("bytes=-10", 206, "bytes {tail}-{last}/{size}", 10),
    ("bytes={size}-", 416, "bytes */{size}", 0),
])
def test_the_cdn_honours_range(hub, http, range_header, status, content_range, length):
    size = hub.repos[GPT2].files["model.safetensors"].size
    values = {"size": size, "tail": size - 10, "last": size - 1}
    answer = http.get(hub.endpoint + GPT2_FILE, headers={"Range": range_header.format(**values)})
    assert answer.status_code == status and answer.headers["Content-Range"] == content_range.format(**values)
    assert len(answer.content) == length == hub.requests[-1].bytes_sent
    assert answer.headers.get("Accept-Ranges") == "bytes"


def test_a_range_read_returns_the_real_header_bytes(hub, http):
    file = hub.repos[GPT2].files["model.safetensors"]
    answer = http.get(hub.endpoint + GPT2_FILE, headers={"Range": f"bytes=0-{len(file.prefix) + 99}"})
    assert answer.content == file.prefix + bytes(100)
    header = parse_header(answer.content, "model.safetensors", file_size=file.size)
    assert len(header.tensors) == len(manifest_tensors("openai-community__gpt2"))


def test_ignore_range_sends_the_whole_file_and_counts_every_byte(hub, http):
    hub.add_repo(_small_repo())
    hub.ignore_range = True
    answer = http.get(f"{hub.endpoint}/org/small/resolve/main/model.safetensors", headers={"Range": "bytes=0-7"})
    file = hub.repos["org/small"].files["model.safetensors"]
    assert answer.status_code == 200 and answer.content == file.read()
    assert hub.requests[-1].bytes_sent == file.size == int(answer.headers["Content-Length"])


def test_a_huge_file_streams_and_a_client_may_hang_up(hub, http, capfd):
    before = hub.bytes_sent
    with http.get(hub.endpoint + f"/{LLAMA7}/resolve/main/model-00001-of-00002.safetensors",
                  headers=_auth(GOOD_TOKEN), stream=True) as answer:
        assert int(answer.headers["Content-Length"]) > 6_000_000_000
        first = answer.raw.read(3 << 20)
    assert len(first) == 3 << 20 and first[8:10] == b'{"'
    sent, deadline = -1, time.monotonic() + 10
    while sent != hub.bytes_sent and time.monotonic() < deadline:
        sent = hub.bytes_sent
        time.sleep(0.1)  # until the server's write fails on the closed socket and the count stops
    assert 3 << 20 <= sent - before < 6_000_000_000
    assert http.get(f"{hub.endpoint}/api/models/{GPT2}").status_code == 200  # still serving
    assert capfd.readouterr().err == ""


def test_hundreds_of_concurrent_connections_are_served(hub):
    def fetch(_: int) -> int:
        with requests.Session() as session:
            session.trust_env = False
            return session.get(f"{hub.endpoint}{GPT2_FILE}", headers={"Range": "bytes=0-7"}).status_code

    with ThreadPoolExecutor(max_workers=200) as pool:
        assert set(pool.map(fetch, range(400))) == {206}
    assert len(hub.requests) == 800  # a 302 and a 206 each


# -- fault injection ------------------------------------------------------------------------------


def test_fail_next_then_success(hub, http):
    hub.fail_next("/api/models/", 503, count=2)
    hub.fail_next("config.json", 429, headers={"Retry-After": "7"})
    statuses = [http.get(f"{hub.endpoint}/api/models/{GPT2}").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    limited = http.get(f"{hub.endpoint}/{GPT2}/resolve/main/config.json")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert http.get(f"{hub.endpoint}/{GPT2}/resolve/main/config.json").status_code == 200


def test_truncate_next_cuts_the_body_short(hub, http):
    hub.truncate_next("/cdn/")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(hub.endpoint + GPT2_FILE, headers={"Range": "bytes=0-999"})
    assert hub.requests[-1].bytes_sent == 500 and hub.requests[-1].status == 206
    assert len(http.get(hub.endpoint + GPT2_FILE, headers={"Range": "bytes=0-999"}).content) == 1000


def test_drop_connection_and_redirect_loop(hub, http):
    hub.drop_connection_next("/api/models/")
    with pytest.raises(requests.exceptions.ConnectionError):
        http.get(f"{hub.endpoint}/api/models/{GPT2}")
    assert hub.requests[-1].status == 0
    assert http.get(f"{hub.endpoint}/api/models/{GPT2}").status_code == 200
    hub.redirect_loop("config.json")
    with pytest.raises(requests.exceptions.TooManyRedirects):
        http.get(f"{hub.endpoint}/{GPT2}/resolve/main/config.json")
    hub.reset_faults()
    assert http.get(f"{hub.endpoint}/{GPT2}/resolve/main/config.json").status_code == 200


def test_latency_delays_every_answer(hub, http):
    hub.latency = 0.2
    answer = http.get(f"{hub.endpoint}/api/models/{GPT2}")
    assert answer.elapsed.total_seconds() >= 0.2


def test_the_log_records_each_request(hub, http):
    hub.reset_log()
    http.get(f"{hub.endpoint}/api/models/{GPT2}/revision/main?blobs=true", headers={"X-Probe": "1"})
    (record,) = hub.requests
    assert (record.method, record.path, record.query, record.status) == \
        ("GET", f"/api/models/{GPT2}/revision/main", "blobs=true", 200)
    assert record.headers["x-probe"] == "1" and record.bytes_sent > 0 and record.timestamp > 0


# -- the repos ----------------------------------------------------------------------------------


def test_the_70b_repo_headers_parse_and_sum_to_the_index_total(hub, http):
    repo = hub.add_repo(llama2_70b_repo())
    index = json.loads(repo.files["model.safetensors.index.json"].read())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) == 15 and repo.gated == "manual"
    total, names = 0, []
    for shard in shards:
        url = f"{hub.endpoint}/{repo.repo_id}/resolve/main/{shard}"
        prefix = http.get(url, headers={**_auth(GOOD_TOKEN), "Range": "bytes=0-7"}).content
        length = int.from_bytes(prefix, "little")
        answer = http.get(url, headers={**_auth(GOOD_TOKEN), "Range": f"bytes=0-{7 + length}"})
        size = int(answer.headers["Content-Range"].rsplit("/", 1)[1])
        header = parse_header(answer.content, shard, file_size=size)
        total += sum(t.nbytes for t in header.tensors)
        names += [t.name for t in header.tensors]
    assert total == 137_953_316_864 == index["metadata"]["total_size"]
    assert sorted(names) == sorted(index["weight_map"])


def test_llama2_7b_shards_are_written_from_the_model_info_names(hub):
    files = hub.repos[LLAMA7].files
    index = json.loads(files["model.safetensors.index.json"].read())
    manifest = manifest_tensors("meta-llama__Llama-2-7b-hf")
    assert list(index["weight_map"]) == sorted(t.name for t in manifest)
    assert index["metadata"]["total_size"] == sum(t.nbytes for t in manifest)
    assert set(index["weight_map"].values()) == {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}


def test_synthetic_405b_has_the_published_count_in_191_shards():
    repo = synthetic_sharded_repo()
    shards = [p for p in repo.files if p.endswith(".safetensors")]
    assert len(shards) == 191 and repo.info["safetensors"]["total"] == 405_853_388_800
    config = json.loads(repo.files["config.json"].read())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_key_value_heads"]) == (126, 16384, 8)
    headers = [parse_header(repo.files[p].prefix, p, file_size=repo.files[p].size) for p in shards]
    assert sum(t.nbytes for h in headers for t in h.tensors) == 2 * 405_853_388_800


@pytest.mark.parametrize("n_shards", [1, 2, 7, 64])
def test_split_in_order_keeps_order_and_fills_every_shard(n_shards):
    tensors = [(f"t{i}", "F16", (1 + (i * 37) % 11, 8)) for i in range(64)]
    runs = split_in_order(tensors, n_shards)
    assert len(runs) == n_shards and all(runs) and [t for run in runs for t in run] == tensors


# -- the safetensors builder against the reference implementation -----------------------------------


def test_builder_bytes_equal_the_reference_writer():
    arrays = {"c": np.zeros((1,), np.int64), "b": np.zeros((2, 3), np.float32), "a": np.zeros((4,), np.float16),
              "a2": np.zeros((3,), np.uint8)}
    reference = save(arrays, metadata={"format": "pt"})
    # The reference writer orders tensors by dtype size, largest first, then by name.
    ours, data_size = safetensors_bytes([("c", "I64", (1,)), ("b", "F32", (2, 3)), ("a", "F16", (4,)),
                                         ("a2", "U8", (3,))], {"format": "pt"})
    assert ours + bytes(data_size) == reference
    assert parse_header(ours, "ours") == parse_header(reference, "ours")


def test_builder_file_loads_with_safe_open(tmp_path):
    tensors = [("embed.weight", "BF16", (16, 8)), ("norm.weight", "F32", (8,)), ("ids", "I32", (2, 3))]
    path = tmp_path / "model.safetensors"
    path.write_bytes(virtual_safetensors(tensors, {"format": "pt"}).read())
    with safe_open(path, framework="np") as handle:
        assert handle.metadata() == {"format": "pt"}
        assert sorted(handle.keys()) == sorted(name for name, _, _ in tensors)
        norm = handle.get_tensor("norm.weight")
        assert norm.shape == (8,) and norm.dtype == np.float32 and not norm.any()
        assert handle.get_slice("embed.weight").get_shape() == [16, 8]


def test_virtual_files_stream_in_chunks_without_materialising():
    file = FakeFile(b"head", 10 * (1 << 20) + 4)
    pieces = list(file.chunks(2, file.size))
    assert max(map(len, pieces)) <= 1 << 20 and sum(map(len, pieces)) == file.size - 2
    assert pieces[0] == b"ad" and file.read(0, 6) == b"head\0\0"
