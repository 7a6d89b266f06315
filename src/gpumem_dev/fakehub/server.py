"""A loopback fake of the Hugging Face Hub's model-info API, resolve endpoint and LFS CDN.

It answers as the real Hub does, headers included (huggingface_hub's hf_raise_for_status reads
X-Error-Code / X-Error-Message), and offers fault injection for retry and robustness tests.
The API is served as http://127.0.0.1:PORT and the CDN as http://localhost:PORT (same server, a
different host name), so a client that carries the Authorization header across hosts is caught.
`FakeHub(tls=trustme.CA())` serves both over HTTPS (the handshake runs in each connection's thread) and, as the
real Hub and its CDN do, offers HTTP/2 in ALPN beside HTTP/1.1 on the same port (http2.py; `http2=False`: HTTP/1.1
only); `resolve_cache=True` answers small files as the real Hub does: a 307 to /api/resolve-cache/... on the same host.

Compression, as the real Hub's CloudFront sends it: huggingface.co is served through CloudFront, and a /resolve/
answer for a text file comes `Content-Encoding: gzip`, `Vary: Origin,accept-encoding`, `X-Cache: Hit from
cloudfront` (headers quoted in huggingface_hub issue #3269). CloudFront compresses on the fly when the request's
Accept-Encoding names gzip (or br), the Content-Type is one it compresses (application/json, text/plain, ...), the
origin's answer has a Content-Length between 1,000 and 10,000,000 bytes and no Content-Encoding, caches the
compressed copy, and turns a strong ETag weak (AWS CloudFront Developer Guide, "Serving compressed files"). So does
the fake Hub, for every 200 answer with the whole body (model info, small files, resolve-cache; not the CDN's
octet-streams, errors or redirects), gzip only (requests asks `gzip, deflate`; Brotli is never asked here), each
document compressed once and cached (a CDN's cache hit: the benchmark does not charge this process's CPU for
compressing each request). A Range request is never compressed (the guide is silent on ranges; a range names bytes
of the stored object, and gpumem asks identity for them). `compress=False` serves identity to everyone.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .repos import GOOD_TOKEN, NO_ACCESS_TOKEN, FakeFile, FakeRepo

_RESOLVE = re.compile(r"^/(?P<repo>.+?)/resolve/(?P<rev>refs/pr/\d+|[^/]+)/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_RESOLVE_CACHE = re.compile(r"^/api/resolve-cache/models/(?P<repo>[^/]+/[^/]+)/(?P<sha>[0-9a-f]{40})/(?P<path>.+)$")
# CloudFront's compressible types (the guide's list, those the Hub's small files and API answers can have)
_COMPRESSIBLE = frozenset({"application/json", "application/javascript", "application/xml", "text/plain", "text/html",
                           "text/css", "text/csv", "text/xml", "text/javascript", "text/tab-separated-values"})
_COMPRESSED_SIZES = range(1_000, 10_000_001)  # bytes of the identity body CloudFront compresses


@dataclass
class RequestRecord:
    """One request to the fake Hub, logged on arrival; `status` and `bytes_sent` (body bytes) fill in as
    the answer goes out. `headers` has lower-case names."""

    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0  # 0: the connection was dropped before any status line
    bytes_sent: int = 0
    timestamp: float = 0.0
    peer: str = ""  # the client's address:port, one per connection
    protocol: str = "HTTP/1.1"  # or "HTTP/2" (TLS clients that chose h2 in ALPN)


@dataclass
class _Reply:
    status: int
    headers: dict[str, str]
    body: FakeFile
    start: int = 0
    stop: int = 0


@dataclass
class _Fault:
    kind: str  # "fail", "truncate", "drop", "redirect_loop", "trickle" or "gzip_bomb"
    substring: str
    remaining: int | None  # None: forever
    status: int = 0
    headers: dict[str, str] | None = None
    seconds: float = 0.0  # trickle: the pause between single bytes
    size: int = 0  # gzip_bomb: the inflated size


def _json(status: int, document: object, headers: dict[str, str] | None = None) -> _Reply:
    body = FakeFile.of(json.dumps(document))
    return _Reply(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body, 0, body.size)


def _accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value names gzip (or *) with a q-value above 0."""
    for item in accept_encoding.lower().split(","):
        coding, _, params = item.partition(";")
        if coding.strip() in ("gzip", "x-gzip", "*"):
            quality = params.strip().removeprefix("q=")
            try:
                return not params.strip().startswith("q=") or float(quality) > 0
            except ValueError:
                return False
    return False


