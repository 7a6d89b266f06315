"""HTTP for the Hub client: libcurl (pycurl) on one driver thread, HTTP/2 where the server offers it.

Chosen by measurement (docs/benchmark.md#http-stack): over HTTPS a shard wave's requests share one HTTP/2
connection per host (the Hub and its CDN offer h2 in ALPN) instead of ~90 TLS handshakes, and libcurl parses in
C: the 405B wave's client CPU fell from ~0.48 s (http.client on threads) to 0.2-0.3 s through the Hub client's
threads (0.07 s for libcurl alone; the rest is handing transfers between threads). HTTP/1.1 servers still
work (libcurl negotiates). One process-wide `CurlMulti` is moved by one driver thread (the HTTP thread): a
thread hands it a transfer and waits (`request`), or hands it a callback that the HTTP thread runs when the
answer is in (`start`; the Hub client's shard waves), with timers and idle work between transfers. What this
layer guarantees whatever a server does:
- it adds no header of its own but Host, User-Agent, Accept and Accept-Encoding: identity (unless the caller
  asks gzip: the Hub's CDN then compresses text answers, and `read` inflates them); no redirect is
  followed, no Referer, cookie or .netrc credential is ever sent (which headers go where — the token — is
  the caller's business: this layer sends what it is given);
- a body is never taken past the caller's limit: the transfer is aborted when more arrives (gzip is
  inflated only up to the limit, never more: the limit is on the inflated size);
- every exchange ends by the deadline (libcurl's total timeout for each transfer), and `cancel()` ends
  every transfer of this transport at once, so a trickling body, header block or TLS handshake cannot
  hold a read open;
- at most `in_flight_cap()` connections are open in the whole process (set from `ulimit -n`), and at most
  MAX_CONCURRENCY transfers run at once per origin until it has answered over HTTP/2 (the rest wait here, not in
  libcurl, whose connect timeout would run while they wait);
- HTTP(S)_PROXY / NO_PROXY are read as urllib reads them, http:// proxies only; the CA bundle is
  REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, SSL_CERT_FILE or certifi's, loaded once per process.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import math
import os
import re
import select
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload
from urllib.parse import unquote, urlsplit

import pycurl

from ..constants import MAX_CONCURRENCY

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HTTP2 = bool(pycurl.version_info()[4] & pycurl.VERSION_HTTP2)  # PyPI's wheels have it; a distro's libcurl may not
_INFO_HTTP_VERSION = getattr(pycurl, "INFO_HTTP_VERSION", 0x200000 + 46)  # CURLINFO_HTTP_VERSION (libcurl >= 7.50)
_HTTP_VERSION_2 = 3  # CURL_HTTP_VERSION_2_0, as CURLINFO_HTTP_VERSION reports an HTTP/2 answer
_MAX_STREAMS = 256  # per HTTP/2 connection, at most (the server's own limit applies when lower)
_REDIRECT_BODY_CAP = 64 * 1024  # a redirect's body up to this is taken whole (it ends the exchange cleanly)
_UNSAFE_IN_HEADERS = re.compile("[\r\n\0]")  # a line break in a header would start another header
_IDLE_HANDLES = 256  # easy handles a transport keeps for reuse, at most (a wave's worth)


def _ignore(data: bytes) -> None:
    """A kept handle's callbacks until its next transfer sets its own."""


class TransportError(Exception):
    """The exchange failed below HTTP: `reason` is a short user-facing phrase; `permanent` means retrying
    cannot help (a name that does not resolve, a certificate that is not trusted, a bad proxy setting)."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class DeadlinePassed(TransportError):
    """The transport's deadline passed while the exchange was waiting or in flight."""


class Cancelled(TransportError):
    """`cancel()` was called (Ctrl-C): nothing more is sent."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port: what "the same server" means for the token (RFC 6454)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of an absolute http(s) URL; ValueError for anything else (ports over 65535 included).

        Known origins are looked up by the URL's text up to its path (urlsplit took ~25 us of the HTTP thread
        for each of a read's 326 hops): for a plain prefix that text alone decides what urlsplit finds."""
        end = url.find("://") + 3
        if end > 2:
            path = min((at for at in (url.find("/", end), url.find("?", end), url.find("#", end)) if at >= 0),
                       default=len(url))
            key = url[:path]
            if key.isascii() and key.isprintable() and " " not in key:  # nothing urlsplit strips or removes
                if (known := _KNOWN_ORIGINS.get(key)) is None:
                    known = cls._parse(url)
                    if len(_KNOWN_ORIGINS) < _KNOWN_ORIGINS_CAP:
                        _KNOWN_ORIGINS[key] = known
                return known
        return cls._parse(url)

    @classmethod
    def _parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            raise ValueError(f"scheme {scheme or '(none)'!r} is not http or https")
        if not parts.hostname:
            raise ValueError("no host name")
        return cls(scheme, parts.hostname, parts.port or _DEFAULT_PORTS[scheme])

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


