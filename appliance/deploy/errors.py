"""Why a deployment change was refused."""

from __future__ import annotations

from appliance.errors import ApplianceError


class DeploymentError(ApplianceError):
    """Refused: the message says why (and, for memory, with the numbers)."""

    code = "deployment_refused"


class DeploymentNotFound(DeploymentError):
    status, code = 404, "deployment_not_found"


class DeploymentConflict(DeploymentError):
    status, code = 409, "conflict"
