"""Everything the /v1 routes use, built once by the composition root and reached through one typed accessor:
the read-only view of deployments, the client of the backend hop, admission, metrics, usage and limits."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from fastapi import Request

from appliance.deploy.view import GatewayView
from appliance.gateway.admission import Gates
from appliance.gateway.metrics import GatewayMetrics
from appliance.gateway.upstream import UpstreamPool
from appliance.security.usage import UsageMeter


@dataclass(frozen=True)
class RequestLimits:
    max_json_depth: int
    max_messages: int


@dataclass
class GatewayContext:
    deployments: GatewayView
    backend_client: httpx.AsyncClient  # health-style calls to backends (/props, /metrics)
    upstream: UpstreamPool  # the relay's own pool for the requests themselves
    gates: Gates
    metrics: GatewayMetrics
    usage: UsageMeter
    limits: RequestLimits
    # Per backend process (deployment, port): whether its chat template renders `tools` itself.
    tool_support: dict[tuple[str, int], bool] = field(default_factory=dict)


def gateway_of(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context
