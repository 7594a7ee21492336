"""/v1 routes (OpenAI-compatible) and /metrics."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from appliance.backends.process import BackendProcess
from appliance.deploy.models import Deployment
from appliance.errors import ApplianceError, BadRequest, NotFound
from appliance.gateway.admission import KeyBusy
from appliance.gateway.backend_metrics import scrape
from appliance.gateway.context import GatewayContext, gateway_of
from appliance.gateway.forwarding import admitted, native_tools, not_serving
from appliance.gateway.policing import Exchange
from appliance.gateway.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from appliance.gateway.tools import plan_tools
from appliance.gateway.trial_path import Tracked, canary_side
from appliance.gateway.upstream import UpstreamRefused
from appliance.guardrails.errors import PolicyViolation
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


async def parse(request: Request, schema: type[BaseModel]) -> tuple[bytes, dict[str, Any]]:
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


async def _proxy(request: Request, schema: type[BaseModel], path: str, endpoint: str) -> Response:
    body, data = await parse(request, schema)
    return await serve(request, data, body, path, endpoint)


async def serve(request: Request, data: dict[str, Any], body: bytes, path: str, endpoint: str) -> Response:
    """A parsed OpenAI request (chat, completions, embeddings) to the deployment it names: checks, the canary's
    side, the policy and the shadow, admission, the relay; its outcome recorded for the live watch."""
    gateway = gateway_of(request)
    name = str(data["model"])
    # Hot path: in-memory lookup only; the store is read just to explain why a model is not serving.
    route = gateway.deployments.route(name)
    if route is None:
        not_serving(gateway, name)
    process = route.process
    _check_endpoint(name, process, endpoint)
    if endpoint != "embeddings":
        _check_prompt_fits(data, process.spec.context_length)
    choices = int(data.get("n") or 1)
    if choices > process.spec.parallel_slots:
        raise BadRequest(f"n: {choices} choices need {choices} slots; model '{name}' has "
                         f"{process.spec.parallel_slots}", param="n", code="invalid_parameter")
    key = caller(request)
    gateway.usage.check_quota(key)
    deployment = process.spec.deployment
    target, side = canary_side(gateway, name, route, key.id) if endpoint != "embeddings" else (name, route)
    if target != name:
        try:
            return await _tracked(request, gateway, deployment, name, target, path, endpoint, side.process, body,
                                  data)
        except UpstreamRefused:  # the candidate went down before its supervisor noticed: nothing was sent
            pass
    return await _tracked(request, gateway, deployment, name, name, path, endpoint, process, body, data)


async def _tracked(request: Request, gateway: GatewayContext, deployment: str, name: str, target: str, path: str,
                   endpoint: str, process: BackendProcess, body: bytes, data: dict[str, Any]) -> Response:
    """`_serve`, with the request's outcome recorded for the live watch (a relayed stream records its own)."""
    tracked = Tracked(gateway, deployment, process.spec.deployment)
    try:
        response = await _serve(request, gateway, deployment, name, target, path, endpoint, process, body, data,
                                tracked)
    except ApplianceError as exc:
        tracked.blocked = isinstance(exc, PolicyViolation)
        tracked.record(exc.status)
        raise
    except UpstreamRefused:
        tracked.record(503)
        raise
    if not tracked.streaming:
        tracked.record(response.status_code)
    return response


async def _serve(request: Request, gateway: GatewayContext, deployment: str, name: str, target: str, path: str,
                 endpoint: str, process: BackendProcess, body: bytes, data: dict[str, Any],
                 tracked: Tracked) -> Response:
    """The deployment's policy and shadow, tools, the key's concurrency claim; then the admitted path. `target`:
    the deployment that answers (a canary's candidate for some keys, else `name`)."""
    key = caller(request)
    policy = gateway.deployments.policy(deployment) if endpoint != "embeddings" else None
    shadow = gateway.deployments.shadow(deployment) if endpoint != "embeddings" and target == name else None
    exchange = Exchange(gateway, policy, shadow, name, path, key, data) if policy or shadow else None
    if exchange is not None and (rewritten := await exchange.before()) is not None:
        data, body = rewritten, json.dumps(rewritten).encode()  # the policy masked the input
    if target != name:  # a canary's candidate: it knows itself by its own name
        data = {**data, "model": target}
        body = json.dumps(data).encode()
    tools = None
    if endpoint == "chat" and data.get("tools") and not await native_tools(request, process):
        tools = plan_tools(data)  # the template cannot render tools: the gateway does (appliance.gateway.tools)
    try:
        claim = gateway.gates.claim(key.id, key.name)
    except KeyBusy:
        gateway.metrics.requests.labels(name, endpoint, "rejected").inc()
        raise
    try:
        return await admitted(request, target, path, endpoint, process, body, data, claim, tools, exchange,
                              tracked)
    except BaseException:
        claim.release()  # otherwise the Relay releases it when the answer (or the stream) is over
        raise


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
    backends = await scrape(gateway.deployments.ready_processes())
    return Response(generate_latest(gateway.metrics.registry) + backends.encode(), media_type=CONTENT_TYPE_LATEST)