_KNOWN_ORIGINS: dict[str, Origin] = {}  # by scheme://netloc as written
_KNOWN_ORIGINS_CAP = 64


def ca_bundle() -> str | None:
    """The CA bundle to trust: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or SSL_CERT_FILE, else certifi's, else libcurl's."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if value := os.environ.get(name):
            return value
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


def in_flight_cap() -> int:
    """Connections open at once in the whole process: a share of the open-file limit."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 128
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(2, min(256, (soft - 48) // 2))


class Headers(dict[str, str]):
    """An answer's header fields by lower-case name (the first of repeated ones); `get` takes any case."""

    @overload  # type: ignore[override]
    def get(self, name: str, default: None = None) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return dict.get(self, name.lower(), default)


class Response:
    """One answer: status, headers and the body as far as the request's limit allowed, read with `read(limit)`."""

    def __init__(self, status: int, headers: Headers, body: bytes, complete: bool) -> None:
        self.status = status
        self.headers = headers
        self._body: bytes | None = body
        self._complete = complete

    def read(self, limit: int) -> tuple[bytes, bool]:
        """Up to `limit` body bytes (decoded); the bool is False when the body was cut short (the connection
        broke before its end). A body can be read once."""
        body, self._body = self._body or b"", None
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            inflater = zlib.decompressobj(wbits=31)
            try:
                content = inflater.decompress(body, limit)
            except zlib.error:
                raise TransportError("its gzip-compressed body is damaged", permanent=True) from None
            # a gzip stream that stops before its end (and before the limit) is a body cut short
            return content, self._complete and (inflater.eof or len(content) >= limit)
        if encoding != "identity":
            raise TransportError(f"the server sent a body in an encoding gpumem did not ask for ({encoding[:20]!r})",
                                 permanent=True)
        return body[:limit], self._complete

    def close(self) -> None:
        """Drop the body (the transfer itself is already over)."""
        self._body = None


class Transport:
    """Exchanges with any number of origins, with a deadline and cancellation for every one in flight."""

    def __init__(self, *, timeout: float, user_agent: str) -> None:
        self.timeout = timeout  # connect, and the longest wait with no byte arriving
        self.user_agent = user_agent
        self._proxies = _environment_proxies()
        self._cafile = ca_bundle()
        self._ca_readable = False
        self._cond = threading.Condition()
        self._end: float | None = None
        self._cancelled = False
        self._idle_handles: list[pycurl.Curl] = []  # finished transfers' handles, for the next ones

    # -- deadline and cancellation ---------------------------------------------------------------------

    def set_deadline(self, end: float | None) -> None:
        """Every exchange ends by `end` (time.monotonic()); None: no deadline. Also lifts a cancel."""
        with self._cond:
            self._end, self._cancelled = end, False
            self._cond.notify_all()

    def cancel(self) -> None:
        """Stop now: end every transfer of this transport in flight; every exchange after this raises Cancelled."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()
        _driver().cancel(self)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def remaining(self) -> float | None:
        return None if self._end is None else self._end - time.monotonic()

    def raise_if_stopped(self) -> None:
        """Cancelled or DeadlinePassed when either applies."""
        if self._cancelled:
            raise Cancelled("interrupted")
        left = self.remaining()
        if left is not None and left <= 0:
            raise DeadlinePassed("the deadline passed before the Hub answered")

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, waking at once on cancel()."""
        with self._cond:
            self._cond.wait_for(lambda: self._cancelled, timeout=seconds)
        self.raise_if_stopped()

    # -- exchanges ----------------------------------------------------------------------------------------

    def request(self, method: str, url: str, headers: dict[str, str], *, limit: int,
                origin: Origin | None = None) -> Response:
        """Send one request and take its answer, the body up to `limit` bytes; raise TransportError when that
        fails before the status and headers arrived (a body cut short is `read`'s False instead). `origin` is
        the URL's, when the caller has already parsed it (the Hub client does, for the token)."""
        transfer = self._transfer(method, url, headers, limit, origin, None)
        _driver().submit(transfer)
        assert transfer.done is not None
        transfer.done.wait()
        return transfer.response()

    def start(self, method: str, url: str, headers: dict[str, str], *, limit: int, origin: Origin | None = None,
              on_done: Callable[[Response | None, TransportError | None], None]) -> None:
        """`request` without waiting: `on_done(response, None)` or `on_done(None, error)` runs on the HTTP thread
        once the answer is in, so it must be quick and must not block (a request that cannot be sent at all
        raises here, as `request` does)."""
        _driver().submit(self._transfer(method, url, headers, limit, origin, on_done))

    def call_later(self, seconds: float, callback: Callable[[], None]) -> None:
        """Run `callback` on the HTTP thread in `seconds`, or at once when this transport is cancelled while it
        waits (the callback sees `cancelled`)."""
        _driver().post_timer(self, time.monotonic() + seconds, callback)

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the HTTP thread as soon as it comes round (from any thread)."""
        _driver().post_timer(self, 0.0, callback)

    def when_idle(self, work: Callable[[], None]) -> None:
        """Run `work` on the HTTP thread when no transfer needs it (no socket ready, no timer due): CPU work on
        what the transfers bring, one piece at a time between them, so it never holds the GIL against the
        thread that moves them. It runs even after `cancel()` (whoever waits for it is told that way); `work`
        must catch its own errors."""
        _driver().post_idle(work)

    def _transfer(self, method: str, url: str, headers: dict[str, str], limit: int, origin: Origin | None,
                  on_done: Callable[[Response | None, TransportError | None], None] | None) -> _Transfer:
        if method not in ("GET", "HEAD"):
            raise ValueError(f"{method} is not a method this client sends")
        origin = origin or Origin.of(url)
        self.raise_if_stopped()
        fields = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", **headers}
        if not url.isascii() or _UNSAFE_IN_HEADERS.search(url + "".join(name + value for name, value in fields.items())):
            raise TransportError("the request could not be encoded", permanent=True)
        if self._cafile:
            self._check_ca_bundle()
        transfer = _Transfer(self, self._handle(), limit, on_done, origin)
        handle = transfer.handle
        handle.setopt(pycurl.URL, url)
        handle.setopt(pycurl.NOBODY, method == "HEAD")
        handle.setopt(pycurl.HTTPHEADER, [f"{name}: {value}" for name, value in fields.items()])
        self._set_proxy(handle, origin)
        return transfer

    def _handle(self) -> pycurl.Curl:
        """An easy handle with this transport's settings: one a finished transfer left, else a new one. Reused, as
        libcurl advises: a new one per transfer (allocated, set up with 10 options, closed) was ~15 us of the
        HTTP thread's time per transfer, 326 per DeepSeek-R1 read. Every transfer sets all else it needs."""
        try:
            return self._idle_handles.pop()
        except IndexError:
            pass
        handle = pycurl.Curl()
        handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        if _HTTP2:
            handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)  # h2 over TLS when offered
        handle.setopt(pycurl.PIPEWAIT, 1)  # wait for a connection that may multiplex rather than open another
        handle.setopt(pycurl.NOSIGNAL, 1)
        if self._cafile:
            handle.setopt(pycurl.CAINFO, self._cafile)
            handle.unsetopt(pycurl.CAPATH)  # the bundle alone is trusted, not also a directory built into libcurl
        handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(self.timeout * 1000)))
        handle.setopt(pycurl.LOW_SPEED_LIMIT, 1)  # no byte for `timeout` seconds: give up
        handle.setopt(pycurl.LOW_SPEED_TIME, max(1, round(self.timeout)))
        return handle

    def _release(self, handle: pycurl.Curl) -> None:
        """Keep a finished transfer's handle for the next one (its callbacks no longer refer to that transfer)."""
        handle.setopt(pycurl.HEADERFUNCTION, _ignore)
        handle.setopt(pycurl.WRITEFUNCTION, _ignore)
        if len(self._idle_handles) < _IDLE_HANDLES:
            self._idle_handles.append(handle)
        else:
            handle.close()

    def _check_ca_bundle(self) -> None:
        """A CA bundle that cannot be read is said so (libcurl would report every certificate as untrusted)."""
        if self._ca_readable:
            return
        try:
            with open(self._cafile or "", "rb"):
                self._ca_readable = True
        except OSError as exc:
            raise TransportError(f"the CA bundle {self._cafile} cannot be read ({exc.strerror or exc})",
                                 permanent=True) from None

    def _set_proxy(self, handle: pycurl.Curl, origin: Origin) -> None:
        """The proxy for this origin from HTTP(S)_PROXY, honouring NO_PROXY; "" (never libcurl's own reading
        of the environment) for a direct connection. The proxy's login is cleared first: a reused handle would
        otherwise send the last transfer's login (HTTP_PROXY's) to another proxy (HTTPS_PROXY's)."""
        handle.unsetopt(pycurl.PROXYUSERNAME)
        handle.unsetopt(pycurl.PROXYPASSWORD)
        url = self._proxies.get(origin.scheme)
        if url:
            import urllib.request

            # proxy_bypass_environment is public in urllib.request but missing from typeshed's stubs
            if urllib.request.proxy_bypass_environment(origin.host, self._proxies):  # type: ignore[attr-defined]
                url = None
        if not url:
            handle.setopt(pycurl.PROXY, "")
            return
        parts = urlsplit(url if "://" in url else f"http://{url}")
        try:
            proxy = Origin.of(parts.geturl())
        except ValueError:
            raise TransportError(f"the {origin.scheme} proxy setting is not a usable URL", permanent=True) from None
        if proxy.scheme != "http":
            raise TransportError("only http:// proxies are supported (the tunnel itself carries TLS)", permanent=True)
        handle.setopt(pycurl.PROXY, str(proxy))
        if parts.username is not None:
            handle.setopt(pycurl.PROXYUSERNAME, unquote(parts.username))
            handle.setopt(pycurl.PROXYPASSWORD, unquote(parts.password or ""))

    def close(self) -> None:
        """Close the handles kept for reuse (connections belong to the process-wide driver, which reuses them)."""
        while self._idle_handles:
            self._idle_handles.pop().close()


