"""The Hub client: what gpumem asks the Hugging Face Hub, and how its answers become gpumem's errors.

It resolves a revision to a commit sha, reads small files and byte ranges, follows the Hub's redirects
by hand (to its resolve cache and CDN), retries what is worth retrying, and translates every answer.
The rules it keeps whatever a server does:
- the token is attached in one place (`_headers_for`), only to the endpoint's exact origin (scheme, host
  and port), and a redirect from https to plain http is refused outright;
- every text a server sends is redacted and cleaned before it becomes part of a message;
- no response is read past `constants.SMALL_FILE_CAP` (16 MiB), and the --timeout deadline and Ctrl-C
  hold inside every read (transport.py).
"""

from __future__ import annotations

import _thread
import email.utils
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urljoin

from .. import constants
from ..errors import (
    AccessError,
    AuthError,
    BadConfig,
    BadHeader,
    EntryNotFound,
    GatedRepo,
    GpumemError,
    HubUnavailable,
    Interrupted,
    NotFoundError,
    RepoNotFound,
    RevisionNotFound,
    UsageError,
)
from .repo_ids import validate_repo_id, validate_revision
from .sanitize import clean, redact, register_secret
from .transport import Cancelled, DeadlinePassed, Origin, Response, Transport, TransportError

T = TypeVar("T")
R = TypeVar("R")

_RETRY_STATUSES = {429, 500, 502, 503, 504}
_REDIRECTS = {301, 302, 303, 307, 308}
_SHA = re.compile(r"^[0-9a-f]{40}$")
_PATH_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # every listed file and request: one regex search
_USER_AGENT = "gpumem (+https://github.com/gpumem/gpumem)"
# whole small answers (model info, config, index) asked compressed, as the Hub's CDN serves text (CloudFront gzips
# JSON of 1 KB-10 MB): DeepSeek-R1's 8,898,324-byte index arrives as ~289 KB; range reads keep identity
_COMPRESSED = {"Accept-Encoding": "gzip"}


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


@dataclass(frozen=True, slots=True)
class _Send:
    """A step: send this request and take its answer (or its TransportError)."""

    method: str
    url: str
    headers: dict[str, str]
    limit: int
    origin: Origin


