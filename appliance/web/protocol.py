"""uvicorn's httptools protocol with the limits it lacks against slow or idle clients.

uvicorn times out only a keep-alive connection between requests: a connection that never sends a request, or
sends its headers a byte at a time (slowloris), is held forever. Here a request's headers must arrive within
`header_timeout_s` and fit in `max_header_bytes` (431 otherwise), and past `max_connections` the connection
idle the longest is closed to let the new one in, so thousands of idle sockets cannot lock out the apps (and
/healthz) the way a refusal at the cap would.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpProtocol(HttpToolsProtocol):
    header_timeout_s: float = 10.0
    max_header_bytes: int = 64 * 1024
    max_connections: int = 2048

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._header_bytes = self._parsed_header_bytes = 0
        self._in_headers = True
        self._refused = False  # answered here (431): the rest of what arrives is dropped
        self._idle_since = self.loop.time()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()
        if len(self.connections) > self.max_connections:
            self._evict_idlest()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # Bytes that arrive while a request's headers are incomplete are header bytes (a body may share the
        # last packet: counted only if the headers are still not complete after it).
        if self._in_headers:
            self._header_bytes += len(data)
        if self._refused:
            return
        super().data_received(data)
        if self._in_headers and self._header_bytes > self.max_header_bytes:
            self._refuse(b"431 Request Header Fields Too Large")

    def on_url(self, url: bytes) -> None:
        self._parsed_header_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._parsed_header_bytes += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = self._parsed_header_bytes = 0
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._disarm_header_timer()
        if self._parsed_header_bytes > self.max_header_bytes:
            self._refuse(b"431 Request Header Fields Too Large")  # and the app never sees the request
            return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        self._idle_since = self.loop.time()
        self._in_headers = True
        self._header_bytes = self._parsed_header_bytes = 0
        super().on_response_complete()

    # -- limits ----------------------------------------------------------------------------------------
    def _busy(self) -> bool:
        return not self._in_headers or (self.cycle is not None and not self.cycle.response_complete)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._in_headers and not self.transport.is_closing():
            # Nothing, or only part of a request's headers, in the time allowed: close without an answer.
            self.transport.close()

    def _evict_idlest(self) -> None:
        idle = [c for c in self.connections
                if isinstance(c, GuardedHttpProtocol) and c is not self and not c._busy()]
        if idle:
            victim = min(idle, key=lambda c: c._idle_since)
            victim.transport.close()

    def _refuse(self, status: bytes) -> None:
        self._refused = True
        self._disarm_header_timer()
        if not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            self.transport.close()


def guarded_protocol(header_timeout_s: float, max_header_bytes: int, max_connections: int) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, with this daemon's limits."""
    return type("ConfiguredHttpProtocol", (GuardedHttpProtocol,), {
        "header_timeout_s": header_timeout_s, "max_header_bytes": max_header_bytes,
        "max_connections": max_connections,
    })
