"""A request admitted to a backend: it waits for a slot (bounded queue), is forwarded through the relay, and
its answer goes through the gateway's own work where there is some (tool calls the template cannot render,
the deployment's policy); the backend's own answer otherwise passes as it came."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from appliance.backends.process import BackendProcess
from appliance.errors import NotFound, TooManyRequests, Unavailable
from appliance.gateway.admission import KeyClaim, QueueFull
from appliance.gateway.context import GatewayContext, gateway_of
from appliance.gateway.policing import Exchange
from appliance.gateway.proxy import SSE_HEADERS, Relay, Target, forward
from appliance.gateway.tools import ToolPlan, as_stream, read_answer
from appliance.gateway.trial_path import Tracked
from appliance.web.auth import caller


def not_serving(gateway: GatewayContext, name: str) -> NoReturn:
    """Why `name` cannot be served (the store is read only on this error path)."""
    state = gateway.deployments.state_of(name)
    if state is None:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    raise Unavailable(f"model '{name}' is not serving right now ({state[0]}: {state[1]})",
                      headers={"Retry-After": "5"}, code="model_not_ready")


async def admitted(request: Request, name: str, path: str, endpoint: str, process: BackendProcess, body: bytes,
                   data: dict[str, Any], claim: KeyClaim, tools: ToolPlan | None, exchange: Exchange | None,
                   tracked: Tracked) -> Response:
    """Queue for a slot of `process` (the one serving `name`), then forward; the Relay releases the slot and
    `claim` when it is over, and a relayed stream records its outcome in `tracked` when it ends."""
    gateway = gateway_of(request)
    metrics = gateway.metrics
    gate = gateway.gates.for_deployment(process.spec.deployment, process.spec.parallel_slots)
    metrics.queue_depth.labels(name).set(gate.waiting)
    try:
        await gate.acquire()
    except QueueFull as exc:
        metrics.requests.labels(name, endpoint, "rejected").inc()
        raise TooManyRequests(f"model '{name}' is busy: {exc}", headers={"Retry-After": "1"},
                              code="queue_full") from exc
    finally:
        metrics.queue_depth.labels(name).set(gate.waiting)
    # Resolve again: a blue/green switch may have happened while this request queued. From here to the
    # in-flight count there is no await, so a drain of the old backend cannot miss this request.
    route = gateway.deployments.route(name)
    if route is None:
        gate.release()
        not_serving(gateway, name)
    process, selector = route
    process.request_started()
    metrics.inflight.labels(name).inc()
    relay = Relay(name, endpoint, gate, metrics, process, claim, (gateway.usage, caller(request)), tracked)
    upstream = data if tools is None else tools.upstream
    whole = exchange is not None and exchange.whole_answer and tools is None
    if whole:  # judged whole by the guard model, then streamed to the app
        upstream = {k: v for k, v in upstream.items() if k not in ("stream", "stream_options")}
    if selector is not None or tools is not None or whole:  # an adapter's name: picked per request
        body = json.dumps({**upstream, **(selector or {})}).encode()
    spec = process.spec
    target = Target(spec.host, spec.port, str(spec.unix_socket) if spec.unix_socket else None, spec.api_key)
    streamed = bool(upstream.get("stream"))
    tap = exchange.stream_tap() if exchange is not None and streamed else None
    try:
        # A canary's candidate that went down before its supervisor noticed: the live side answers instead.
        response = await forward(request, gateway.upstream, relay, target, path, body, streamed, tap,
                                 raise_refused=tracked.serving != tracked.deployment)
    except BaseException:
        await relay.finish()
        raise
    if streamed and isinstance(response, StreamingResponse):
        tracked.streaming = True  # the relay records the outcome when the stream ends
    if response.status_code != 200 or streamed or (tools is None and exchange is None):
        return response
    answer = json.loads(bytes(response.body))
    if tools is not None:
        answer = read_answer(tools, answer)
    if exchange is not None:
        answer = await exchange.after_whole(answer)
    if data.get("stream"):
        include_usage = bool((data.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(as_stream(answer, include_usage), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    return JSONResponse(answer)


async def native_tools(request: Request, process: BackendProcess) -> bool:
    """Whether the backend renders `tools` itself (asked once per process; unknown means the gateway does it,
    which works with any template)."""
    gateway = gateway_of(request)
    key = (process.spec.deployment, process.spec.port)
    if key not in gateway.tool_support:
        answer = await process.backend.renders_tools(process.client, process.spec)
        if answer is None:
            return False
        gateway.tool_support[key] = answer
    return gateway.tool_support[key]
