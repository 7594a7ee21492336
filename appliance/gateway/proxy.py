"""Relaying one OpenAI request to the deployment's backend: streamed chunks pass through as they arrive; a
client that goes away cancels the backend request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from appliance.api.errors import error_body
from appliance.gateway.admission import Gate
from appliance.gateway.metrics import GatewayMetrics

_TIMINGS = re.compile(rb'"(cache_n|prompt_n|predicted_n)":(\d+)')
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class Relay:
    """One request's bookkeeping: the gate slot, metrics, and closing the backend response exactly once."""

    def __init__(self, deployment: str, endpoint: str, gate: Gate, metrics: GatewayMetrics) -> None:
        self.deployment = deployment
        self.endpoint = endpoint
        self.gate = gate
        self.metrics = metrics
        self.started = time.perf_counter()
        self.response: httpx.Response | None = None
        self.status = "error"
        self._done = False

    async def finish(self) -> None:
        if self._done:
            return
        self._done = True
        self.gate.release()
        self.metrics.inflight.labels(self.deployment).dec()
        if self.response is not None:
            await self.response.aclose()
        self.metrics.requests.labels(self.deployment, self.endpoint, self.status).inc()
        self.metrics.latency.labels(self.deployment).observe(time.perf_counter() - self.started)

    def count_tokens(self, tail: bytes) -> None:
        found = {k.decode(): int(v) for k, v in _TIMINGS.findall(tail)}
        if found:
            self.metrics.tokens.labels(self.deployment, "in").inc(found.get("cache_n", 0) + found.get("prompt_n", 0))
            self.metrics.tokens.labels(self.deployment, "out").inc(found.get("predicted_n", 0))


async def _stream(relay: Relay, response: httpx.Response) -> AsyncIterator[bytes]:
    tail = b""
    first = True
    try:
        async for chunk in response.aiter_raw():
            if first:
                relay.metrics.ttft.labels(relay.deployment).observe(time.perf_counter() - relay.started)
                first = False
            tail = (tail + chunk)[-4096:]
            yield chunk
        relay.status = "ok"
        relay.count_tokens(tail)
    except (asyncio.CancelledError, GeneratorExit):
        relay.status = "cancelled"  # the client went away; closing the response stops the backend slot
        raise
    finally:
        await relay.finish()


async def _until_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _backend_error(response: httpx.Response, body: bytes) -> JSONResponse:
    """Backend 4xx/5xx in the OpenAI error shape (llama-server already uses it; anything else is wrapped)."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            error = data["error"]
            return JSONResponse(error_body(str(error.get("message", "backend error")),
                                           str(error.get("type", "invalid_request_error")),
                                           str(error.get("code", f"backend_{response.status_code}"))),
                                response.status_code if response.status_code < 500 else 502)
    except ValueError:
        pass
    status = response.status_code if response.status_code < 500 else 502
    return JSONResponse(error_body(f"backend answered {response.status_code}", "backend_error",
                                   f"backend_{response.status_code}"), status)


async def forward(request: Request, client: httpx.AsyncClient, relay: Relay, url: str, body: bytes,
                  stream: bool) -> Response:
    """Send `body` to `url` and relay the answer. The caller has acquired `relay.gate`."""
    backend_request = client.build_request("POST", url, content=body,
                                           headers={"content-type": "application/json"})
    try:
        if stream:
            relay.response = response = await client.send(backend_request, stream=True)
            if response.status_code != 200:
                error = _backend_error(response, await response.aread())
                await relay.finish()
                return error
            return StreamingResponse(_stream(relay, response), media_type="text/event-stream",
                                     headers=SSE_HEADERS, background=BackgroundTask(relay.finish))
        send = asyncio.create_task(client.send(backend_request))
        watch = asyncio.create_task(_until_disconnect(request))
        done, _ = await asyncio.wait({send, watch}, return_when=asyncio.FIRST_COMPLETED)
        watch.cancel()
        if send not in done:  # the client left: closing our connection makes llama-server drop the slot
            send.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await send
            relay.status = "cancelled"
            await relay.finish()
            return Response(status_code=499)
        relay.response = response = send.result()
        content = response.content
        if response.status_code != 200:
            await relay.finish()
            return _backend_error(response, content)
        relay.status = "ok"
        relay.count_tokens(content[-4096:])
        await relay.finish()
        return Response(content, media_type="application/json")
    except httpx.HTTPError as exc:
        await relay.finish()
        return JSONResponse(error_body(f"backend unreachable: {type(exc).__name__}", "service_unavailable",
                                       "backend_unreachable"), 503, {"Retry-After": "2"})
