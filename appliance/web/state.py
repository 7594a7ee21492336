"""The daemon's objects the routes reach through `app.state` (set once by the app factory), typed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

if TYPE_CHECKING:  # the gateway imports this module; the job runner need not be loaded for it
    from appliance.core import Appliance
    from appliance.deploy.changes import DeploymentChanges
    from appliance.deploy.manager import DeploymentManager
    from appliance.jobs.runner import JobRunner


def appliance_of(request: Request) -> Appliance:
    appliance: Appliance = request.app.state.appliance
    return appliance


def deployments_of(request: Request) -> DeploymentManager:
    manager: DeploymentManager = request.app.state.deployments
    return manager


def changes_of(request: Request) -> DeploymentChanges:
    changes: DeploymentChanges = request.app.state.changes
    return changes


def jobs_of(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner
