"""What the gateway may see of deployments: a read-only view of the routing table and of each deployment's
state, handed to it at wiring time. It cannot start, stop or change anything."""

from __future__ import annotations

from appliance.backends.process import BackendProcess
from appliance.deploy.errors import DeploymentNotFound
from appliance.deploy.models import Deployment
from appliance.deploy.parts import DeploymentParts
from appliance.deploy.policies import ActivePolicy
from appliance.deploy.routing import Route  # the gateway's handle of a route, from here
from appliance.deploy.trials import Trials
from appliance.trials.canary import Canary
from appliance.trials.models import ShadowSettings

__all__ = ["GatewayView", "Route"]


class GatewayView:
    def __init__(self, parts: DeploymentParts, trials: Trials) -> None:
        self._parts = parts
        self._trials = trials

    def route(self, served_name: str) -> Route | None:
        """The ready process behind a served name (in memory: the hot path), with its adapter selector."""
        return self._parts.routing.route(served_name)

    def deployment_of(self, served_name: str) -> str:
        """The deployment a served name belongs to (an adapter's parent, else the name itself)."""
        return self._parts.routing.deployment_of(served_name)

    def policy(self, deployment: str) -> ActivePolicy | None:
        """The policy in force on `deployment` (in memory), None when it has none."""
        return self._parts.active.get(deployment)

    def canary(self, deployment: str) -> Canary | None:
        """The canary splitting `deployment`'s keys, if any (in memory)."""
        return self._trials.canaries.get(deployment)

    def shadow(self, deployment: str) -> ShadowSettings | None:
        """The shadow of `deployment`, if any (in memory)."""
        return self._trials.shadows.get(deployment)

    def model_of(self, deployment: str) -> tuple[str, str]:
        """(id, name) of the model serving `deployment` now (in memory; empty when nothing serves)."""
        served = self._parts.reconciler.live(deployment)
        return (served.plan.model.id, served.plan.model.name) if served else ("", "")

    def state_of(self, served_name: str) -> tuple[str, str] | None:
        """(state, message) of the deployment behind a served name, None when there is none (reads the store:
        only to explain why a name is not served)."""
        try:
            deployment = self._parts.get(self._parts.routing.deployment_of(served_name))
        except DeploymentNotFound:
            return None
        return deployment.state, deployment.state_message

    def deployments(self) -> list[Deployment]:
        """Every deployment, as the control API shows it (for /v1/models)."""
        return [self._parts.get(name) for name in self._parts.rows.names()]

    def ready_processes(self) -> dict[str, BackendProcess]:
        return self._parts.routing.ready_processes()

    def restarts(self) -> dict[str, int]:
        return self._parts.routing.restarts()