# -- one transfer and the driver that moves them all --------------------------------------------------------

class _Transfer:
    """One request on one libcurl easy handle: the header block, the body up to the limit, the outcome."""

    def __init__(self, transport: Transport, handle: pycurl.Curl, limit: int,
                 on_done: Callable[[Response | None, TransportError | None], None] | None, origin: Origin) -> None:
        self.transport = transport
        self.limit = limit
        self.origin = origin
        self.on_done = on_done  # None: a thread waits on `done` and takes the response itself
        self.lines: list[bytes] = []  # header lines as libcurl hands them over (parsed once, when taken)
        self.chunks: list[bytes] = []
        self.size = 0
        self.capped = False  # more than the limit arrived: the transfer was aborted on purpose
        self.status = 0
        self.error: tuple[int, str] | None = None
        self.cancelled = False
        self.done = threading.Event() if on_done is None else None  # a thread waits on it, or on_done is called
        self.handle = handle
        handle.setopt(pycurl.HEADERFUNCTION, self.lines.append)
        handle.setopt(pycurl.WRITEFUNCTION, self._write)

    def _write(self, data: bytes) -> int | None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > self.limit and self.size > self._cap():
            self.capped = True
            return 0  # abort: nothing past the caller's limit is taken
        return None

    def _cap(self) -> int:
        """Raw bytes to take: the limit, with room for a gzip body's framing (it inflates only to the limit);
        a redirect's short body whole, so that an HTTP/1.1 connection is not closed to cut it."""
        status, headers, _ = self.head()
        cap = self.limit
        if (headers.get("content-encoding") or "identity").strip().lower() != "identity":
            cap += self.limit // 64 + 1024
        return max(cap, _REDIRECT_BODY_CAP) if 300 <= status < 400 else cap

    def head(self) -> tuple[int, Headers, bool]:
        """The final answer's status and header fields (after any 1xx, or a proxy's CONNECT answer) and whether
        they arrived whole."""
        lines = self.lines
        start = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith(b"HTTP/")), None)
        if start is None:
            return 0, Headers(), False
        headers, whole = Headers(), False
        for line in lines[start + 1:]:
            if line in (b"\r\n", b"\n"):
                whole = True
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if colon:
                headers.setdefault(name.strip().lower(), value.strip())
        code = lines[start].split(None, 2)[1:2]
        status = int(code[0]) if code and code[0].isdigit() else 0
        return status, headers, whole and status >= 200

    def finish(self, error: tuple[int, str] | None, *, cancelled: bool = False) -> None:
        handle = self.handle
        self.status = handle.getinfo(pycurl.RESPONSE_CODE) if not (cancelled or error and error[0] < 0) else 0
        self.transport._release(handle)
        self.error, self.cancelled = error, cancelled
        if self.on_done is None:
            assert self.done is not None
            self.done.set()
            return
        try:
            response = self.response()
        except TransportError as exc:
            self.on_done(None, exc)
        else:
            self.on_done(response, None)

    def response(self) -> Response:
        transport = self.transport
        if self.cancelled or transport.cancelled:
            raise Cancelled("interrupted")
        code = self.error[0] if self.error else 0
        if code == pycurl.E_OPERATION_TIMEDOUT:
            left = transport.remaining()
            if left is not None and left <= 0.01:
                raise DeadlinePassed("the deadline passed before the Hub answered")
        _, headers, whole = self.head()
        if self.error and not (whole and self.status):
            raise _failure(*self.error, transport._cafile)
        body = b"".join(self.chunks)
        complete = self.error is None or (code == pycurl.E_WRITE_ERROR and self.capped)
        return Response(self.status, headers, body, complete)


