"""The trials' runtime as the daemon wires it: the shadow runner's way to a candidate backend and to the
embeddings deployment, the live watch's rollback (the deployment service's) and thumbs (the capture tables),
the profile's watch defaults."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from appliance.core import Appliance
from appliance.deploy.service import Deployments
from appliance.gateway.admission import Gates
from appliance.gateway.answers import AnswerText
from appliance.trials.canary import Outcomes, thumbs
from appliance.trials.compare import Answer
from appliance.trials.runtime import TrialsRuntime
from appliance.trials.shadow import ShadowRunner
from appliance.trials.verdict import Verdict, WatchSettings, merge
from appliance.trials.watch import LiveWatch

SHADOW_TIMEOUT_S = 120.0


def trials_runtime(appliance: Appliance, registry: CollectorRegistry,
                   deployments: Callable[[], Deployments], gates: Gates) -> TrialsRuntime:
    """`deployments`: the service, once it exists (it is built with this runtime; both refer to each other).
    `gates`: the gateway's admission, whose in-flight counts tell a shadow on the live side's cores to give way."""

    async def send(body: dict[str, Any]) -> Answer:
        """The whole answer of the candidate, read as a stream: a withdrawn request (the connection closed) stops
        the backend at its next token, where a request for the whole answer runs on for up to a second."""
        service = deployments()
        route = service.gateway_view.route(str(body["model"]))
        if route is None:
            raise RuntimeError(f"shadow candidate {body['model']!r} is not serving")
        path = "/v1/chat/completions" if "messages" in body else "/v1/completions"
        streamed = {**body, **(route.selector or {}), "stream": True, "stream_options": {"include_usage": True}}
        started = time.perf_counter()
        async with route.process.client.stream(
                "POST", f"{route.process.endpoint}{path}", json=streamed,
                headers=route.process.spec.auth_headers(), timeout=SHADOW_TIMEOUT_S) as response:
            if response.status_code != 200:
                await response.aread()
                return Answer(response.status_code, "", time.perf_counter() - started)
            read = AnswerText()
            async for data in response.aiter_bytes():
                read.feed(data)
        return Answer(200, read.text, time.perf_counter() - started, read.finish_reason,
                      read.completion_tokens or None)

    embeddings = appliance.config.shadow_embeddings

    async def embed(texts: list[str]) -> list[list[float]]:
        service = deployments()
        route = service.gateway_view.route(embeddings or "")
        if route is None:
            raise RuntimeError(f"no embeddings deployment {embeddings!r} serving")
        response = await route.process.client.post(
            f"{route.process.endpoint}/v1/embeddings", json={"model": embeddings, "input": texts},
            headers=route.process.spec.auth_headers(), timeout=30.0)
        response.raise_for_status()
        return [list(item["embedding"]) for item in response.json()["data"]]

    def busy(live: str, candidate: str) -> bool:
        """The live side has requests in flight and both compute on the same CPU cores (trials/yielding.py)."""
        if not gates.busy(live):
            return False
        view = deployments().gateway_view
        routes = view.route(live), view.route(candidate)
        return all(r is not None and r.process.spec.computes_on_cpu for r in routes)

    async def rollback(deployment: str, verdict: Verdict) -> None:
        await deployments().auto_rollback(deployment, verdict)

    outcomes = Outcomes()
    runner = ShadowRunner(appliance.store, registry, send, embed=embed if embeddings else None,
                          busy=busy if appliance.config.shadow_gives_way else None)
    watch = LiveWatch(outcomes, rollback, registry, interval_s=appliance.config.watch_interval_s,
                      feedback=lambda model_id, since, until: thumbs(appliance.store, model_id, since, until))
    defaults = merge(WatchSettings(), appliance.selection.profile.watch)
    return TrialsRuntime(runner, outcomes, watch, registry, defaults)
