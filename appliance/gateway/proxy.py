"""Relaying one OpenAI request to the deployment's backend: streamed chunks pass through as they arrive; a
client that goes away cancels the backend request (its connection is closed, llama-server drops the slot).

A backend that dies or goes silent mid-stream ends the stream with an error event in OpenAI's shape and no
`data: [DONE]`, so a client can tell a cut answer from a whole one (the SDK raises on it); a non-streamed
request gets 502 (dropped) or 504 (silent)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import NamedTuple, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from appliance.backends.process import BackendProcess
from appliance.gateway.admission import Gate, KeyClaim
from appliance.gateway.metrics import GatewayMetrics
from appliance.gateway.trial_path import Tracked
from appliance.gateway.upstream import UpstreamError, UpstreamPool, UpstreamRefused, UpstreamResponse, UpstreamTimeout
from appliance.security.keys import ApiKey
from appliance.security.usage import UsageMeter, tokens_in
from appliance.web.errors import error_body

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Target(NamedTuple):
    host: str
    port: int
    unix_socket: str | None
    api_key: str | None = None  # the backend's own key (never the client's)

    async def post(self, pool: UpstreamPool, path: str, body: bytes) -> UpstreamResponse:
        return await pool.post(self.host, self.port, path, body, self.unix_socket, self.api_key)


class Tap(Protocol):
    """What a policy does to a streamed answer on its way (appliance.gateway.policing.StreamTap)."""

    @property
    def ended(self) -> bool: ...

    @property
    def blocked(self) -> bool: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def done(self) -> None: ...


class Relay:
    """One request's bookkeeping: the gate slot, metrics, and releasing the backend response exactly once."""

    def __init__(self, deployment: str, endpoint: str, gate: Gate, metrics: GatewayMetrics,
                 process: BackendProcess | None = None, claim: KeyClaim | None = None,
                 usage: tuple[UsageMeter, ApiKey] | None = None, tracked: Tracked | None = None) -> None:
        self.deployment = deployment
        self.usage = usage  # where this request's tokens are accounted, and to which key
        self.tracked = tracked  # a stream's outcome, recorded for the live watch when it ends
        self.claim = claim  # the request's place in its key's concurrency count
        self.process = process  # counts this request as in flight on it, so a blue/green drain waits for it
        self.endpoint = endpoint
        self.gate = gate
        self.metrics = metrics
        self.started = time.perf_counter()
        self.response: UpstreamResponse | None = None
        self.status = "error"
        self._done = False

    async def finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self.process is not None:
            self.process.request_finished()
        self.gate.release()
        if self.claim is not None:
            self.claim.release()
        self.metrics.inflight.labels(self.deployment).dec()
        if self.response is not None:
            self.response.release()
        self.metrics.requests.labels(self.deployment, self.endpoint, self.status).inc()
        self.metrics.latency.labels(self.deployment).observe(time.perf_counter() - self.started)

    def count_tokens(self, tail: bytes) -> None:
        """Account a finished answer's tokens (found in its last bytes) to the deployment and the key."""
        tokens = tokens_in(tail)
        self.metrics.tokens.labels(self.deployment, "in").inc(tokens.prompt)
        self.metrics.tokens.labels(self.deployment, "out").inc(tokens.completion)
        if self.usage is not None:
            meter, key = self.usage
            meter.record(key, self.deployment, tokens)


async def _stream(relay: Relay, response: UpstreamResponse, tap: Tap | None = None) -> AsyncIterator[bytes]:
    tail = b""
    first = True
    try:
        async for chunk in response.iter_chunks():
            if first:
                relay.metrics.ttft.labels(relay.deployment).observe(time.perf_counter() - relay.started)
                first = False
            tail = chunk if len(chunk) >= 4096 else (tail + chunk)[-4096:]
            out = chunk if tap is None else tap.feed(chunk)
            if out:
                yield out
            if tap is not None and tap.ended:
                break  # a deny rule ended the answer: releasing the response closes the backend's connection
        relay.status = "ok"
        relay.count_tokens(tail)
    except (asyncio.CancelledError, GeneratorExit):
        relay.status = "cancelled"  # the client went away; releasing mid-response closes the backend connection
        raise
    except UpstreamError as exc:
        relay.status = "backend_error"
        reason = "backend_timeout" if isinstance(exc, UpstreamTimeout) else "backend_closed"
        relay.metrics.stream_errors.labels(relay.deployment, reason).inc()
        # A partial SSE line may have been cut: start the event on a line of its own.
        yield b"\n\n" + stream_error_event(f"the backend failed mid-answer: {exc.message}", reason)
    finally:
        if tap is not None:  # also when the app hung up right after the last event
            tap.done()
        if relay.tracked is not None:
            relay.tracked.stream_ended(relay.status, tap is not None and tap.blocked)
        await relay.finish()