class _Driver:
    """One CurlMulti for the process and the thread that drives it: threads `submit` a transfer and wait on it,
    or hand it a callback that runs here when it ends; timers and idle work run here between transfers."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.multi = pycurl.CurlMulti()
        cap = in_flight_cap()
        self.multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, cap)
        self.multi.setopt(pycurl.M_MAXCONNECTS, cap)
        # a wave's streams on one HTTP/2 connection per host where the server allows as many (libcurl's default, 100,
        # opened a second connection for DeepSeek-R1's 163 shards: two more TLS handshakes, two more server threads)
        try:  # libcurl >= 7.67: a pycurl built on an older one lacks the name, an older libcurl refuses it
            self.multi.setopt(pycurl.M_MAX_CONCURRENT_STREAMS, _MAX_STREAMS)
        except (AttributeError, pycurl.error):
            pass  # libcurl's own limit then (100 streams, more on a second connection)
        self.multiplexing: set[Origin] = set()  # origins that answered over HTTP/2: no cap on their transfers
        self.active: collections.Counter[Origin] = collections.Counter()  # running transfers per origin
        self.queued: dict[Origin, collections.deque[_Transfer]] = {}  # waiting for one of MAX_CONCURRENCY
        self.lock = threading.Lock()
        self.incoming: list[_Transfer] = []
        self.cancels: list[Transport] = []
        self.posted_timers: list[tuple[float, Transport, Callable[[], None]]] = []
        self.posted_idle: list[Callable[[], None]] = []
        self.running: dict[pycurl.Curl, _Transfer] = {}
        self.timers: list[tuple[float, int, Transport, Callable[[], None]]] = []  # a heap by due time
        self.idle: collections.deque[Callable[[], None]] = collections.deque()
        self.order = itertools.count()
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_read, False)
        os.set_blocking(self.wake_write, False)
        self.woken = False  # a byte is in the wake-up pipe since the step began
        self.posted_here = False  # the HTTP thread itself posted something since the step began
        thread = threading.Thread(target=self._run, name="gpumem-http", daemon=True)
        thread.start()  # nothing is posted from it before a transfer is submitted, after this returns
        self.thread_id = thread.ident

    def submit(self, transfer: _Transfer) -> None:
        self._post(lambda: self.incoming.append(transfer))

    def cancel(self, transport: Transport) -> None:
        self._post(lambda: self.cancels.append(transport))

    def post_timer(self, transport: Transport, due: float, callback: Callable[[], None]) -> None:
        self._post(lambda: self.posted_timers.append((due, transport, callback)))

    def post_idle(self, work: Callable[[], None]) -> None:
        self._post(lambda: self.posted_idle.append(work))

    def _post(self, change: Callable[[], None]) -> None:
        with self.lock:
            change()
            if threading.get_ident() == self.thread_id:  # a callback here: taken at the next step, no pipe to wake
                self.posted_here = True  # (a write, a poll and a read per step, each letting go of the GIL)
                return
            if self.woken:
                return
            self.woken = True
        try:
            os.write(self.wake_write, b"x")
        except BlockingIOError:
            pass  # the pipe is full: the driver is awake anyway

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception:  # noqa: BLE001 - a fault here must fail the transfers in flight, not hang their threads
                waiting = [t for queue in self.queued.values() for t in queue]
                self.queued.clear()
                for transfer in waiting:  # never started: nothing of theirs to take back from libcurl
                    try:
                        transfer.finish((-1, "the HTTP driver failed"))
                    except Exception:  # noqa: BLE001 - a callback's fault must not end the thread every read needs
                        pass
                for handle in list(self.running):
                    try:
                        self._end(handle, (-1, "the HTTP driver failed"))
                    except Exception:  # noqa: BLE001 - a callback's fault must not end the thread every read needs
                        pass

    def _step(self) -> None:
        """Take what threads posted, move every transfer as far as it goes, hand back the finished ones, run the
        timers that are due, then one piece of idle work if nothing else is ready, else wait."""
        multi = self.multi
        with self.lock:
            incoming, self.incoming = self.incoming, []
            cancels, self.cancels = self.cancels, []
            timers, self.posted_timers = self.posted_timers, []
            self.idle.extend(self.posted_idle)
            self.posted_idle = []
            self.woken = self.posted_here = False
        for due, transport, callback in timers:
            heapq.heappush(self.timers, (due, next(self.order), transport, callback))
        for transfer in incoming:
            if transfer.transport in cancels or transfer.transport.cancelled:
                transfer.finish(None, cancelled=True)
                continue
            self._add(transfer)
        if cancels:
            for handle, transfer in list(self.running.items()):
                if transfer.transport in cancels:
                    self._end(handle, None, cancelled=True)
            for waiting in self.queued.values():
                for transfer in [t for t in waiting if t.transport in cancels]:
                    waiting.remove(transfer)
                    transfer.finish(None, cancelled=True)
            for index, (_, order, transport, callback) in enumerate(self.timers):
                if transport in cancels:  # a cancelled wait ends now
                    self.timers[index] = (0.0, order, transport, callback)
            heapq.heapify(self.timers)
        multi.perform()
        while True:
            queued, finished, failed = multi.info_read()
            for handle in finished:
                self._end(handle, None)
            for handle, code, message in failed:
                self._end(handle, (code, message))
            if not queued:
                break
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            heapq.heappop(self.timers)[3]()
        if not self.idle:
            self._wait()
        elif self._ready():  # a socket, a timer or a thread first: no need to poll again
            self._drain()
        else:
            self.idle.popleft()()

    def _add(self, transfer: _Transfer) -> None:
        """Start a transfer, or queue it while its origin (not known to multiplex) has MAX_CONCURRENCY running."""
        origin = transfer.origin
        if origin not in self.multiplexing and self.active[origin] >= MAX_CONCURRENCY:
            self.queued.setdefault(origin, collections.deque()).append(transfer)
            return
        left = transfer.transport.remaining()
        if left is not None and left <= 0:
            transfer.finish((pycurl.E_OPERATION_TIMEDOUT, "the deadline passed"))
            return
        # the deadline's share from now, not from when the transfer was made (it may have waited); 0: none
        transfer.handle.setopt(pycurl.TIMEOUT_MS, 0 if left is None else max(1, int(left * 1000)))
        self.active[origin] += 1
        self.running[transfer.handle] = transfer
        try:
            self.multi.add_handle(transfer.handle)
        except pycurl.error:
            self._end(transfer.handle, (-1, "the HTTP driver refused the transfer"))

    def _end(self, handle: pycurl.Curl, error: tuple[int, str] | None, *, cancelled: bool = False) -> None:
        transfer = self.running.pop(handle)
        origin = transfer.origin
        self.active[origin] -= 1
        if error is None and not cancelled and handle.getinfo(_INFO_HTTP_VERSION) >= _HTTP_VERSION_2:
            self.multiplexing.add(origin)
        try:
            self.multi.remove_handle(handle)
        except pycurl.error:
            pass  # not (or no longer) on the multi handle
        waiting = self.queued.get(origin)
        while waiting and (origin in self.multiplexing or self.active[origin] < MAX_CONCURRENCY):
            self._add(waiting.popleft())
        if waiting is not None and not waiting:
            del self.queued[origin]
        transfer.finish(error, cancelled=cancelled)

    def _poller(self) -> select.poll:
        poller = select.poll()
        poller.register(self.wake_read, select.POLLIN)
        reads, writes, errors = self.multi.fdset()
        masks: dict[int, int] = {}
        for fds, mask in ((reads, select.POLLIN), (writes, select.POLLOUT), (errors, select.POLLPRI)):
            for fd in fds:
                masks[fd] = masks.get(fd, 0) | mask
        for fd, mask in masks.items():
            poller.register(fd, mask)
        return poller

    def _ready(self) -> bool:
        """Whether a transfer, a timer or a thread needs the driver now."""
        if (self.posted_here or self.running and self.multi.timeout() == 0
                or self.timers and self.timers[0][0] <= time.monotonic()):
            return True
        return bool(self._poller().poll(0))

    def _wait(self) -> None:
        """Until a socket is ready, libcurl's timer or one of ours fires, or a thread posts something."""
        if self.posted_here:
            return
        wait: float | None = None
        if self.running:
            timeout = self.multi.timeout()
            if timeout == 0:
                return
            wait = min(timeout if timeout > 0 else 100, 1000)
        if self.timers:
            until = max(0.0, (self.timers[0][0] - time.monotonic()) * 1000)
            wait = until if wait is None else min(wait, until)
        self._poller().poll(None if wait is None else math.ceil(wait))
        self._drain()

    def _drain(self) -> None:
        """Empty the wake-up pipe (what the threads posted is taken at the next step)."""
        try:
            while os.read(self.wake_read, 4096):
                pass
        except BlockingIOError:
            pass


