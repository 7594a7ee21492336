"""What the gateway does per request for the trials of a deployment: which side of a canary answers this key,
and the outcome every request records for the live watch (its arm: the deployment that answered and its model).
All in memory, O(1)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from appliance.deploy.view import Route
from appliance.gateway.context import GatewayContext
from appliance.trials.canary import arm_of


@dataclass
class Tracked:
    """One request's outcome, recorded once: by the route when it answers (or refuses), by the relay when a
    stream ends. `deployment`: the one the app named; `serving`: the one whose backend answered."""

    gateway: GatewayContext
    deployment: str
    serving: str
    started: float = field(default_factory=time.perf_counter)
    blocked: bool = False
    recorded: bool = False
    streaming: bool = False  # a relayed stream: the relay records it when it ends

    def record(self, status: int, error: bool | None = None) -> None:
        if self.recorded:
            return
        self.recorded = True
        model_id, _ = self.gateway.deployments.model_of(self.serving)
        self.gateway.outcomes.record(self.deployment, arm_of(self.serving, model_id), status,
                                     time.perf_counter() - self.started, self.blocked, error)

    def stream_ended(self, relay_status: str, blocked: bool) -> None:
        """A stream's end as the relay saw it: answered whole, cut by the backend, or left by the app."""
        self.blocked = self.blocked or blocked
        if relay_status == "cancelled":
            self.record(499, error=False)
        else:
            self.record(200, error=relay_status != "ok")


def canary_side(gateway: GatewayContext, name: str, route: Route, key_id: str) -> tuple[str, Route]:
    """The deployment that answers this request and its route: the candidate for the keys a canary of `name`
    sends there while the candidate is ready; else the live one (a candidate that is down serves nobody)."""
    deployment = route.process.spec.deployment
    canary = gateway.deployments.canary(deployment) if name == deployment else None
    if canary is not None and canary.side_for(key_id) == "candidate":
        candidate = gateway.deployments.route(canary.candidate)
        if candidate is not None:
            return canary.candidate, candidate
    return name, route
