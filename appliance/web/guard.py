"""The outermost ASGI layer: every request is bounded and authenticated before any route sees it.

In order, before a byte of the body is read: a declared body over the path's limit gets 413; a route other
than health needs a valid key (401; the only place a key is checked), a client that keeps sending bad keys is
slowed down (429), and so is a key over its requests per minute (429). Routes then only state the scope they
need (`appliance.web.auth.require`). Then the
body is read here, counted while it arrives (a chunked body over the limit gets 413 as soon as it crosses it)
and under a deadline (408), and handed to the app whole. FastAPI reads a body before it runs a route's
dependencies, so checking the key in a dependency alone would parse 64 MiB from anyone.

Every request also gets an id (the client's `X-Request-Id` when it is plain and short, else a new one): it is
sent back on the response, put in error bodies and on every log line of the request, and the request ends with
one access-log line (method, path, status, duration, key name; never the query string).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.core import Appliance
from appliance.logs import REQUEST_ID
from appliance.security.keys import verify_token
from appliance.web.errors import error_body
from appliance.web.limits import TokenBuckets

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
# Uploads (multipart) take retrieval_max_file_bytes plus this much of framing and fields, and longer to arrive.
UPLOAD_PATHS = frozenset({"/v1/files"})
UPLOAD_FRAMING = 1024 * 1024
QUIET_PATHS = PUBLIC_PATHS | {"/metrics"}
log = logging.getLogger("appliance.access")
# An id a client sends is kept when it is short and plain (it ends up in logs and headers); else one is made.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


@dataclass(frozen=True)
class Limits:
    v1_body_bytes: int = 8 * 1024 * 1024
    control_body_bytes: int = 1024 * 1024
    body_timeout_s: float = 30.0
    auth_failures_per_minute: int = 30
    requests_per_minute_per_key: int = 600
    upload_body_bytes: int = 64 * 1024 * 1024 + UPLOAD_FRAMING
    upload_timeout_s: float = 600.0  # 64 MiB at about 1 Mbit/s

    def body_limit(self, path: str) -> int:
        if path in UPLOAD_PATHS:
            return self.upload_body_bytes
        return self.v1_body_bytes if path.startswith("/v1/") else self.control_body_bytes

    def body_timeout(self, path: str) -> float:
        return max(self.body_timeout_s, self.upload_timeout_s) if path in UPLOAD_PATHS else self.body_timeout_s


class _TooLarge(Exception):
    pass


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _token(scope: Scope) -> str | None:
    auth = (_header(scope, b"authorization") or b"").decode("latin-1")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return (_header(scope, b"x-api-key") or b"").decode("latin-1") or None


async def _reply(send: Send, status: int, message: str, type_: str, code: str,
                 headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(message, type_, code)).encode()
    # Connection: close: a refused body may still be on its way; the server must not read it as a next request.
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    def __init__(self, app: ASGIApp, appliance: Appliance, limits: Limits) -> None:
        self.app = app
        self.appliance = appliance
        self.limits = limits
        # Bad keys per client address (only failures drain it: over it, the key is not even looked up) and
        # requests per valid key.
        self.failures = TokenBuckets(limits.auth_failures_per_minute)
        self.per_key = TokenBuckets(limits.requests_per_minute_per_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = (_header(scope, b"x-request-id") or b"").decode("latin-1")
        request_id = sent if _REQUEST_ID.match(sent) else f"req_{secrets.token_hex(12)}"
        scope.setdefault("state", {})["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status: list[int] = []
        started = time.perf_counter()
        try:
            await self._guarded(scope, receive, _with_request_id(send, request_id, status))
        finally:
            _access_log(scope, status[0] if status else 0, time.perf_counter() - started)
            REQUEST_ID.reset(token)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        limit = self.limits.body_limit(path)
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _reply(send, 413, f"request body over the {limit} byte limit of {path}",
                         "invalid_request_error", "request_too_large")
            return
        if path not in PUBLIC_PATHS and not await self._authenticated(scope, send):
            return
        if declared is None and _header(scope, b"transfer-encoding") is None:
            await self.app(scope, receive, send)  # no body (GET, DELETE): nothing to read
            return
        timeout = self.limits.body_timeout(path)
        try:
            body = await asyncio.wait_for(self._read(receive, limit), timeout)
        except _TooLarge:
            await _reply(send, 413, f"request body over the {limit} byte limit of {path}", "invalid_request_error",
                         "request_too_large")
            return
        except TimeoutError:
            await _reply(send, 408, f"request body not received within {timeout:g} s",
                         "invalid_request_error", "request_timeout")
            return
        if body is None:
            return  # the client went away
        await self.app(scope, _replay(body, receive), send)

    async def _authenticated(self, scope: Scope, send: Send) -> bool:
        client = scope["client"][0] if scope.get("client") else "unknown"
        wait = self.failures.wait_for(client)
        if wait > 0:
            await _reply(send, 429, "too many requests with an invalid API key from this address",
                         "rate_limit_error", "auth_rate_limited", {"Retry-After": str(max(1, math.ceil(wait)))})
            return False
        token = _token(scope)
        if token is None:
            await _reply(send, 401, "missing API key: send 'Authorization: Bearer <key>'", "authentication_error",
                         "missing_api_key")
            return False
        key = verify_token(self.appliance.store, token)
        if key is None:
            self.failures.drain(client)
            await _reply(send, 401, "invalid or revoked API key", "authentication_error", "invalid_api_key")
            return False
        scope.setdefault("state", {})["api_key"] = key  # the route's `require` checks its scope
        wait = self.per_key.take(key.id)
        if wait > 0:
            await _reply(send, 429, f"rate limit of {self.per_key.per_minute} requests per minute exceeded for key "
                         f"{key.name!r}", "rate_limit_error", "rate_limited",
                         {"Retry-After": str(max(1, math.ceil(wait)))})
            return False
        return True

    @staticmethod
    async def _read(receive: Receive, limit: int) -> bytes | None:
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)


def _with_request_id(send: Send, request_id: str, status: list[int]) -> Send:
    """Every response carries the request's id back (X-Request-Id), errors and streams included."""
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))
            message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
        await send(message)

    return sending


def _access_log(scope: Scope, status: int, seconds: float) -> None:
    """One line per request, with its id (added by the formatter) and key name; never the query string or a
    header. Health checks and scrapes only at debug level."""
    key = scope.get("state", {}).get("api_key")
    level = logging.DEBUG if scope["path"] in QUIET_PATHS and status < 400 else logging.INFO
    log.log(level, "request", extra={"method": scope.get("method"), "path": scope["path"], "status": status,
                                     "duration_ms": round(seconds * 1000, 1), "key": key.name if key else None})


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body once, whole; then the connection's own messages (a disconnect, for streams to notice)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
