"""Everything the /v1 routes use, built once by the composition root and reached through one typed accessor:
the read-only view of deployments, the client of the backend hop, admission, metrics, usage and limits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from appliance.capture.writer import CaptureWriter
from appliance.deploy.view import GatewayView
from appliance.gateway.admission import Gates
from appliance.gateway.metrics import GatewayMetrics
from appliance.gateway.responses_turns import Retriever, TurnStore
from appliance.gateway.upstream import UpstreamPool
from appliance.security.usage import UsageMeter
from appliance.trials.canary import Outcomes
from appliance.trials.shadow import ShadowRunner

log = logging.getLogger(__name__)
Audit = Callable[[str, str, str, dict[str, Any]], None]  # actor, action, target, detail (never content)


@dataclass(frozen=True)
class RequestLimits:
    max_json_depth: int
    max_messages: int


@dataclass
class GatewayContext:
    deployments: GatewayView
    upstream: UpstreamPool  # the relay's own pool for the requests themselves
    gates: Gates
    metrics: GatewayMetrics
    usage: UsageMeter
    limits: RequestLimits
    capture: CaptureWriter  # takes captured exchanges off the request path
    shadows: ShadowRunner  # takes shadowed requests off the request path
    outcomes: Outcomes  # every request's outcome, per deployment and arm (the live watch reads them)
    audit: Audit  # a store write: call it off the event loop (`background`, or asyncio.to_thread)
    retrieval: Retriever | None = None  # the vector stores file_search searches (None: not configured)
    turns: TurnStore = field(default_factory=TurnStore)  # /v1/responses turns kept for previous_response_id
    # Per backend process (deployment, port): whether its chat template renders `tools` itself.
    tool_support: dict[tuple[str, int], bool] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def background(self, write: Callable[..., None], *args: Any) -> None:
        """Run a store write on a worker thread without waiting for it (the request goes on); its failure is
        logged, never raised into the request."""
        async def run() -> None:
            try:
                await asyncio.to_thread(write, *args)
            except Exception as exc:  # an audit line lost to a full disk must not end a stream
                log.warning("background write failed", extra={"error": str(exc)})

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)


def gateway_of(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context