_DRIVER: _Driver | None = None
_DRIVER_LOCK = threading.Lock()


def _driver() -> _Driver:
    """The process's driver (a new one in a forked child, whose parent's thread did not come along)."""
    global _DRIVER
    with _DRIVER_LOCK:
        if _DRIVER is None or _DRIVER.pid != os.getpid():
            try:
                _DRIVER = _Driver()
            except (OSError, RuntimeError) as exc:  # no file descriptor or thread left for it
                raise TransportError(f"the HTTP thread cannot start ({exc})") from None
        return _DRIVER


def _environment_proxies() -> dict[str, str]:
    """urllib's reading of HTTP(S)_PROXY / NO_PROXY; urllib.request (14 ms of imports) only when one is set."""
    if not any(name.lower()[-6:] == "_proxy" for name in os.environ):
        return {}
    import urllib.request

    return urllib.request.getproxies_environment()


_WEIRD_SERVER_REPLY = 8  # CURLE_WEIRD_SERVER_REPLY (pycurl names it only for FTP)
_RESOLVE = {pycurl.E_COULDNT_RESOLVE_HOST, pycurl.E_COULDNT_RESOLVE_PROXY}
_UNTRUSTED = {pycurl.E_PEER_FAILED_VERIFICATION, pycurl.E_SSL_CACERT, pycurl.E_SSL_ISSUER_ERROR,
              pycurl.E_SSL_PINNEDPUBKEYNOTMATCH}
_UNENCODABLE = {pycurl.E_URL_MALFORMAT, pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_BAD_FUNCTION_ARGUMENT}


def _failure(code: int, message: str, cafile: str | None) -> TransportError:
    """A short, token-free phrase for what went wrong below HTTP."""
    if code in _RESOLVE:
        return TransportError("the host name does not resolve (no network?)", permanent=True)
    if code in _UNTRUSTED:
        # "SSL certificate OpenSSL verify result: unable to get local issuer certificate (20)" -> the reason alone
        why = re.sub(r"\s*\(\d+\)$", "", message.rpartition(": ")[2]).strip()[:120] or "no reason given"
        return TransportError(f"its TLS certificate is not trusted ({why}); set REQUESTS_CA_BUNDLE or SSL_CERT_FILE "
                              "to your CA bundle", permanent=True)
    if code == pycurl.E_SSL_CACERT_BADFILE:
        return TransportError(f"the CA bundle {cafile} cannot be read", permanent=True)
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return TransportError("timed out")
    if code == _WEIRD_SERVER_REPLY:
        return TransportError("its answer is not valid HTTP")
    if code in _UNENCODABLE:
        return TransportError("the request could not be encoded", permanent=True)
    return TransportError("connection failed")
