"""The FastAPI application: health, control API, the OpenAI-compatible /v1 gateway and /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from appliance import __version__
from appliance.api import routes_deploy, routes_jobs, routes_keys, routes_models, routes_system
from appliance.api.auth import RateLimiter
from appliance.api.errors import install_error_handlers
from appliance.core import Appliance
from appliance.deploy.manager import DeploymentManager
from appliance.gateway import routes as gateway_routes
from appliance.gateway.admission import Gates
from appliance.gateway.metrics import GatewayMetrics
from appliance.gateway.upstream import UpstreamPool
from appliance.jobs.runner import JobRunner


def create_app(appliance: Appliance, deployments: DeploymentManager, jobs: JobRunner) -> FastAPI:
    app = FastAPI(
        title="slm-appliance",
        version=__version__,
        description="Control API and OpenAI-compatible gateway of the small-language-model appliance.",
    )
    app.state.appliance = appliance
    app.state.deployments = deployments
    app.state.jobs = jobs
    app.state.rate_limiter = RateLimiter(appliance.config.rate_limit_per_minute)
    app.state.gates = Gates(appliance.config.queue_depth)
    app.state.upstream = UpstreamPool()
    app.state.metrics = GatewayMetrics(
        lambda: {name: p.restarts for name, p in deployments.processes.items()}, appliance.nvml_lib
    )
    install_error_handlers(app)
    app.include_router(routes_system.router)
    app.include_router(routes_keys.router)
    app.include_router(routes_models.router)
    app.include_router(routes_deploy.router)
    app.include_router(routes_jobs.router)
    app.include_router(gateway_routes.router)
    return app
