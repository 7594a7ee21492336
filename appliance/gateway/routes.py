"""/v1 routes (OpenAI-compatible) and /metrics."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from appliance.backends.process import BackendProcess
from appliance.deploy.models import Deployment
from appliance.errors import BadRequest, NotFound, TooManyRequests, Unavailable
from appliance.gateway.admission import KeyBusy, KeyClaim, QueueFull
from appliance.gateway.backend_metrics import scrape
from appliance.gateway.context import GatewayContext, gateway_of
from appliance.gateway.policing import Exchange
from appliance.gateway.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from appliance.gateway.proxy import SSE_HEADERS, Relay, Target, forward
from appliance.gateway.tools import ToolPlan, as_stream, plan_tools, read_answer
from appliance.validation import where_and_why
from appliance.web.auth import caller, require

router = APIRouter(tags=["openai"])
MAX_BYTES_PER_TOKEN = 16
inference = [Depends(require("inference"))]


def _depth(value: Any) -> int:
    """How deeply arrays and objects nest in `value` (iterative: a deep body must not exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


async def _parse(request: Request, schema: type[BaseModel]) -> tuple[bytes, dict[str, Any]]:
    config = gateway_of(request).limits
    body = await request.body()
    try:
        data = json.loads(body)
    except RecursionError:
        raise BadRequest(f"request body nests deeper than {config.max_json_depth} levels",
                         code="nesting_too_deep") from None
    except ValueError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object", code="invalid_json")
    if _depth(data) > config.max_json_depth:
        raise BadRequest(f"request body nests deeper than {config.max_json_depth} levels", code="nesting_too_deep")
    messages = data.get("messages")
    if isinstance(messages, list) and len(messages) > config.max_messages:
        raise BadRequest(f"messages: {len(messages)} messages, more than the limit of {config.max_messages}",
                         param="messages", code="too_many_messages")
    try:
        schema.model_validate(data)
    except ValidationError as exc:
        param, why = where_and_why(exc)
        raise BadRequest(f"{param}: {why}", param=param, code="invalid_parameter") from exc
    return body, data


def _text_bytes(data: dict[str, Any]) -> int:
    """Bytes of prompt text in a request: message contents (text parts too) or the prompt."""
    total = 0
    for message in data.get("messages") or ():
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content.encode())
        elif isinstance(content, list):
            total += sum(len(str(part.get("text", "")).encode()) for part in content if isinstance(part, dict))
    prompt = data.get("prompt")
    if isinstance(prompt, str):
        total += len(prompt.encode())
    elif isinstance(prompt, list):
        total += sum(len(p.encode()) if isinstance(p, str) else 4 for p in prompt)
    return total


def _check_prompt_fits(data: dict[str, Any], context_length: int) -> None:
    """Refuse, before it queues, a prompt no tokenizer could fit in a slot's context (more than 16 bytes a
    token is beyond any vocabulary we serve); the exact count stays with the backend, which answers 400."""
    size = _text_bytes(data)
    if size > MAX_BYTES_PER_TOKEN * context_length:
        raise BadRequest(f"the prompt is {size} bytes, more than a {context_length}-token context can hold",
                         param="messages" if "messages" in data else "prompt", code="context_length_exceeded")


def _not_serving(gateway: GatewayContext, name: str) -> NoReturn:
    """Why `name` cannot be served (the store is read only on this error path)."""
    state = gateway.deployments.state_of(name)
    if state is None:
        raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")
    raise Unavailable(f"model '{name}' is not serving right now ({state[0]}: {state[1]})",
                      headers={"Retry-After": "5"}, code="model_not_ready")


async def _proxy(request: Request, schema: type[BaseModel], path: str, endpoint: str) -> Response:
    body, data = await _parse(request, schema)
    gateway = gateway_of(request)
    name = str(data["model"])
    # Hot path: in-memory lookup only; the store is read just to explain why a model is not serving.
    route = gateway.deployments.route(name)
    if route is None:
        _not_serving(gateway, name)
    process = route[0]
    _check_endpoint(name, process, endpoint)
    if endpoint != "embeddings":
        _check_prompt_fits(data, process.spec.context_length)
    choices = int(data.get("n") or 1)
    if choices > process.spec.parallel_slots:
        raise BadRequest(f"n: {choices} choices need {choices} slots; model '{name}' has "
                         f"{process.spec.parallel_slots}", param="n", code="invalid_parameter")
    key = caller(request)
    gateway.usage.check_quota(key)
    policy = gateway.deployments.policy(process.spec.deployment) if endpoint != "embeddings" else None
    exchange = Exchange(gateway, policy, name, path, key, data) if policy is not None else None
    if exchange is not None and (rewritten := await exchange.before()) is not None:
        data, body = rewritten, json.dumps(rewritten).encode()  # the policy masked the input
    tools = None
    if endpoint == "chat" and data.get("tools") and not await _native_tools(request, process):
        tools = plan_tools(data)  # the template cannot render tools: the gateway does (appliance.gateway.tools)
    try:
        claim = gateway.gates.claim(key.id, key.name)
    except KeyBusy:
        gateway.metrics.requests.labels(name, endpoint, "rejected").inc()
        raise
    try:
        return await _admitted(request, name, path, endpoint, process, body, data, claim, tools, exchange)
    except BaseException:
        claim.release()  # otherwise the Relay releases it when the answer (or the stream) is over
        raise


