"""A small HTTP/1.1 client for the loopback hop to a backend, on httptools' C parser.

Why not httpx here: relaying a token stream through httpx costs ~0.7 ms of CPU per chunk on a 2-core box
(pure-Python h11), CPU the backend's decode threads need. This client hands each parsed body piece to the
relay as it arrives, keeps connections alive (expiring them before llama-server's 5 s idle close), pauses
reading when the client is slow, and closes the connection when the request is cancelled, which makes the
backend drop the request.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast

import httptools

from appliance.errors import ApplianceError

KEEPALIVE_S = 2.0
# Each open connection, idle or not, holds one of llama-server's HTTP worker threads: keep few idle.
MAX_IDLE_PER_BACKEND = 4
HIGH_WATER, LOW_WATER = 64, 8


class UpstreamError(ApplianceError):
    """The backend closed or refused the connection before a complete response."""

    status, code = 503, "backend_unreachable"


class UpstreamRefused(UpstreamError):
    """No connection to the backend at all: the request was never sent, so trying again is safe."""


class UpstreamTimeout(UpstreamError):
    """The backend sent nothing for the read timeout (wedged or stopped): the connection is closed, which frees
    the slot on the backend side too."""

    status, code = 504, "backend_timeout"


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.chunks: deque[bytes | None] = deque()
        self.wakeup: asyncio.Event = asyncio.Event()
        self.error: Exception | None = None
        self.complete = False
        self.closed = False
        self.paused = False
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"bad response from backend: {exc}"))
            return
        if len(self.chunks) > HIGH_WATER and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            self._fail(UpstreamError("backend closed the connection" + (f": {exc}" if exc else "")))

    # -- httptools callbacks ---------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if not self.headers_done.done():
            self.headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.wakeup.set()

    def on_message_complete(self) -> None:
        self.complete = True
        self.chunks.append(None)
        self.wakeup.set()

    # -- helpers ---------------------------------------------------------------------------------------
    def _fail(self, error: Exception) -> None:
        self.error = error
        if not self.headers_done.done():
            self.headers_done.set_exception(error)
        self.wakeup.set()
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reset(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status, self.headers, self.complete, self.error = 0, [], False, None
        self.headers_done = asyncio.get_running_loop().create_future()
        self.chunks.clear()
        self.wakeup.clear()


class UpstreamResponse:
    def __init__(self, pool: UpstreamPool, key: tuple[str, int | str], conn: _Connection) -> None:
        self._pool, self._key, self._conn = pool, key, conn
        self.read_timeout_s = pool.read_timeout_s
        self.status = conn.status
        self.headers = conn.headers
        self._released = False

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            while not conn.chunks:
                if conn.error is not None:
                    raise conn.error
                conn.wakeup.clear()
                try:
                    await asyncio.wait_for(conn.wakeup.wait(), self.read_timeout_s)
                except TimeoutError:
                    conn.close()
                    raise UpstreamTimeout(f"backend sent nothing for {self.read_timeout_s:g} s") from None
            chunk = conn.chunks.popleft()
            if conn.paused and len(conn.chunks) < LOW_WATER and conn.transport is not None:
                conn.paused = False
                conn.transport.resume_reading()
            if chunk is None:
                self.release()
                return
            yield chunk

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.iter_chunks()])

    def release(self) -> None:
        """Return a finished connection to the pool; close one that is mid-response (cancels the backend)."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.complete and not conn.closed and conn.parser.should_keep_alive():
            self._pool.give_back(self._key, conn)
        else:
            conn.close()


class UpstreamPool:
    def __init__(self, read_timeout_s: float = 300.0) -> None:
        self.read_timeout_s = read_timeout_s  # the longest silence of a backend, headers included
        self._idle: dict[tuple[str, int | str], list[_Connection]] = {}

    def give_back(self, key: tuple[str, int | str], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= MAX_IDLE_PER_BACKEND:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)
        # Close it when it expires rather than at next use, so it does not pin a backend thread meanwhile.
        asyncio.get_running_loop().call_later(KEEPALIVE_S, self._expire, key, conn)

    def _expire(self, key: tuple[str, int | str], conn: _Connection) -> None:
        idle = self._idle.get(key, [])
        if conn in idle and time.monotonic() - conn.idle_since >= KEEPALIVE_S - 0.01:
            idle.remove(conn)
            conn.close()

    def _take_idle(self, key: tuple[str, int | str]) -> _Connection | None:
        idle = self._idle.get(key, [])
        while idle:
            conn = idle.pop()
            if not conn.closed and time.monotonic() - conn.idle_since < KEEPALIVE_S:
                conn.reset()
                return conn
            conn.close()
        return None

    async def post(self, host: str, port: int, path: str, body: bytes, unix_socket: str | None = None,
                   api_key: str | None = None) -> UpstreamResponse:
        """POST `body` (JSON) and return once the status line and headers are in; over `unix_socket` if given.

        Raises:
            UpstreamError: the backend refused or dropped the connection before answering.
        """
        key: tuple[str, int | str] = (host, port) if unix_socket is None else ("unix", unix_socket)
        auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
                   f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode() + body
        for attempt in (1, 2):
            conn = self._take_idle(key)
            if conn is None:
                loop = asyncio.get_running_loop()
                try:
                    if unix_socket is None:
                        _, conn = await loop.create_connection(_Connection, host, port)
                    else:
                        _, conn = await loop.create_unix_connection(_Connection, unix_socket)
                except OSError as exc:
                    raise UpstreamRefused(f"cannot connect to backend {unix_socket or f'{host}:{port}'}: "
                                        f"{exc.strerror}") from exc
                fresh = True
            else:
                fresh = False
            assert conn.transport is not None
            conn.transport.write(request)
            try:
                await asyncio.wait_for(conn.headers_done, self.read_timeout_s)
            except TimeoutError:
                conn.close()
                raise UpstreamTimeout(f"backend did not answer within {self.read_timeout_s:g} s") from None
            except UpstreamError:
                if fresh or attempt == 2:
                    raise
                continue  # a reused connection closed under us before any byte: retry once on a new one
            except asyncio.CancelledError:
                conn.close()
                raise
            return UpstreamResponse(self, key, conn)
        raise UpstreamError("unreachable")

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
