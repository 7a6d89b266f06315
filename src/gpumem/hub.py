"""The only network module: a requests.Session that talks to the Hugging Face Hub.

It resolves a revision to a commit sha, reads small files and byte ranges (following the Hub's
redirects to its CDN by hand, so the token never leaves the Hub host), retries what is worth
retrying, and turns every Hub answer into gpumem's own errors.
"""

from __future__ import annotations

import email.utils
import os
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import constants
from .errors import (
    AccessError,
    AuthError,
    BadConfig,
    EntryNotFound,
    GatedRepo,
    GpumemError,
    HubUnavailable,
    RepoNotFound,
    RevisionNotFound,
    UsageError,
)

T = TypeVar("T")
R = TypeVar("R")

_RETRY_STATUSES = {429, 500, 502, 503, 504}
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class RepoFile:
    """One file of a repo listing; `size` is known when the Hub reports it."""

    path: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class RepoListing:
    """What the model-info API says about one revision of a repo."""

    repo_id: str
    sha: str
    files: tuple[RepoFile, ...]


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One HTTP exchange, for `--debug` (the URL has no query string and never a token)."""

    method: str
    url: str
    status: int | str
    received: int
    seconds: float


class _Deadline:
    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()

    def timeout(self, per_request: float) -> float:
        left = self.remaining()
        if left is not None and left <= 0:
            raise HubUnavailable("the --timeout deadline passed before the Hub answered",
                                 hint="retry later or raise --timeout")
        return per_request if left is None else min(per_request, left)


class HubClient:
    """A Hub client with one connection pool, retries, a total deadline and a redacted request log."""

    def __init__(
        self,
        endpoint: str | None = None,
        token: str | bool | None = None,
        *,
        timeout: float = constants.DEFAULT_TIMEOUT_S,
        deadline: float | None = constants.DEFAULT_DEADLINE_S,
        concurrency: int = constants.MAX_CONCURRENCY,
        retries: int = constants.MAX_RETRIES,
        backoff: float = 0.5,
    ) -> None:
        self.endpoint = (endpoint or constants.hf_endpoint()).rstrip("/")
        self._host = urlsplit(self.endpoint).netloc
        self._token = _discover_token(token)
        self.timeout = timeout
        self._deadline_s = deadline
        self._deadline = _Deadline(deadline)
        self.retries = retries
        self.backoff = backoff
        self.concurrency = concurrency
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=concurrency, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "gpumem (+https://github.com/gpumem/gpumem)"
        # requests re-reads the proxy and CA-bundle variables on every request when trust_env is on
        # (half its CPU time per request); read them once instead, proxies once per host.
        self.session.trust_env = False
        self.session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._proxies: dict[str, dict[str, str]] = {}
        self.log: list[RequestRecord] = []
        self.on_range_read: Callable[[str], None] | None = None  # progress display hook (called from threads)
        self._log_lock = threading.Lock()

    @property
    def has_token(self) -> bool:
        """Whether requests to the Hub carry a token (the token itself is never exposed)."""
        return bool(self._token)

    def restart_deadline(self) -> None:
        """Start the total deadline afresh: it bounds one operation, not the client's whole life."""
        self._deadline = _Deadline(self._deadline_s)

    def close(self) -> None:
        """Close the connection pool."""
        self.session.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Hub's endpoints ------------------------------------------------------------

    def resolve(self, repo_id: str, revision: str = "main") -> RepoListing:
        """Resolve `revision` (branch, tag, sha or refs/pr/N) to a commit sha and list its files."""
        validate_repo_id(repo_id)
        validate_revision(revision)
        url = f"{self.endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}"
        response = self._request("GET", url, params={"blobs": "true"}, context=(repo_id, revision, None))
        try:
            info = response.json()
        except ValueError:
            raise HubUnavailable(f"the Hub sent an unreadable model-info answer for {repo_id}") from None
        if not isinstance(info, dict) or not isinstance(info.get("sha"), str):
            raise HubUnavailable(f"the Hub's model-info answer for {repo_id} has no commit sha")
        files = tuple(_repo_file(s) for s in info.get("siblings") or [] if isinstance(s, dict) and "rfilename" in s)
        return RepoListing(repo_id, info["sha"], files)

    def file_url(self, repo_id: str, revision: str, path: str) -> str:
        """The resolve URL of one file at one revision."""
        validate_revision(revision)
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    def read_file(self, repo_id: str, revision: str, path: str, *, max_bytes: int = constants.SMALL_FILE_CAP) -> tuple[bytes, str | None]:
        """Read a small file whole; returns (content, the commit sha the Hub served it from)."""
        for attempt in range(self.retries + 1):
            response = self._request("GET", self.file_url(repo_id, revision, path), context=(repo_id, revision, path),
                                     stream=True)
            if (_content_length(response) or 0) > max_bytes:
                response.close()
                raise _too_big(repo_id, path, max_bytes)
            commit = response.headers.get("X-Repo-Commit")
            content, complete = self._read_body(response, max_bytes + 1, start=0)
            if len(content) > max_bytes:  # no Content-Length, and more than the cap arrived
                raise _too_big(repo_id, path, max_bytes)
            if complete:
                return content, commit
            if attempt < self.retries:  # cut short: parsing half a JSON file would blame the repo
                self._sleep_before_retry(attempt, None)
        raise HubUnavailable(f"{path}: the Hub kept cutting the response short",
                             hint="retry later; if it persists the file may be damaged on the Hub")

    def read_range(self, repo_id: str, revision: str, path: str, start: int, length: int) -> bytes:
        """Read `length` bytes at `start` with a Range request; never more, even if Range is ignored."""
        url = self.file_url(repo_id, revision, path)
        for attempt in range(self.retries + 1):
            response = self._request("GET", url, headers={"Range": f"bytes={start}-{start + length - 1}"},
                                     context=(repo_id, revision, path), stream=True)
            if response.status_code == 206:
                data, _ = self._read_body(response, length, start=0)
            else:  # 200: the server ignored Range and sends the file from byte 0
                data, _ = self._read_body(response, start + length, start=start)
            expected = _expected_length(response, start, length)
            if len(data) >= expected:
                if self.on_range_read:
                    self.on_range_read(path)
                return data
            if attempt < self.retries:
                self._sleep_before_retry(attempt, None)
        raise HubUnavailable(f"{path}: the Hub kept cutting the response short ({len(data):,} of {expected:,} bytes)",
                             hint="retry later; if it persists the file may be damaged on the Hub")

    def map_concurrent(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run `function` over `items` at once on the shared pool; the first error wins."""
        items = list(items)
        if len(items) <= 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(len(items), self.concurrency)) as pool:
            return list(pool.map(function, items))

    # -- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, url: str, *, context: tuple[str, str, str | None], headers: dict | None = None,
                 params: dict | None = None, stream: bool = False) -> requests.Response:
        """Send with retries and manual redirects; return a 2xx response or raise a gpumem error."""
        for attempt in range(self.retries + 1):
            try:
                response = self._send_following_redirects(method, url, headers or {}, params, stream)
            except requests.RequestException as exc:
                # A host that does not resolve means no network (or a typo in HF_ENDPOINT): retrying won't help.
                if attempt == self.retries or _is_name_resolution(exc):
                    raise HubUnavailable(f"could not reach {self.endpoint}: {_describe(exc)}",
                                         hint="check your connection or HF_ENDPOINT; --offline uses cached results") from None
                self._sleep_before_retry(attempt, None)
                continue
            if response.status_code < 400:
                return response
            if response.status_code in _RETRY_STATUSES and attempt < self.retries:
                response.close()
                self._sleep_before_retry(attempt, response.headers.get("Retry-After"))
                continue
            raise translate_error(response, self.endpoint, *context, has_token=self.has_token)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _send_following_redirects(self, method: str, url: str, headers: dict, params: dict | None,
                                  stream: bool) -> requests.Response:
        for _ in range(constants.MAX_REDIRECTS + 1):
            sent = dict(headers)
            if self._token and urlsplit(url).netloc == self._host:
                sent["Authorization"] = f"Bearer {self._token}"  # only ever to the Hub host itself
            started = time.monotonic()
            try:
                response = self.session.request(method, url, headers=sent, params=params, stream=stream,
                                                allow_redirects=False, timeout=self._deadline.timeout(self.timeout),
                                                proxies=self._proxies_for(url))
            except requests.RequestException as exc:
                self._record(method, url, type(exc).__name__, 0, started)
                raise
            self._record(method, url, response.status_code, _content_length(response) or 0, started)
            if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                return response
            response.close()
            url, params = urljoin(url, response.headers["Location"]), None
        raise HubUnavailable(f"too many redirects (over {constants.MAX_REDIRECTS}) reading {_strip_query(url)}")

    def _proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for this URL's host (honouring NO_PROXY), looked up once per host."""
        scheme, host = urlsplit(url)[:2]
        key = f"{scheme}://{host}"
        if key not in self._proxies:
            self._proxies[key] = requests.utils.get_environ_proxies(key)
        return self._proxies[key]

    @staticmethod
    def _read_body(response: requests.Response, limit: int, *, start: int) -> tuple[bytes, bool]:
        """Read at most `limit` bytes of the body, then drop the connection; return the bytes from `start`
        on, and False when the connection broke before the body (or `limit`) was complete."""
        chunks, received, complete = [], 0, True
        try:
            for chunk in response.iter_content(_CHUNK):
                chunks.append(chunk)
                received += len(chunk)
                if received >= limit:
                    break
        except requests.RequestException:
            complete = False  # a cut-short body: the caller retries
        finally:
            response.close()
        return b"".join(chunks)[start:limit], complete

    def _sleep_before_retry(self, attempt: int, retry_after: str | None) -> None:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            delay = self.backoff * (2**attempt) * random.uniform(0.5, 1.0)  # exponential backoff with jitter
        left = self._deadline.remaining()
        if left is not None and delay >= left:
            raise HubUnavailable("the --timeout deadline would pass while waiting to retry the Hub",
                                 hint="retry later or raise --timeout")
        time.sleep(delay)

    def _record(self, method: str, url: str, status: int | str, received: int, started: float) -> None:
        with self._log_lock:
            self.log.append(RequestRecord(method, _strip_query(url), status, received, time.monotonic() - started))


def validate_repo_id(repo_id: str) -> None:
    """Refuse ids the Hub cannot hold (huggingface_hub's own rules), as a UsageError."""
    from huggingface_hub.utils import HFValidationError
    from huggingface_hub.utils import validate_repo_id as hf_validate

    try:
        hf_validate(repo_id)
    except HFValidationError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"invalid repo id {repo_id!r}: {first}",
                         hint="use the form ORG/NAME, e.g. meta-llama/Llama-2-7b-hf") from None


