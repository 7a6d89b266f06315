"""HTTP/1.1 for the Hub client: http.client on threads, one SSL context per process, a pool per origin.

Chosen over requests and urllib3 by measurement (docs/benchmark.md): a fifth of requests' CPU per
request, and no new SSL context per connection. What this layer guarantees whatever a server does:
- every body read stops at the caller's limit (gzip is inflated only up to it, never more);
- every exchange ends by the deadline: a watchdog shuts down the sockets in flight when it passes or
  when `cancel()` is called, so a body, a header or a TLS handshake trickling a byte a second cannot
  hold a read open (a per-read timeout alone never fires on a trickle);
- at most `in_flight_cap()` connections are in flight in the whole process (set from `ulimit -n`),
  and each transport keeps at most as many idle ones.
Which headers go where (the token) is the caller's business: this layer sends what it is given.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
_CHUNK = 64 * 1024
_DRAIN_LIMIT = 64 * 1024  # a redirect or error body up to this is read so the connection can be reused


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
        """The origin of an absolute http(s) URL; ValueError for anything else (ports over 65535 included)."""
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


# -- process-wide state: one SSL context per CA bundle, one cap on connections in flight -------------

_LOCK = threading.Lock()
_SSL_CONTEXTS: dict[str | None, ssl.SSLContext] = {}
_IN_FLIGHT: threading.BoundedSemaphore | None = None


def ca_bundle() -> str | None:
    """The CA bundle to trust: REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or SSL_CERT_FILE, else certifi's, else the system's."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if value := os.environ.get(name):
            return value
    try:
        import certifi
    except ImportError:
        return None
    return certifi.where()


def ssl_context(cafile: str | None) -> ssl.SSLContext:
    """One verifying SSL context per CA bundle for the whole process (loading a bundle costs ~30 ms of CPU)."""
    with _LOCK:
        context = _SSL_CONTEXTS.get(cafile)
        if context is None:
            try:
                context = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise TransportError(f"the CA bundle {cafile} cannot be read ({getattr(exc, 'strerror', None) or exc})",
                                     permanent=True) from None
            _SSL_CONTEXTS[cafile] = context
        return context


def in_flight_cap() -> int:
    """Connections in flight for the whole process: a share of the open-file limit (idle ones take as many)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return 128
    if soft == resource.RLIM_INFINITY:
        return 256
    return max(2, min(256, (soft - 48) // 2))


def _in_flight() -> threading.BoundedSemaphore:
    global _IN_FLIGHT
    with _LOCK:
        if _IN_FLIGHT is None:
            _IN_FLIGHT = threading.BoundedSemaphore(in_flight_cap())
        return _IN_FLIGHT


def _shutdown(connection: http.client.HTTPConnection) -> None:
    """Wake any thread blocked on this connection's socket (the base method: SSLSocket's would drop its state)."""
    sock = connection.sock
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class Response:
    """One answer: status and headers read; the body is read once with `read(limit)` (or dropped by `close`)."""

    def __init__(self, transport: Transport, origin: Origin, connection: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse) -> None:
        self._transport = transport
        self._origin = origin
        self._connection: http.client.HTTPConnection | None = connection
        self._raw = raw
        self.status = raw.status
        self.headers = raw.headers

    def read(self, limit: int) -> tuple[bytes, bool]:
        """Up to `limit` body bytes (decoded), then close; the bool is False when the body was cut short
        (the connection broke before its end). The deadline and cancel() raise instead."""
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip"):
            self.close()
            raise TransportError(f"the server sent a body in an encoding gpumem did not ask for ({encoding[:20]!r})",
                                 permanent=True)
        decoder = zlib.decompressobj(wbits=31) if encoding != "identity" else None
        chunks, total, complete = [], 0, True
        try:
            while total < limit:
                if decoder is not None and decoder.unconsumed_tail:
                    raw = decoder.unconsumed_tail
                else:
                    raw = self._raw.read1(_CHUNK)
                    if not raw:  # the end, or a socket the watchdog shut down (checked below)
                        complete = not self._raw.length  # None (read to close) or 0 bytes still owed
                        break
                data = decoder.decompress(raw, limit - total) if decoder is not None else raw[: limit - total]
                chunks.append(data)
                total += len(data)
        except (OSError, http.client.HTTPException, zlib.error):
            complete = False
        finally:
            # Every promised byte read (http.client leaves such a response open until one more read): close
            # the response, which hands the socket back to its connection for the next request.
            fully_read = self._raw.isclosed() or self._raw.length == 0
            if fully_read:
                self._raw.close()
            self.close(reuse=fully_read and complete)
        if total < limit:
            self._transport.raise_if_stopped()
        return b"".join(chunks), complete

    def close(self, *, reuse: bool = False) -> None:
        """Give the connection back (to the idle pool when its answer was read to the end) and free the slot."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if not reuse:
            self._raw.close()
        self._transport._release(self._origin, connection, reuse=reuse and not self._raw.will_close)

    def drain(self) -> None:
        """Read a short body (a redirect's) to its end so the connection is reused; drop a long one."""
        length = self._raw.length
        if length is not None and length <= _DRAIN_LIMIT:
            try:
                self.read(_DRAIN_LIMIT + 1)
                return
            except TransportError:
                pass
        self.close()


