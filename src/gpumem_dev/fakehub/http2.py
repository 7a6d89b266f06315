"""The fake Hub's HTTP/2 face: what a TLS client that offers h2 in ALPN gets, as from the real Hub and its CDN.

One thread per connection does everything (the `h2` library's state machine is not thread-safe, nor is one
SSL socket read and written from two threads): it reads frames, logs each request on arrival, answers it
`latency` later with the same routing and faults as HTTP/1.1 (`FakeHub._reply`), and sends bodies as the
client's flow-control window allows. Faults over HTTP/2: a dropped connection resets the stream, a truncated
body is cut half-way by a reset, a trickle sends one body byte per pause (with `headers_too`, the header
block is also held back as long as its bytes would have trickled).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

if TYPE_CHECKING:
    from .server import FakeHub, RequestRecord


@dataclass
class _Stream:
    stream_id: int
    record: RequestRecord
    target: str
    pieces: Iterator[bytes] = field(default_factory=lambda: iter(()))
    pending: bytes = b""  # a piece waiting for flow-control window
    pause: float = 0.0  # trickle: seconds between body bytes
    reset_at_end: bool = False  # truncate: reset the stream instead of ending it
    head: list[tuple[str, str]] = field(default_factory=list)
    head_only: bool = False


class H2Connection:
    """Serve one TLS connection whose client chose h2 until either side closes it."""

    def __init__(self, hub: FakeHub, sock: ssl.SSLSocket, peer: tuple) -> None:
        self.hub = hub
        self.sock = sock
        self.peer = f"{peer[0]}:{peer[1]}"
        # header validation off: it is a third of the library's CPU per request, and clients are not under test here
        config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8", validate_inbound_headers=False,
                                           validate_outbound_headers=False, normalize_inbound_headers=False,
                                           normalize_outbound_headers=False)
        self.h2 = h2.connection.H2Connection(config)
        # header blocks without Huffman coding (RFC 7541 5.2 lets a sender choose): the pure-Python coder was ~9 %
        # of this process's CPU in a DeepSeek-R1 read, which the real Hub does not spend on the client's cores
        encode = self.h2.encoder.encode
        self.h2.encoder.encode = lambda headers, huffman=True: encode(headers, huffman=False)  # type: ignore[method-assign]
        self.timers: list[tuple[float, int, str, _Stream]] = []  # (due, tie-break, action, stream)
        self.blocked: dict[int, _Stream] = {}  # streams waiting for the client's flow-control window
        self.order = itertools.count()

    def serve(self) -> None:
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000})
        try:
            self._flush()
            while self._step():
                pass
        except (OSError, h2.exceptions.ProtocolError):
            pass  # the client went away or broke the protocol; that ends the connection
        finally:
            try:
                self.sock.close()
            except OSError:
                pass

    def _step(self) -> bool:
        """Run the timers that are due, then wait for frames until the next one; False when the connection ends."""
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, action, stream = heapq.heappop(self.timers)
            {"answer": self._answer, "headers": self._send_head, "body": self._send_body}[action](stream)
        self._flush()
        self.sock.settimeout(max(0.0005, self.timers[0][0] - now) if self.timers else None)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return True
        if not data:
            return False
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                self._arrived(event.stream_id, dict(event.headers))
            elif isinstance(event, h2.events.WindowUpdated):  # a stream's window: that stream; the connection's: all
                if event.stream_id == 0:
                    for stream in list(self.blocked.values()):
                        self._send_body(stream)
                elif event.stream_id in self.blocked:
                    self._send_body(self.blocked[event.stream_id])
            elif isinstance(event, h2.events.StreamReset):
                self.blocked.pop(event.stream_id, None)
            elif isinstance(event, h2.events.ConnectionTerminated):
                self._flush()
                return False
        self._flush()
        return True

    def _flush(self) -> None:
        if data := self.h2.data_to_send():
            self.sock.settimeout(None)  # the recv timeout (the next timer) must not cut a send short
            self.sock.sendall(data)

    def _later(self, seconds: float, action: str, stream: _Stream) -> None:
        heapq.heappush(self.timers, (time.monotonic() + seconds, next(self.order), action, stream))

    def _arrived(self, stream_id: int, headers: dict[str, str]) -> None:
        from .server import RequestRecord

        target = headers.get(":path", "/")
        url = urlsplit(target)
        fields = {name: value for name, value in headers.items() if not name.startswith(":")}
        record = RequestRecord(headers.get(":method", ""), headers.get(":authority", ""), url.path, url.query,
                               fields, timestamp=time.time(), peer=self.peer, protocol="HTTP/2")
        self.hub._log(record)  # logged before answering, as over HTTP/1.1
        self._later(self.hub.latency, "answer", _Stream(stream_id, record, target))

    def _answer(self, stream: _Stream) -> None:
        if self._closed(stream.stream_id):
            return
        reply, fault = self.hub._reply(stream.record, stream.target)
        if reply is None:  # "drop the connection" is one stream's reset here
            self.h2.reset_stream(stream.stream_id, h2.errors.ErrorCodes.INTERNAL_ERROR)
            return
        length = reply.stop - reply.start
        stream.record.status = reply.status
        headers = [(":status", str(reply.status)), *((k.lower(), v) for k, v in reply.headers.items()),
                   ("content-length", str(length)), ("server", "fakehub")]
        kind = fault.kind if fault is not None else ""
        stream.pause = fault.seconds if fault is not None and kind.startswith("trickle") else 0.0
        stream.reset_at_end = kind == "truncate"
        stream.head = headers
        stream.head_only = stream.record.method == "HEAD" or length == 0
        stop = reply.start + length // 2 if stream.reset_at_end else reply.stop
        stream.pieces = reply.body.chunks(reply.start, stop, chunk=1 if stream.pause else 16384)
        if kind == "trickle_headers":  # hold the header block back as long as its bytes would have trickled
            self._later(sum(len(k) + len(v) + 4 for k, v in headers) * stream.pause, "headers", stream)
        else:
            self._send_head(stream)

    def _send_head(self, stream: _Stream) -> None:
        if self._closed(stream.stream_id):
            return
        self.h2.send_headers(stream.stream_id, stream.head, end_stream=stream.head_only)
        if not stream.head_only:
            self._send_body(stream)

    def _send_body(self, stream: _Stream) -> None:
        """Send what the window allows; trickled bytes one per timer tick."""
        sid = stream.stream_id
        self.blocked.pop(sid, None)
        if self._closed(sid):
            return
        while True:
            piece = stream.pending or next(stream.pieces, None)
            stream.pending = b""
            if piece is None:
                if stream.reset_at_end:
                    self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
                else:
                    self.h2.end_stream(sid)
                return
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if room <= 0:
                stream.pending = piece
                self.blocked[sid] = stream
                return
            stream.pending = piece[room:]
            stream.record.bytes_sent += min(room, len(piece))
            self.h2.send_data(sid, piece[:room])
            if stream.pause:
                self._later(stream.pause, "body", stream)
                return

    def _closed(self, stream_id: int) -> bool:
        stream = self.h2.streams.get(stream_id)
        return stream is None or stream.closed