def validate_revision(revision: str) -> None:
    """Refuse revisions no git ref or sha can be, as a UsageError: '.' and '..' would even turn into
    another URL path (HTTP clients resolve dot segments), so `--revision ..` must never reach the Hub."""
    if not revision or revision == "." or ".." in revision or any(ord(c) < 32 or c == "\x7f" for c in revision):
        raise UsageError(f"invalid revision {revision!r}: git refs cannot be empty, contain '..' or control "
                         "characters", hint="use a branch, tag, full commit sha or refs/pr/N")


def translate_error(response: requests.Response, endpoint: str, repo_id: str, revision: str, path: str | None,
                    *, has_token: bool) -> GpumemError:
    """Turn an error answer of the Hub into gpumem's error, with a one-line message and a hint."""
    code = response.headers.get("X-Error-Code", "")
    message = response.headers.get("X-Error-Message", "")
    status = response.status_code
    response.close()
    token_hint = "pass a token with --token or HF_TOKEN, or run `hf auth login`"
    if code == "GatedRepo":
        return GatedRepo(f"{repo_id} is gated: your {'token has no access' if has_token else 'request had no token'}",
                         hint=f"request access at {endpoint}/{repo_id}, then {token_hint}")
    if code == "RepoNotFound" or (status == 401 and not code and "credentials" not in message.lower()):
        return RepoNotFound(f"repository {repo_id} not found, or private and not visible to "
                            f"{'this token' if has_token else 'anonymous requests'}",
                            hint=f"check the spelling; for a private repo {token_hint}")
    if code == "RevisionNotFound":
        return RevisionNotFound(f"revision {revision!r} not found in {repo_id}",
                                hint="use a branch, tag, full commit sha or refs/pr/N")
    if code == "EntryNotFound" or (status == 404 and path):
        return EntryNotFound(f"{path} not found in {repo_id} at {revision}")
    if status == 401:
        return AuthError("the Hub rejected the token", hint="check HF_TOKEN / --token, or run `hf auth login` again")
    if status == 403:
        return AccessError(f"access to {repo_id} was refused ({message or 'HTTP 403'})", hint=token_hint)
    if status in _RETRY_STATUSES:
        return HubUnavailable(f"the Hub kept answering HTTP {status} for {path or repo_id}", hint="retry later")
    return GpumemError(f"the Hub answered HTTP {status} for {path or repo_id}" + (f": {message}" if message else ""))


