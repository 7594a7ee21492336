"""The daemon's objects the routes reach through `app.state` (set once by the app factory), typed."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request

from appliance.errors import Unavailable

if TYPE_CHECKING:  # the gateway imports this module; the job runner need not be loaded for it
    from appliance.capture.runtime import CaptureRuntime
    from appliance.core import Appliance
    from appliance.deploy.service import Deployments
    from appliance.jobs.runner import JobRunner
    from appliance.retrieval.service import RetrievalService
    from appliance.security.usage import UsageMeter
    from appliance.trials.runtime import TrialsRuntime


def appliance_of(request: Request) -> Appliance:
    appliance: Appliance = request.app.state.appliance
    return appliance


def deployments_of(request: Request) -> Deployments:
    deployments: Deployments = request.app.state.deployments
    return deployments


def jobs_of(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


def usage_of(request: Request) -> UsageMeter:
    meter: UsageMeter = request.app.state.usage
    return meter


def capture_of(request: Request) -> CaptureRuntime:
    capture: CaptureRuntime = request.app.state.capture
    return capture


def trials_of(request: Request) -> TrialsRuntime:
    trials: TrialsRuntime = request.app.state.trials
    return trials


def retrieval_of(request: Request) -> RetrievalService:
    """The retrieval service (/v1/files, /v1/vector_stores); 503 on an app built without one."""
    service: RetrievalService | None = getattr(request.app.state, "retrieval", None)
    if service is None:
        raise Unavailable("this appliance has no retrieval service (files and vector stores)")
    return service