def stream_error_event(message: str, code: str) -> bytes:
    """An SSE event with an OpenAI error object, the way OpenAI ends a stream that failed."""
    return b"data: " + json.dumps(error_body(message, "backend_error", code)).encode() + b"\n\n"


async def _until_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _backend_error(status: int, body: bytes) -> JSONResponse:
    """Backend 4xx/5xx in the OpenAI error shape (llama-server already uses it; anything else is wrapped)."""
    code = status if status < 500 else 502
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
            return JSONResponse(error_body(str(error.get("message", "backend error")),
                                           str(error.get("type", "invalid_request_error")),
                                           str(error.get("code", f"backend_{status}"))), code)
    except ValueError:
        pass
    return JSONResponse(error_body(f"backend answered {status}", "backend_error", f"backend_{status}"), code)


async def _complete(request: Request, pool: UpstreamPool, relay: Relay, target: Target, path: str,
                    body: bytes) -> tuple[int, bytes] | None:
    """Send and read the whole answer, unless the client leaves first (then None)."""

    async def exchange() -> tuple[int, bytes]:
        relay.response = response = await target.post(pool, path, body)
        return response.status, await response.read()

    send = asyncio.create_task(exchange())
    watch = asyncio.create_task(_until_disconnect(request))
    done, _ = await asyncio.wait({send, watch}, return_when=asyncio.FIRST_COMPLETED)
    watch.cancel()
    if send in done:
        return send.result()
    send.cancel()
    with contextlib.suppress(asyncio.CancelledError, UpstreamError):
        await send
    return None


async def forward(request: Request, pool: UpstreamPool, relay: Relay, target: Target, path: str,
                  body: bytes, stream: bool, tap: Tap | None = None, raise_refused: bool = False) -> Response:
    """Send `body` to the backend and relay the answer. The caller has acquired `relay.gate`. `raise_refused`:
    a backend that cannot be reached (nothing was sent) raises UpstreamRefused for the caller to go elsewhere."""
    try:
        if stream:
            relay.response = response = await target.post(pool, path, body)
            if response.status != 200:
                error = _backend_error(response.status, await response.read())
                await relay.finish()
                return error
            return StreamingResponse(_stream(relay, response, tap), media_type="text/event-stream",
                                     headers=SSE_HEADERS, background=BackgroundTask(relay.finish))
        result = await _complete(request, pool, relay, target, path, body)
        if result is None:
            relay.status = "cancelled"
            await relay.finish()
            return Response(status_code=499)
        status, content = result
        if status != 200:
            await relay.finish()
            return _backend_error(status, content)
        relay.status = "ok"
        relay.count_tokens(content[-4096:])
        await relay.finish()
        return Response(content, media_type="application/json")
    except UpstreamTimeout as exc:
        relay.status = "backend_error"
        await relay.finish()
        return JSONResponse(error_body(exc.message, "backend_error", "backend_timeout"), 504)
    except UpstreamError as exc:
        relay.status = "backend_error"
        await relay.finish()
        if isinstance(exc, UpstreamRefused) and raise_refused:
            raise
        if isinstance(exc, UpstreamRefused):  # never connected: nothing was sent, the app may retry
            return JSONResponse(error_body(f"backend unreachable: {exc}", "service_unavailable",
                                           "backend_unreachable"), 503, {"Retry-After": "2"})
        return JSONResponse(error_body(f"the backend failed mid-answer: {exc}", "backend_error", "backend_closed"),
                            502)