class Transport:
    """Connections to any number of origins, a deadline and cancellation for every exchange in flight."""

    def __init__(self, *, timeout: float, user_agent: str) -> None:
        self.timeout = timeout  # connect, and each wait for bytes
        self.user_agent = user_agent
        self._proxies = _environment_proxies()
        self._cafile = ca_bundle()
        self._cond = threading.Condition()
        self._idle: dict[Origin, list[http.client.HTTPConnection]] = {}
        self._idle_count = 0
        self._active: set[http.client.HTTPConnection] = set()
        self._end: float | None = None
        self._cancelled = False
        self._closed = False
        self._watchdog: threading.Thread | None = None

    # -- deadline and cancellation ---------------------------------------------------------------------

    def set_deadline(self, end: float | None) -> None:
        """Every exchange ends by `end` (time.monotonic()); None: no deadline. Also lifts a cancel."""
        with self._cond:
            self._end, self._cancelled = end, False
            self._cond.notify_all()

    def cancel(self) -> None:
        """Stop now: shut down every socket in flight; every exchange after this raises Cancelled."""
        with self._cond:
            self._cancelled = True
            for connection in self._active:
                _shutdown(connection)
            self._cond.notify_all()

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

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                left = self.remaining()
                if left is not None and left <= 0:
                    for connection in self._active:
                        _shutdown(connection)
                    self._cond.wait()  # until the deadline is restarted or the transport closed
                else:
                    self._cond.wait(left)

    # -- exchanges ----------------------------------------------------------------------------------------

    def request(self, method: str, url: str, headers: dict[str, str]) -> Response:
        """Send one request and read the status and headers; raise TransportError when that fails."""
        origin = Origin.of(url)
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        slot = _in_flight()
        while not slot.acquire(timeout=0.1):
            self.raise_if_stopped()
        try:
            reused, connection = self._connection(origin)
            sent = {"Host": origin.netloc, "User-Agent": self.user_agent, "Accept-Encoding": "identity", **headers}
            proxy_headers, target = self._proxy_target(connection, origin, target)
            try:
                return self._exchange(origin, connection, method, target, {**sent, **proxy_headers})
            except TransportError:
                if not reused or self._cancelled:
                    raise
            # A kept-alive connection the server had closed meanwhile: once more on a fresh one.
            connection = self._new_connection(origin)
            proxy_headers, target = self._proxy_target(connection, origin, target)
            return self._exchange(origin, connection, method, target, {**sent, **proxy_headers})
        except BaseException:
            slot.release()
            raise

    def _exchange(self, origin: Origin, connection: http.client.HTTPConnection, method: str, target: str,
                  headers: dict[str, str]) -> Response:
        self._register(connection)
        try:
            connection.request(method, target, headers=headers)
            raw = connection.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            self._unregister(connection)
            connection.close()
            self.raise_if_stopped()
            raise _failure(exc) from None
        return Response(self, origin, connection, raw)

    def _release(self, origin: Origin, connection: http.client.HTTPConnection, *, reuse: bool) -> None:
        self._unregister(connection)
        with self._cond:
            keep = reuse and not self._closed and self._idle_count < in_flight_cap()
            if keep:
                self._idle.setdefault(origin, []).append(connection)
                self._idle_count += 1
        if not keep:
            connection.close()
        _in_flight().release()

    def _register(self, connection: http.client.HTTPConnection) -> None:
        with self._cond:
            self.raise_if_stopped()
            self._active.add(connection)
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._watch, name="gpumem-deadline", daemon=True)
                self._watchdog.start()
        left = self.remaining()
        connection.timeout = self.timeout if left is None else max(0.001, min(self.timeout, left))
        if connection.sock is not None:
            connection.sock.settimeout(connection.timeout)

    def _unregister(self, connection: http.client.HTTPConnection) -> None:
        with self._cond:
            self._active.discard(connection)

    def _connection(self, origin: Origin) -> tuple[bool, http.client.HTTPConnection]:
        with self._cond:
            idle = self._idle.get(origin)
            if idle:
                self._idle_count -= 1
                return True, idle.pop()
        return False, self._new_connection(origin)

    def _new_connection(self, origin: Origin) -> http.client.HTTPConnection:
        proxy = self._proxy(origin)
        host, port = (proxy.host, proxy.port) if proxy else (origin.host, origin.port)
        if origin.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=ssl_context(self._cafile))
            if proxy:
                connection.set_tunnel(origin.host, origin.port, headers=_proxy_auth(self._proxies[origin.scheme]))
        else:
            connection = http.client.HTTPConnection(host, port, timeout=self.timeout)
        connection.gpumem_proxied = proxy is not None and origin.scheme == "http"  # type: ignore[attr-defined]
        return connection

    def _proxy(self, origin: Origin) -> Origin | None:
        """The proxy for this origin from HTTP(S)_PROXY, honouring NO_PROXY; None for a direct connection."""
        url = self._proxies.get(origin.scheme)
        if not url:
            return None
        import urllib.request

        # proxy_bypass_environment is public in urllib.request but missing from typeshed's stubs
        if urllib.request.proxy_bypass_environment(origin.host, self._proxies):  # type: ignore[attr-defined]
            return None
        try:
            proxy = Origin.of(url if "://" in url else f"http://{url}")
        except ValueError:
            raise TransportError(f"the {origin.scheme} proxy setting is not a usable URL", permanent=True) from None
        if proxy.scheme != "http":
            raise TransportError("only http:// proxies are supported (the tunnel itself carries TLS)", permanent=True)
        return proxy

    def _proxy_target(self, connection: http.client.HTTPConnection, origin: Origin,
                      target: str) -> tuple[dict[str, str], str]:
        """A plain-http request through a proxy names the whole URL and carries the proxy's credentials."""
        if getattr(connection, "gpumem_proxied", False) and target.startswith("/"):
            return _proxy_auth(self._proxies["http"]), f"{origin}{target}"
        return {}, target

    def close(self) -> None:
        """Close idle connections and stop the watchdog; exchanges in flight end on their own."""
        with self._cond:
            self._closed = True
            idle = [c for connections in self._idle.values() for c in connections]
            self._idle.clear()
            self._idle_count = 0
            self._cond.notify_all()
        for connection in idle:
            connection.close()