def _hub_error(status: int, code: str | None, message: str) -> _Reply:
    headers = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {})}
    return _json(status, {"error": message}, headers)


class FakeHub:
    """A running fake Hub: `endpoint` for HF_ENDPOINT, `add_repo`, the `requests` log and fault knobs."""

    def __init__(self, repos: tuple[FakeRepo, ...] | list[FakeRepo] = (),
                 tokens: tuple[str, ...] = (GOOD_TOKEN, NO_ACCESS_TOKEN), *, tls=None,
                 resolve_cache: bool = False, http2: bool = True, compress: bool = True) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.tokens = set(tokens)  # valid tokens; each repo's allowed_tokens are valid too
        self.latency = 0.0  # seconds slept before every response
        self.ignore_range = False  # answer every Range request with 200 and the whole file
        self.requests: list[RequestRecord] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._secret = os.urandom(16)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.hub = self
        self._server.tls = None
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
            self._server.tls = context
        self.resolve_cache = resolve_cache
        self.compress = compress  # gzip whole text answers to a request that accepts it, as CloudFront does
        self._gzipped: dict[bytes, FakeFile] = {}  # document -> its gzip copy (CloudFront's cache of compressed objects)
        self.port = self._server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self.port}"
        self.cdn_endpoint = f"{scheme}://localhost:{self.port}"
        self._thread: threading.Thread | None = None
        for repo in repos:
            self.add_repo(repo)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> FakeHub:
        """Serve in a daemon thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                            name=f"fakehub:{self.port}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- content, log and faults ----------------------------------------------------------------

    def add_repo(self, repo: FakeRepo) -> FakeRepo:
        """Serve `repo` (replacing one with the same id)."""
        self.repos[repo.repo_id] = repo
        return repo

    def reset_log(self) -> None:
        """Forget every logged request."""
        with self._lock:
            self.requests.clear()

    def reset_faults(self) -> None:
        """Drop every pending fault and turn latency and ignore_range off."""
        with self._lock:
            self._faults.clear()
        self.latency, self.ignore_range = 0.0, False

    @property
    def bytes_sent(self) -> int:
        """Body bytes sent over every logged request."""
        return sum(record.bytes_sent for record in self.requests)

    def fail_next(self, path_substring: str, status: int = 503, count: int = 1,
                  headers: dict[str, str] | None = None) -> None:
        """Answer the next `count` requests whose path contains `path_substring` with `status`
        (e.g. 503, or 429 with {"Retry-After": "1"})."""
        self._add_fault(_Fault("fail", path_substring, count, status, headers))

    def truncate_next(self, path_substring: str, count: int = 1) -> None:
        """Send the full Content-Length but only half the body, then close, `count` times."""
        self._add_fault(_Fault("truncate", path_substring, count))

    def drop_connection_next(self, path_substring: str, count: int = 1) -> None:
        """Close the connection without answering, `count` times."""
        self._add_fault(_Fault("drop", path_substring, count))

    def trickle_next(self, path_substring: str, seconds_per_byte: float, count: int | None = None,
                     headers_too: bool = False) -> None:
        """Send the real answer one byte every `seconds_per_byte` (the body, or also the status line and
        headers), as a server that keeps a connection alive forever at 1 byte/s."""
        self._add_fault(_Fault("trickle_headers" if headers_too else "trickle", path_substring, count,
                               seconds=seconds_per_byte))

    def gzip_bomb_next(self, path_substring: str, inflated: int, count: int | None = None) -> None:
        """Answer 200 with Content-Encoding: gzip and a small body that inflates to `inflated` bytes of spaces."""
        self._add_fault(_Fault("gzip_bomb", path_substring, count, size=inflated))

    def redirect_loop(self, path_substring: str, count: int | None = None) -> None:
        """Answer 302 to the request's own URL (forever, or `count` times)."""
        self._add_fault(_Fault("redirect_loop", path_substring, count))

    def _add_fault(self, fault: _Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.substring in path:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    # -- the Hub's answers ---------------------------------------------------------------

    def _reply(self, record: RequestRecord, target: str) -> tuple[_Reply | None, _Fault | None]:
        """The reply to one logged request, with the fault injected into it (None: drop the connection)."""
        fault = self._take_fault(record.path)
        if fault is not None and fault.kind == "drop":
            return None, fault
        if fault is not None and fault.kind == "fail":
            return _json(fault.status, {"error": f"fakehub: injected HTTP {fault.status}"}, fault.headers), fault
        if fault is not None and fault.kind == "gzip_bomb":
            import zlib

            packer = zlib.compressobj(9, zlib.DEFLATED, 31)
            block = b" " * (1 << 20)
            body = b"".join(packer.compress(block) for _ in range(fault.size >> 20)) + packer.flush()
            return _Reply(200, {"Content-Type": "application/json", "Content-Encoding": "gzip"},
                          FakeFile.of(body), 0, len(body)), fault
        if fault is not None and fault.kind == "redirect_loop":
            body = FakeFile.of(b"Found")
            return _Reply(302, {"Location": f"{self.endpoint.partition(':')[0]}://{record.host}{target}"}, body, 0,
                          body.size), fault
        return self._encoded(record, self.answer(record)), fault

    def _encoded(self, record: RequestRecord, reply: _Reply) -> _Reply:
        """`reply` gzip-compressed where CloudFront would compress it (see the module's docstring), else as is."""
        body = reply.body
        if not (self.compress and reply.status == 200 and "range" not in record.headers
                and reply.start == 0 and reply.stop == body.size == len(body.prefix) and body.size in _COMPRESSED_SIZES
                and "Content-Encoding" not in reply.headers and _accepts_gzip(record.headers.get("accept-encoding", ""))
                and reply.headers.get("Content-Type", "").partition(";")[0].strip().lower() in _COMPRESSIBLE):
            return reply
        gzipped = self._gzipped.get(body.prefix)
        if gzipped is None:  # a miss: compressed once, then served from here (dict reads and writes are atomic)
            packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip format
            gzipped = self._gzipped[body.prefix] = FakeFile.of(packer.compress(body.prefix) + packer.flush())
        headers = {**reply.headers, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
        etag = headers.get("ETag", "")
        if etag.startswith('"'):  # CloudFront turns a strong ETag weak when it compresses
            headers["ETag"] = f"W/{etag}"
        return _Reply(200, headers, gzipped, 0, gzipped.size)

    def answer(self, record: RequestRecord) -> _Reply:
        """Route one request (API, resolve or CDN) to its reply."""
        if record.path.startswith("/cdn/"):
            return self._cdn(record)
        token = record.headers.get("authorization", "").removeprefix("Bearer ").strip() or None
        valid = self.tokens.union(*(repo.allowed_tokens for repo in self.repos.values()))
        if token is not None and token not in valid:
            return _hub_error(401, None, "Invalid credentials in Authorization header")
        if record.path.startswith("/api/resolve-cache/models/"):
            match = _RESOLVE_CACHE.match(record.path)
            if match is None:
                return _json(404, {"error": "Not Found"})
            return self._resolve(unquote(match["repo"]), match["sha"], unquote(match["path"]), token, record,
                                 cached=True)
        if record.path.startswith("/api/models/"):
            repo_id, _, revision = record.path.removeprefix("/api/models/").partition("/revision/")
            return self._model_info(unquote(repo_id), unquote(revision) or "main", token, record.query)
        match = _RESOLVE.match(record.path)
        if match:
            return self._resolve(unquote(match["repo"]), unquote(match["rev"]), unquote(match["path"]), token, record)
        return _json(404, {"error": "Not Found"})

    def _open(self, repo_id: str, revision: str, token: str | None) -> tuple[FakeRepo, str] | _Reply:
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and token not in repo.allowed_tokens):
            return _hub_error(401, "RepoNotFound", "Repository not found")
        sha = repo.resolve(revision)
        if sha is None:
            return _hub_error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return repo, sha

    def _model_info(self, repo_id: str, revision: str, token: str | None, query: str) -> _Reply:
        opened = self._open(repo_id, revision, token)
        if isinstance(opened, _Reply):
            return opened
        repo, sha = opened
        blobs = parse_qs(query).get("blobs", ["false"])[0].lower() in ("1", "true")
        return _json(200, repo.model_info(sha, blobs))  # gated repos answer model info without a token

    def _resolve(self, repo_id: str, revision: str, path: str, token: str | None, record: RequestRecord,
                 cached: bool = False) -> _Reply:
        opened = self._open(repo_id, revision, token)
        if isinstance(opened, _Reply):
            return opened
        repo, sha = opened
        if repo.gated and token not in repo.allowed_tokens:
            if token is None:
                message = (f"Access to model {repo_id} is restricted. You must have access to it and be "
                           "authenticated to access it. Please log in.")
                return _hub_error(401, "GatedRepo", message)
            message = (f"Access to model {repo_id} is restricted and you are not in the authorized list. "
                       f"Visit {self.endpoint}/{repo_id} to ask for access.")
            return _hub_error(403, "GatedRepo", message)
        file = repo.files.get(path)
        if file is None:
            return _hub_error(404, "EntryNotFound", "Entry not found")
        if repo.is_lfs(path):
            location = self.cdn_url(repo_id, sha, path)
            body = FakeFile.of(f"Found. Redirecting to {location}")
            headers = {"Location": location, "X-Repo-Commit": sha, "X-Linked-Size": str(file.size),
                       "X-Linked-Etag": f'"{file.sha256}"', "ETag": f'"{file.sha256}"',
                       "Content-Type": "text/plain; charset=utf-8"}
            return _Reply(302, headers, body, 0, body.size)
        if self.resolve_cache and not cached:
            location = f"/api/resolve-cache/models/{repo_id}/{sha}/{quote(path)}"
            body = FakeFile.of(f"Temporary Redirect. Redirecting to {location}")
            return _Reply(307, {"Location": location, "X-Repo-Commit": sha, "Content-Type": "text/plain; charset=utf-8"},
                          body, 0, body.size)
        content_type = "application/json" if path.endswith(".json") else "text/plain; charset=utf-8"
        return self._ranged(file, record, {"X-Repo-Commit": sha, "ETag": f'"{file.git_oid}"',
                                           "Content-Type": content_type})

    def cdn_url(self, repo_id: str, sha: str, path: str) -> str:
        """The pre-signed CDN address of one LFS file at one commit (what the 302 points to)."""
        key = f"/cdn/{quote(repo_id, safe='')}/{sha}/{quote(path, safe='')}"
        query = f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600&X-Amz-Signature={self._sign(key)}"
        return f"{self.cdn_endpoint}{key}?{query}"

    def _sign(self, key: str) -> str:
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def _cdn(self, record: RequestRecord) -> _Reply:
        if "authorization" in record.headers:  # S3's answer to a pre-signed URL that also carries a token
            return _json(400, {"error": "Only one auth mechanism allowed; only the X-Amz-Algorithm query "
                                        "parameter, Signature query string parameter or the Authorization "
                                        "header should be specified"})
        signature = parse_qs(record.query).get("X-Amz-Signature", [""])[0]
        if not hmac.compare_digest(signature, self._sign(record.path)):
            return _json(403, {"error": "SignatureDoesNotMatch"})
        _, _, repo_id, sha, path = record.path.split("/", 4)
        repo = self.repos.get(unquote(repo_id))
        file = repo.files.get(unquote(path)) if repo else None
        if file is None:
            return _json(404, {"error": "NoSuchKey"})
        return self._ranged(file, record, {"ETag": f'"{file.sha256}"', "Content-Type": "application/octet-stream"})

    def _ranged(self, file: FakeFile, record: RequestRecord, headers: dict[str, str]) -> _Reply:
        """200 with the whole file, or 206 for a satisfiable single `bytes=` range, as S3 answers."""
        headers = {**headers, "Accept-Ranges": "bytes"}
        match = _RANGE.match(record.headers.get("range", "").strip())
        if self.ignore_range or match is None or match.group(1) == match.group(2) == "":
            return _Reply(200, headers, file, 0, file.size)
        first, last = match.groups()
        if first == "":  # bytes=-N: the last N bytes
            start, stop = max(0, file.size - int(last)), file.size
        else:
            start, stop = int(first), file.size if last == "" else min(int(last) + 1, file.size)
        if start >= file.size or stop <= start:
            return _Reply(416, {**headers, "Content-Range": f"bytes */{file.size}"}, FakeFile.of(b""))
        return _Reply(206, {**headers, "Content-Range": f"bytes {start}-{stop - 1}/{file.size}"}, file, start, stop)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen() backlog: hundreds of clients connecting at once are never refused
    hub: FakeHub
    tls: ssl.SSLContext | None

    def finish_request(self, request, client_address) -> None:
        if self.tls is not None:  # the handshake in this connection's own thread, not the accept loop
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
            if request.selected_alpn_protocol() == "h2":
                from .http2 import H2Connection

                H2Connection(self.hub, request, client_address).serve()
                return
        super().finish_request(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    server_version = "fakehub"
    disable_nagle_algorithm = True  # headers and body go out as separate writes; don't wait for ACKs

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError):
            pass  # the client went away mid-answer; that is its right

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the request log is the record

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def _serve(self, send_body: bool) -> None:
        hub = self.server.hub  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        record = RequestRecord(self.command, self.headers.get("Host", ""), url.path, url.query,
                               {k.lower(): v for k, v in self.headers.items()}, timestamp=time.time(),
                               peer=f"{self.client_address[0]}:{self.client_address[1]}")
        hub._log(record)  # logged before answering, so a client never sees an answer its record lacks
        if hub.latency:
            time.sleep(hub.latency)
        reply, fault = hub._reply(record, self.path)
        if reply is None:  # a dropped connection
            self.close_connection = True
            return
        trickle = fault.seconds if fault is not None and fault.kind.startswith("trickle") else 0.0
        plain = self.wfile
        if trickle and fault is not None and fault.kind == "trickle_headers":
            self.wfile = _Trickling(plain, trickle)  # type: ignore[assignment]
        try:
            self._send(reply, record, send_body, truncate=fault is not None and fault.kind == "truncate",
                       trickle=trickle)
        finally:
            self.wfile = plain

    def _send(self, reply: _Reply, record: RequestRecord, send_body: bool, truncate: bool,
              trickle: float = 0.0) -> None:
        length = reply.stop - reply.start
        record.status = reply.status
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if not send_body:
            return
        stop = reply.start + length // 2 if truncate else reply.stop
        for piece in reply.body.chunks(reply.start, stop, chunk=1 if trickle else 1 << 20):
            if trickle:
                self.wfile.flush()
                time.sleep(trickle)
            record.bytes_sent += len(piece)  # counted first: the client may act on the bytes before write returns
            try:
                self.wfile.write(piece)
            except OSError:
                record.bytes_sent -= len(piece)
                raise
        if truncate:
            self.close_connection = True  # the promised Content-Length never arrives


class _Trickling:
    """A write-file that sends every byte on its own after a pause (headers trickled like the body)."""

    def __init__(self, raw, seconds: float) -> None:
        self._raw, self._seconds = raw, seconds

    def write(self, data: bytes) -> int:
        for i in range(len(data)):
            self._raw.write(data[i:i + 1])
            self._raw.flush()
            time.sleep(self._seconds)
        return len(data)

    def flush(self) -> None:
        self._raw.flush()