def _too_big(repo_id: str, path: str, max_bytes: int) -> BadConfig:
    return BadConfig(f"{path}: over {max_bytes:,} bytes in {repo_id}; refusing to read it as metadata")


def _discover_token(token: str | bool | None) -> str | None:
    """An explicit token wins; False means none; None looks up HF_TOKEN / the saved login."""
    if token is False:
        return None
    if isinstance(token, str) and token:
        return token
    from huggingface_hub import get_token

    return get_token()


def _repo_file(sibling: dict) -> RepoFile:
    lfs = sibling.get("lfs") if isinstance(sibling.get("lfs"), dict) else {}
    size = lfs.get("size", sibling.get("size"))
    return RepoFile(str(sibling["rfilename"]), size if isinstance(size, int) else None)


def _expected_length(response: requests.Response, start: int, length: int) -> int:
    """Bytes a complete answer must hold: `length`, unless the file ends sooner."""
    total = _number(response.headers.get("Content-Range", "").rpartition("/")[2])
    if total is not None:
        return max(0, min(length, total - start))
    if response.status_code == 200 and (size := _content_length(response)) is not None:
        return max(0, min(length, size - start))
    return length


def _content_length(response: requests.Response) -> int | None:
    """The Content-Length header as a number; None when absent or not a plain number."""
    return _number(response.headers.get("Content-Length", ""))


def _number(text: str) -> int | None:
    """A header's non-negative decimal number; None otherwise (str.isdigit alone takes '²', which int() refuses)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if (whole := _number(value)) is not None:
        seconds = float(whole)
    else:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, min(seconds, constants.RETRY_AFTER_CAP_S))


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def _is_name_resolution(exc: requests.RequestException) -> bool:
    """True when the host name did not resolve (urllib3 nests its NameResolutionError inside the exception)."""
    return "NameResolutionError" in repr(exc)


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if _is_name_resolution(exc):
        return "the host name does not resolve (no network?)"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__
