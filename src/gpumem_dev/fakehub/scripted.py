"""A loopback HTTP(S) server that answers each path with scripted replies, hostile ones included.

For tests of the Hub client request by request: `server.on("/api/models/org/model/revision/main", Reply(...))`
queues replies for a path (the last one repeats); `server.requests` logs what arrived. Replies can trickle
their headers or body a byte at a time, promise more bytes than they send, drop the connection, or send any
header at all. `url` is http(s)://127.0.0.1:PORT and `other_url` the same server as localhost (another
origin, for cross-origin redirects).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Reply:
    """One scripted answer. `content_length`: None = the body's length, False = no header, a str = that text."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_length: str | bool | None = None
    trickle: float = 0.0  # seconds between single bytes of the body
    trickle_headers: float = 0.0  # seconds between single bytes of the status line and headers
    send: int | None = None  # send only this many body bytes, then close
    drop: bool = False  # close without answering


@dataclass
class Seen:
    """One request as it arrived (header names lower-case)."""

    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]


class ScriptedServer:
    """Serve scripted replies on 127.0.0.1 (plain HTTP, or HTTPS with `tls` = a trustme.CA)."""

    def __init__(self, tls=None) -> None:
        self._routes: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[Seen] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.script = self  # type: ignore[attr-defined]
        scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        port = self._server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.other_url = f"{scheme}://localhost:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def on(self, path: str, *replies: Reply) -> None:
        """Answer requests for `path` (no query) with `replies` in turn; the last repeats."""
        with self._lock:
            self._routes[path] = list(replies)

    def take(self, path: str) -> Reply:
        with self._lock:
            replies = self._routes.get(path)
            if not replies:
                return Reply(404, {"X-Error-Message": "no script for this path"}, b"not scripted")
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def seen(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError):
            pass

    def do_GET(self) -> None:
        script: ScriptedServer = self.server.script  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        with script._lock:
            script.requests.append(Seen(self.command, self.headers.get("Host", ""), url.path, url.query,
                                        {k.lower(): v for k, v in self.headers.items()}))
        reply = script.take(url.path)
        if reply.drop:
            self.close_connection = True
            return
        lines = [f"HTTP/1.1 {reply.status} Scripted"]
        lines += [f"{name}: {value}" for name, value in reply.headers.items()]
        if reply.content_length is None:
            lines.append(f"Content-Length: {len(reply.body)}")
        elif reply.content_length is not False:
            lines.append(f"Content-Length: {reply.content_length}")
        if reply.content_length is False or reply.send is not None:
            self.close_connection = True
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = reply.body if reply.send is None else reply.body[: reply.send]
        self._write(head, reply.trickle_headers)
        self._write(body, reply.trickle)
        if self.close_connection:
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _write(self, data: bytes, pause: float) -> None:
        if not pause:
            self.wfile.write(data)
            return
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(pause)