async def _admitted(request: Request, name: str, path: str, endpoint: str, process: BackendProcess, body: bytes,
                    data: dict[str, Any], claim: KeyClaim, tools: ToolPlan | None = None,
                    exchange: Exchange | None = None) -> Response:
    """Queue for a slot of `process`, then forward; the Relay releases the slot and `claim` when it is over."""
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
        _not_serving(gateway, name)
    process, selector = route
    process.request_started()
    metrics.inflight.labels(name).inc()
    relay = Relay(name, endpoint, gate, metrics, process, claim, (gateway.usage, caller(request)))
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
        response = await forward(request, gateway.upstream, relay, target, path, body, streamed, tap)
    except BaseException:
        await relay.finish()
        raise
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


async def _native_tools(request: Request, process: BackendProcess) -> bool:
    """Whether the backend renders `tools` itself (asked once per process; unknown means the gateway does it,
    which works with any template)."""
    gateway = gateway_of(request)
    key = (process.spec.deployment, process.spec.port)
    if key not in gateway.tool_support:
        answer = await process.backend.renders_tools(gateway.backend_client, process.spec)
        if answer is None:
            return False
        gateway.tool_support[key] = answer
    return gateway.tool_support[key]


def _check_endpoint(name: str, process: BackendProcess, endpoint: str) -> None:
    """An embeddings deployment serves /v1/embeddings only, a chat one everything else: the app named the wrong
    model, a 400 that says which (not the backend's 500 or 501 with advice for its operator)."""
    if endpoint == "embeddings" and not process.spec.embeddings:
        raise BadRequest(f"model '{name}' is a chat deployment and does not serve /v1/embeddings; use a "
                         "deployment created with embeddings: true", param="model", code="unsupported_model")
    if endpoint != "embeddings" and process.spec.embeddings:
        raise BadRequest(f"model '{name}' is an embeddings deployment: it serves /v1/embeddings only",
                         param="model", code="unsupported_model")


@router.post("/v1/chat/completions", dependencies=inference)
async def chat_completions(request: Request) -> Response:
    """OpenAI chat completions, streaming (SSE) or not, routed by `model` to its deployment."""
    return await _proxy(request, ChatCompletionRequest, "/v1/chat/completions", "chat")


@router.post("/v1/completions", dependencies=inference)
async def completions(request: Request) -> Response:
    """OpenAI text completions."""
    return await _proxy(request, CompletionRequest, "/v1/completions", "completions")


@router.post("/v1/embeddings", dependencies=inference)
async def embeddings(request: Request) -> Response:
    """OpenAI embeddings from a deployment created with `embeddings: true` (float or base64)."""
    return await _proxy(request, EmbeddingRequest, "/v1/embeddings", "embeddings")


def _served_models(d: Deployment) -> list[dict[str, Any]]:
    """The names deployment `d` answers to: its own and each attached adapter's (with its parent)."""
    entry = {"object": "model", "created": int(d.created_at), "owned_by": "slm-appliance", "root": d.model,
             "ready": d.state == "ready"}
    return [{"id": d.name, **entry}, *({"id": adapter, **entry, "parent": d.name} for adapter in d.adapters)]


@router.get("/v1/models", dependencies=inference)
async def models(request: Request) -> dict[str, Any]:
    """Deployed models, by the name apps send as `model`."""
    data = [m for d in gateway_of(request).deployments.deployments() if d.desired_state == "running"
            for m in _served_models(d)]
    return {"object": "list", "data": data}


@router.get("/v1/models/{name}", dependencies=inference)
async def model(name: str, request: Request) -> dict[str, Any]:
    for d in gateway_of(request).deployments.deployments():
        for served in _served_models(d):
            if served["id"] == name:
                return served
    raise NotFound(f"The model '{name}' does not exist", param="model", code="model_not_found")


@router.get("/metrics", dependencies=inference, tags=["metrics"])
async def metrics(request: Request) -> Response:
    """Prometheus text format; any valid key may scrape."""
    gateway = gateway_of(request)
    backends = await scrape(gateway.backend_client, gateway.deployments.ready_processes())
    return Response(generate_latest(gateway.metrics.registry) + backends.encode(), media_type=CONTENT_TYPE_LATEST)