def _environment_proxies() -> dict[str, str]:
    """urllib's reading of HTTP(S)_PROXY / NO_PROXY; urllib.request (14 ms of imports) only when one is set."""
    if not any(name.lower()[-6:] == "_proxy" for name in os.environ):
        return {}
    import urllib.request

    return urllib.request.getproxies_environment()


def _proxy_auth(proxy_url: str) -> dict[str, str]:
    import base64

    parts = urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
    if parts.username is None:
        return {}
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return {"Proxy-Authorization": "Basic " + base64.b64encode(credentials).decode()}


def _failure(exc: BaseException) -> TransportError:
    """A short, token-free phrase for what went wrong below HTTP."""
    if isinstance(exc, socket.gaierror):
        return TransportError("the host name does not resolve (no network?)", permanent=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TransportError(f"its TLS certificate is not trusted ({exc.verify_message}); set REQUESTS_CA_BUNDLE "
                              "or SSL_CERT_FILE to your CA bundle", permanent=True)
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransportError("timed out")
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, http.client.RemoteDisconnected):
        return TransportError(f"its answer is not valid HTTP ({type(exc).__name__})")
    if isinstance(exc, ValueError):  # http.client refusing a header value or URL
        return TransportError("the request could not be encoded", permanent=True)
    return TransportError("connection failed")
