"""The composition root: builds the FastAPI application from the daemon's parts. The control API
(`appliance.api`) and the /v1 gateway (`appliance.gateway`) both sit below this and never import each other."""

from __future__ import annotations

from fastapi import FastAPI

from appliance import __version__
from appliance.api import routes_deploy, routes_jobs, routes_keys, routes_models, routes_system
from appliance.core import Appliance
from appliance.deploy.changes import DeploymentChanges
from appliance.deploy.manager import DeploymentManager
from appliance.gateway import routes as gateway_routes
from appliance.gateway.admission import Gates
from appliance.gateway.metrics import GatewayMetrics
from appliance.gateway.upstream import UpstreamPool
from appliance.jobs.runner import JobRunner
from appliance.security.usage import UsageMeter
from appliance.web.auth import RateLimiter
from appliance.web.errors import install_error_handlers
from appliance.web.guard import Limits, RequestGuard


def create_app(appliance: Appliance, deployments: DeploymentManager, jobs: JobRunner) -> FastAPI:
    # No /docs or /redoc (their pages load scripts from a CDN an air-gapped box cannot reach); the OpenAPI
    # document is served behind a key by routes_system.
    app = FastAPI(
        title="slm-appliance",
        version=__version__,
        description="Control API and OpenAI-compatible gateway of the small-language-model appliance.",
        docs_url=None, redoc_url=None, openapi_url=None,
    )
    app.state.appliance = appliance
    app.state.deployments = deployments
    app.state.changes = DeploymentChanges(deployments, appliance.registry, appliance.store, appliance.import_roots)
    app.state.jobs = jobs
    app.state.rate_limiter = RateLimiter(appliance.config.rate_limit_per_minute)
    app.state.gates = Gates(appliance.config.queue_depth, appliance.config.per_key_concurrency)
    app.state.tool_support = {}  # per backend process: does its chat template render tools itself
    app.state.upstream = UpstreamPool(appliance.config.upstream_read_timeout_s)
    app.state.metrics = GatewayMetrics(deployments.routing.restarts, appliance.nvml_lib)
    app.state.usage = UsageMeter(appliance.store, app.state.metrics.registry)
    install_error_handlers(app)
    for router in (routes_system.router, routes_keys.router, routes_keys.usage_router, routes_models.router,
                   routes_deploy.router, routes_jobs.router, gateway_routes.router):
        app.include_router(router)
    return app


def guarded(app: FastAPI, appliance: Appliance) -> RequestGuard:
    """`app` behind the body limits and the key check that run before any route (what uvicorn serves)."""
    config = appliance.config
    return RequestGuard(app, appliance, Limits(config.max_body_bytes_v1, config.max_body_bytes_control,
                                               config.body_timeout_s, config.auth_failures_per_minute))