@dataclass(frozen=True, slots=True)
class _Sleep:
    """A step: pause before a retry (cancel() ends the pause with Cancelled, the deadline with DeadlinePassed)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class _Until:
    """A step: wait until `ready(callback)` calls back (from any thread); taken by `start` only."""

    ready: Callable[[Callable[[], None]], None]


Steps = Generator[_Send | _Sleep | _Until, Any, T]
"""An exchange with the Hub written once, as steps (requests, pauses, waits) yielded to whoever runs it: `_run`
on the calling thread, or `start` on the HTTP thread. The rules (token, redirects, retries) live in the steps."""


class _Secret:
    """Holds the token so that no repr, vars() dump or debugger listing of the client shows it."""

    __slots__ = ("value",)

    def __init__(self, value: str | None) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "'***'" if self.value else "None"


class _Deadline:
    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.end is None else self.end - time.monotonic()


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
        self.endpoint = constants.hf_endpoint(endpoint)
        self._origin = Origin.of(self.endpoint)
        self._token = _Secret(_discover_token(token))
        self.timeout = timeout
        self._deadline_s = deadline
        self.retries = retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.transport = Transport(timeout=timeout, user_agent=_USER_AGENT)
        self._deadline = _Deadline(deadline)
        self.transport.set_deadline(self._deadline.end)
        self.log: list[RequestRecord] = []
        self.on_range_read: Callable[[str], None] | None = None  # progress hook, called on the HTTP thread: no blocking

    def __repr__(self) -> str:
        return f"HubClient({self.endpoint!r}, token={self._token!r})"

    @property
    def has_token(self) -> bool:
        """Whether requests to the Hub carry a token (the token itself is never exposed)."""
        return bool(self._token.value)

    def restart_deadline(self) -> None:
        """Start the total deadline afresh: it bounds one operation, not the client's whole life."""
        self._deadline = _Deadline(self._deadline_s)
        self.transport.set_deadline(self._deadline.end)

    def cancel(self) -> None:
        """Stop every request in flight now and send no more (Ctrl-C)."""
        self.transport.cancel()

    def close(self) -> None:
        """Close the connection pool."""
        self.transport.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Hub's endpoints ------------------------------------------------------------

    def resolve(self, repo_id: str, revision: str = "main") -> RepoListing:
        """Resolve `revision` (branch, tag, sha or refs/pr/N) to a commit sha and list its files."""
        validate_repo_id(repo_id)
        validate_revision(revision)
        url = f"{self.endpoint}/api/models/{repo_id}/revision/{quote(revision, safe='')}?blobs=true"
        response, _ = self._request("GET", url, context=(repo_id, revision, None), limit=constants.SMALL_FILE_CAP + 1,
                                    headers=_COMPRESSED)
        body, complete = _read(response, constants.SMALL_FILE_CAP + 1)
        if len(body) > constants.SMALL_FILE_CAP:
            raise HubUnavailable(f"the Hub's model-info answer for {repo_id} is over "
                                 f"{constants.SMALL_FILE_CAP:,} bytes; refusing to read it")
        return parse_model_info(body if complete else b"", repo_id)

    def file_url(self, repo_id: str, revision: str, path: str) -> str:
        """The resolve URL of one file at one revision."""
        validate_revision(revision)
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    def read_file(self, repo_id: str, revision: str, path: str, *,
                  max_bytes: int = constants.SMALL_FILE_CAP) -> tuple[bytes, str | None]:
        """Read a small file whole; returns (content, the commit sha the Hub served it from)."""
        for attempt in range(self.retries + 1):
            response, commit = self._request("GET", self.file_url(repo_id, revision, path),
                                             context=(repo_id, revision, path), limit=max_bytes + 1, headers=_COMPRESSED)
            if response.status != 200:  # 204, 206...: no file content to parse as the repo's
                response.close()
                raise HubUnavailable(f"the Hub answered HTTP {response.status} with no file content for {path}",
                                     hint="retry later; if it persists the Hub (or HF_ENDPOINT's server) is misbehaving")
            if (_content_length(response) or 0) > max_bytes:
                response.close()
                raise _too_big(repo_id, path, max_bytes)
            content, complete = _read(response, max_bytes + 1)
            if len(content) > max_bytes:  # no Content-Length, and more than the cap arrived
                raise _too_big(repo_id, path, max_bytes)
            if complete:
                return content, commit
            if attempt < self.retries:  # cut short: parsing half a JSON file would blame the repo
                self._run(self._pause_before_retry(attempt, None))
        raise HubUnavailable(f"{path}: the Hub kept cutting the response short",
                             hint="retry later; if it persists the file may be damaged on the Hub")

    def read_range(self, repo_id: str, revision: str, path: str, start: int, length: int) -> bytes:
        """Read `length` bytes at `start` with a Range request; never more, even if Range is ignored."""
        return self._run(self.range_steps(repo_id, revision, path, start, length))

    def range_steps(self, repo_id: str, revision: str, path: str, start: int, length: int, *,
                    length_at_redirect: Callable[[], int] | None = None,
                    ready: Callable[[Callable[[], None]], None] | None = None) -> Steps[bytes]:
        """`read_range` as steps, for `start` (many reads in flight on the HTTP thread, none blocking a thread).

        `length_at_redirect` serves a read started before its size is known (fetch starts header reads while
        the index that sizes them is still arriving): the request asks for `length`, and once the Hub redirects
        it (to its CDN, as it does for weight files) the range asked from there is what the callable returns;
        `ready(callback)`, when given, calls back once it can answer without waiting, and the hop waits for that
        (run by `start` only: a blocking read knows its length).
        """
        asked = length

        def range_header(redirected: bool) -> Steps[dict[str, str]]:
            nonlocal asked
            if redirected and length_at_redirect:
                if ready is not None:
                    yield _Until(ready)
                asked = min(length_at_redirect(), constants.SMALL_FILE_CAP)
            else:
                asked = min(length, constants.SMALL_FILE_CAP)
            return {"Range": f"bytes={start}-{start + asked - 1}"}

        url = self.file_url(repo_id, revision, path)
        for attempt in range(self.retries + 1):
            response, _ = yield from self._request_steps("GET", url, headers=range_header,
                                                         context=(repo_id, revision, path), allow=(416,),
                                                         limit=lambda: start + asked)
            if response.status == 416:
                response.close()
                raise BadHeader(f"{path}: the header runs past the end of the file (the Hub has no bytes "
                                f"{start:,}-{start + asked - 1:,})")
            if response.status == 206:
                data, _ = _read(response, asked)
            elif response.status == 200:  # the server ignored Range and sends the file from byte 0
                data, _ = _read(response, start + asked)
                data = data[start:]
            else:
                response.close()
                raise HubUnavailable(f"the Hub answered HTTP {response.status} to a range read of {path}")
            expected = _expected_length(response, start, asked)
            if len(data) >= expected:
                if self.on_range_read:
                    self.on_range_read(path)
                return data
            if attempt < self.retries:
                yield from self._pause_before_retry(attempt, None)
        raise HubUnavailable(f"{path}: the Hub kept cutting the response short ({len(data):,} of {expected:,} bytes)",
                             hint="retry later; if it persists the file may be damaged on the Hub")

    def start(self, steps: Steps[T], on_done: Callable[[T | None, BaseException | None], None]) -> None:
        """Run `steps` (e.g. `range_steps`) without a thread of its own: each request is handed to the HTTP
        thread, whose callback takes the next step there. `on_done(result, None)` or `on_done(None, error)`
        runs on that thread (or on this one, if the steps end before their first request): it must be quick.
        The rules are `_request`'s, as for a blocking call: `start` only changes who waits."""
        _StepRun(self.transport, steps, on_done).advance()

    def map_concurrent(self, function: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """Run `function` over `items` at once; the first error (in item order) wins.

        Low-level threads, not a ThreadPoolExecutor (whose threads the interpreter joins at exit): on Ctrl-C
        the client is cancelled, KeyboardInterrupt propagates, and the process exits without waiting.
        """
        items = list(items)
        if len(items) <= 1:
            return [function(item) for item in items]
        return _run_in_threads(function, items, min(len(items), self.concurrency), self.cancel)

    # -- plumbing -------------------------------------------------------------------------

    def _request(self, method: str, url: str, *, context: tuple[str, str, str | None], limit: int,
                 allow: tuple[int, ...] = (), headers: dict[str, str] | None = None) -> tuple[Response, str | None]:
        return self._run(self._request_steps(method, url, context=context, limit=limit, allow=allow, headers=headers))

    def _run(self, steps: Steps[T]) -> T:
        """Take `steps` on this thread: each request sent and waited for here, each pause slept here."""
        value: object = None
        error: BaseException | None = None
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as stop:
                return stop.value
            value = error = None
            try:
                if isinstance(step, _Send):
                    value = self.transport.request(step.method, step.url, step.headers, limit=step.limit,
                                                   origin=step.origin)
                elif isinstance(step, _Sleep):
                    self.transport.sleep(step.seconds)
                else:  # no blocking read passes range_steps a `ready`: this thread would only wait on another
                    raise TypeError("a step that waits for a callback runs on the HTTP thread only (start)")
            except TransportError as exc:
                error = exc

    def _request_steps(self, method: str, url: str, *, context: tuple[str, str, str | None],
                       limit: int | Callable[[], int], headers: dict | Callable[[bool], Steps[dict]] | None = None,
                       allow: tuple[int, ...] = ()) -> Steps[tuple[Response, str | None]]:
        """Send with retries and manual redirects; return a 2xx (or `allow`ed) answer, its body taken up to
        `limit` bytes, and the X-Repo-Commit the Hub sent along the way, or raise a gpumem error. `headers` may be
        steps: headers(redirected) gives each hop's; `limit` may be a callable, called after `headers` each hop."""
        for attempt in range(self.retries + 1):
            try:
                response, commit = yield from self._send_following_redirects(method, url, headers or {}, limit)
            except (DeadlinePassed, Cancelled) as exc:
                raise _stopped(exc) from None
            except TransportError as exc:
                if attempt == self.retries or exc.permanent:
                    raise HubUnavailable(f"could not reach {self.endpoint}: {exc.reason}",
                                         hint="check your connection or HF_ENDPOINT; offline uses cached results",
                                         hint_options=("offline",)) from None
                yield from self._pause_before_retry(attempt, None)
                continue
            if response.status < 300 or response.status in allow:
                return response, commit
            if response.status in _RETRY_STATUSES and attempt < self.retries:
                retry_after = response.headers.get("Retry-After")
                response.close()
                yield from self._pause_before_retry(attempt, retry_after)
                continue
            raise translate_error(response, self.endpoint, *context, has_token=self.has_token)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _headers_for(self, origin: Origin, headers: dict[str, str]) -> dict[str, str]:
        """The one place the token is attached: only to the endpoint's own scheme, host and port."""
        if self._token.value and origin == self._origin:
            return {**headers, "Authorization": f"Bearer {self._token.value}"}
        return headers

    def _send_following_redirects(self, method: str, url: str, headers: dict | Callable[[bool], Steps[dict]],
                                  limit: int | Callable[[], int]) -> Steps[tuple[Response, str | None]]:
        commit = None
        for hop in range(constants.MAX_REDIRECTS + 1):
            try:
                if not url.isascii() or _PATH_CONTROL.search(url):  # a raw byte in a Location: no URL to send
                    raise ValueError("not a plain ASCII URL")
                origin = Origin.of(url)
            except ValueError:
                raise HubUnavailable(f"the Hub redirected to an address gpumem cannot use ({clean(_strip_query(url), 200)})") from None
            sent = (yield from headers(hop > 0)) if callable(headers) else headers  # (may wait for what a hop asks)
            started = time.monotonic()
            try:
                response = yield _Send(method, url, self._headers_for(origin, sent),
                                       limit() if callable(limit) else limit, origin)
            except TransportError as exc:
                self._record(method, url, type(exc).__name__, 0, started)
                raise
            self._record(method, url, response.status, _content_length(response) or 0, started)
            if origin == self._origin and commit is None:
                commit = _valid_sha(response.headers.get("X-Repo-Commit"))
            if response.status not in _REDIRECTS:
                return response, commit
            location = response.headers.get("Location")
            response.close()
            if not location:
                raise HubUnavailable(f"the Hub answered HTTP {response.status} without saying where to "
                                     f"({_strip_query(url)})", hint="retry later; the server is misbehaving")
            try:
                target = _redirect_target(url, location.strip())
            except ValueError:  # urlsplit refuses it, e.g. a host in brackets that do not close
                raise HubUnavailable(f"the Hub redirected to an address gpumem cannot use ({clean(_strip_query(location), 200)})") from None
            if origin.scheme == "https" and not target.lower().startswith("https://"):
                raise HubUnavailable(f"the Hub redirected from https to an insecure address ({clean(_strip_query(target), 200)}); "
                                     "refusing to follow it", hint="check HF_ENDPOINT; the server may be compromised")
            url = target
        raise HubUnavailable(f"too many redirects (over {constants.MAX_REDIRECTS}) reading {_strip_query(url)}")

    def _pause_before_retry(self, attempt: int, retry_after: str | None) -> Steps[None]:
        delay = _retry_after_seconds(retry_after)
        if delay is None:
            delay = self.backoff * (2**attempt) * random.uniform(0.5, 1.0)  # exponential backoff with jitter
        left = self._deadline.remaining()
        if left is not None and delay >= left:
            raise HubUnavailable("the deadline would pass while waiting to retry the Hub",
                                 hint="retry later or raise deadline", hint_options=("deadline",))
        try:
            yield _Sleep(delay)
        except (DeadlinePassed, Cancelled) as exc:
            raise _stopped(exc) from None

    def _record(self, method: str, url: str, status: int | str, received: int, started: float) -> None:
        # list.append is atomic: no lock, which 64 threads would queue on behind the GIL
        self.log.append(RequestRecord(method, clean(_strip_query(url), 300), status, received,
                                      time.monotonic() - started))


class _StepRun:
    """One run of steps on the HTTP thread (HubClient.start). An object rather than closures: a closure passing
    itself on as the next callback is a reference cycle, which kept each read's answer (and, through on_done,
    every parsed header of its repo) alive until a garbage collection, and the CLI runs without one."""

    def __init__(self, transport: Transport, steps: Steps[Any], on_done: Callable[[Any, BaseException | None], None]):
        self.transport, self.steps, self.on_done = transport, steps, on_done

    def advance(self, value: object = None, error: BaseException | None = None) -> None:
        steps, transport = self.steps, self.transport
        while True:
            try:
                step = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as stop:
                self.on_done(stop.value, None)
                return
            except BaseException as exc:  # noqa: BLE001 - handed to on_done, whose caller raises it
                self.on_done(None, exc)
                return
            value = error = None
            try:
                if isinstance(step, _Send):
                    transport.start(step.method, step.url, step.headers, limit=step.limit, origin=step.origin,
                                    on_done=self.advance)
                elif isinstance(step, _Sleep):
                    transport.call_later(step.seconds, self.woken)
                else:
                    step.ready(self.ready)
                return
            except Exception as exc:  # noqa: BLE001 - refused before it was sent (TransportError), or a fault:
                error = exc  # the steps see it and end through on_done, never lost on the HTTP thread

    def woken(self) -> None:
        """A retry's pause is over, or the transport was cancelled during it."""
        try:
            self.transport.raise_if_stopped()
        except TransportError as exc:
            self.advance(None, exc)
        else:
            self.advance()

    def ready(self) -> None:
        """What a step waited for is there (called from any thread): go on on the HTTP thread."""
        self.transport.call_soon(self.advance)


def _run_in_threads(function: Callable[[T], R], items: list[T], workers: int, cancel: Callable[[], None]) -> list[R]:
    results: list = [None] * len(items)
    errors: dict[int, BaseException] = {}
    lock = threading.Lock()
    done = threading.Event()
    state = {"next": 0, "alive": workers}

    def work() -> None:
        while True:
            with lock:
                index = state["next"]
                state["next"] += 1
            if index >= len(items):
                break
            try:
                results[index] = function(items[index])
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
                with lock:
                    errors[index] = exc
        with lock:
            state["alive"] -= 1
            if state["alive"] == 0:
                done.set()

    for _ in range(workers):  # _thread: Thread.start() waits for each thread to run, 4 s for 163 on a busy GIL
        _thread.start_new_thread(work, ())
    try:
        while not done.wait(0.2):  # short waits: the signal handler (Ctrl-C) runs between them
            pass
    except BaseException:
        cancel()
        raise
    if errors:
        raise errors[min(errors)]
    return results


def _read(response: Response, limit: int) -> tuple[bytes, bool]:
    """The body up to `limit` bytes, with the transport's failures as gpumem errors."""
    try:
        return response.read(limit)
    except (DeadlinePassed, Cancelled) as exc:
        raise _stopped(exc) from None
    except TransportError as exc:
        raise HubUnavailable(f"the Hub's answer could not be read: {exc.reason}") from None


def _stopped(exc: TransportError) -> GpumemError:
    return Interrupted("interrupted") if isinstance(exc, Cancelled) else deadline_error()


def deadline_error() -> HubUnavailable:
    """What a read stopped by the client's total deadline raises."""
    return HubUnavailable("the deadline passed before the Hub answered", hint="retry later or raise deadline",
                          hint_options=("deadline",))


def parse_model_info(body: bytes, repo_id: str) -> RepoListing:
    """The commit sha and file list of a model-info answer; HubUnavailable for anything malformed."""
    unreadable = HubUnavailable(f"the Hub sent an unreadable model-info answer for {repo_id}",
                                hint="retry later; if it persists the Hub (or HF_ENDPOINT's server) is misbehaving")
    try:
        info = json.loads(body)
    except (ValueError, RecursionError):
        raise unreadable from None
    if not isinstance(info, dict):
        raise unreadable
    sha = info.get("sha")
    if not isinstance(sha, str) or not _SHA.match(sha):
        raise HubUnavailable(f"the Hub's model-info answer for {repo_id} has no valid commit sha",
                             hint="retry later; if it persists the Hub (or HF_ENDPOINT's server) is misbehaving")
    siblings = info.get("siblings")
    if siblings is None:
        siblings = []
    if not isinstance(siblings, list):
        raise unreadable
    files = tuple(_repo_file(s) for s in siblings
                  if isinstance(s, dict) and isinstance(s.get("rfilename"), str) and _valid_path(s["rfilename"]))
    return RepoListing(repo_id, sha, files)


def _valid_path(path: str) -> bool:
    """A repo file path gpumem will request and show: relative, no dot segments, no control characters."""
    return (0 < len(path) <= 1000 and not path.startswith("/") and ".." not in path.split("/")
            and not _PATH_CONTROL.search(path))


def _valid_sha(value: str | None) -> str | None:
    return value if value and _SHA.match(value) else None


def translate_error(response: Response, endpoint: str, repo_id: str, revision: str, path: str | None,
                    *, has_token: bool) -> GpumemError:
    """Turn an error answer of the Hub into gpumem's error, with a one-line message and a hint."""
    code = response.headers.get("X-Error-Code", "")
    message = clean(response.headers.get("X-Error-Message", ""), 200)
    status = response.status
    response.close()
    token_hint, token = "pass token or set HF_TOKEN, or run `hf auth login`", ("token",)
    if code == "GatedRepo":
        return GatedRepo(f"{repo_id} is gated: your {'token has no access' if has_token else 'request had no token'}",
                         hint=f"request access at {endpoint}/{repo_id}, then {token_hint}", hint_options=token)
    if code == "RepoNotFound" or (status == 401 and not code and "credentials" not in message.lower()):
        return RepoNotFound(f"repository {repo_id} not found, or private and not visible to "
                            f"{'this token' if has_token else 'anonymous requests'}",
                            hint=f"check the spelling; for a private repo {token_hint}", hint_options=token)
    if code == "RevisionNotFound":
        return RevisionNotFound(f"revision {clean(revision, 120)!r} not found in {repo_id}",
                                hint="use a branch, tag, full commit sha or refs/pr/N")
    if code == "EntryNotFound" or (status == 404 and path):
        return EntryNotFound(f"{clean(path, 300)} not found in {repo_id} at {clean(revision, 120)}")
    if status == 404:  # the model-info API itself is missing: not a Hub, or a path in HF_ENDPOINT it lacks
        return NotFoundError(f"{endpoint} has no model-info API for {repo_id} (HTTP 404 without a Hub error code)",
                             hint="check HF_ENDPOINT: it must be the Hub's root address, e.g. https://huggingface.co")
    if status == 401:
        return AuthError("the Hub rejected the token", hint="check HF_TOKEN / token, or run `hf auth login` again",
                         hint_options=token)
    if status == 403:
        return AccessError(f"access to {repo_id} was refused ({message or 'HTTP 403'})", hint=token_hint, hint_options=token)
    if status in _RETRY_STATUSES:
        return HubUnavailable(f"the Hub kept answering HTTP {status} for {clean(path or repo_id, 300)}", hint="retry later")
    subject = clean(path or repo_id, 300)
    if 300 <= status < 400:
        return HubUnavailable(f"the Hub answered HTTP {status} (a redirect gpumem does not follow) for {subject}")
    return HubUnavailable(f"the Hub answered HTTP {status} for {subject}" + (f": {message}" if message else ""))


def _too_big(repo_id: str, path: str, max_bytes: int) -> BadConfig:
    return BadConfig(f"{clean(path, 300)}: over {max_bytes:,} bytes in {repo_id}; refusing to read it as metadata")


def _discover_token(token: str | bool | None) -> str | None:
    """An explicit token wins; False means none; None looks up HF_TOKEN, then the saved login (HF_TOKEN_PATH or
    HF_HOME/token) as huggingface_hub does, unless HF_HUB_DISABLE_IMPLICIT_TOKEN asks to send only explicit ones."""
    if token is False:
        return None
    if isinstance(token, str) and token.strip():
        return _checked_token(token.strip(), "token")
    if constants.implicit_token_disabled():
        return None
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if (value := os.environ.get(name, "").strip()):
            return _checked_token(value, name)
    path = os.environ.get("HF_TOKEN_PATH") or str(constants.hf_home() / "token")
    from .files import read_capped

    try:
        saved = read_capped(path, 4096).decode("utf-8", "replace").strip()
    except (OSError, GpumemError):
        return None
    return _checked_token(saved, "the saved login") if saved else None


def _checked_token(token: str, source: str) -> str:
    """A token as HTTP can carry it (printable ASCII, no spaces); registered for redaction either way."""
    register_secret(token)
    bad = next((i for i, c in enumerate(token) if not 33 <= ord(c) <= 126), None)
    if bad is not None:
        raise UsageError(f"{source} holds a character no Hugging Face token has (at position {bad + 1})",
                         hint="copy the token again from https://huggingface.co/settings/tokens", option="token")
    return token


def _repo_file(sibling: dict) -> RepoFile:
    lfs = sibling.get("lfs")
    if not isinstance(lfs, dict):
        lfs = {}
    size = lfs.get("size", sibling.get("size"))
    valid = isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**63
    return RepoFile(sibling["rfilename"], size if valid else None)


def _expected_length(response: Response, start: int, length: int) -> int:
    """Bytes a complete answer must hold: `length`, unless the file ends sooner."""
    total = _number(response.headers.get("Content-Range", "").rpartition("/")[2])
    if total is not None:
        return max(0, min(length, total - start))
    if response.status == 200 and (size := _content_length(response)) is not None:
        return max(0, min(length, size - start))
    return length


def _content_length(response: Response) -> int | None:
    """The Content-Length header as a number; None when absent or not a plain number."""
    return _number(response.headers.get("Content-Length", ""))


def _number(text: str | None) -> int | None:
    """A header's non-negative decimal number; None otherwise (str.isdigit alone takes '²', which int() refuses)."""
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    if (whole := _number(value)) is not None:
        seconds = float(whole)
    else:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
    return max(0.0, min(seconds, constants.RETRY_AFTER_CAP_S))


def _redirect_target(url: str, location: str) -> str:
    """urljoin(url, location), without its cost (~45 us a hop on the HTTP thread) for what a CDN redirect sends:
    a lower-case http(s) URL with a host, in printable ASCII without brackets, a fragment, `;` params (urljoin drops
    empty ones) or an empty query, which urljoin gives back unchanged."""
    if (location.startswith(("https://", "http://")) and location.isascii() and location.isprintable()
            and not any(mark in location for mark in "[]#;") and not location.endswith("?")
            and location.partition("://")[2][:1] not in ("", "/", "?")):
        return location
    return urljoin(url, location)


def _strip_query(url: str) -> str:
    return redact(url.split("?", 1)[0])
