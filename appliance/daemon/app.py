"""The composition root: builds the FastAPI application from the daemon's parts. The control API
(`appliance.api`) and the /v1 gateway (`appliance.gateway`) both sit below this and never import each other."""

from __future__ import annotations

from fastapi import FastAPI

from appliance import __version__
from appliance.api import (
    routes_capture,
    routes_deploy,
    routes_jobs,
    routes_keys,
    routes_models,
    routes_system,
    routes_trials,
)
from appliance.capture.models import CaptureSettings
from appliance.capture.runtime import CaptureRuntime
from appliance.core import Appliance
from appliance.deploy.service import Deployments
from appliance.gateway import feedback as gateway_feedback
from appliance.gateway import files_api, responses_api, vector_store_files_api, vector_stores_api
from appliance.gateway import routes as gateway_routes
from appliance.gateway.admission import Gates
from appliance.gateway.context import GatewayContext, RequestLimits
from appliance.gateway.metrics import GatewayMetrics
from appliance.gateway.upstream import UpstreamPool
from appliance.jobs.runner import JobRunner
from appliance.retrieval.service import RetrievalService
from appliance.security.usage import UsageMeter
from appliance.trials.runtime import TrialsRuntime
from appliance.web.errors import install_error_handlers
from appliance.web.guard import UPLOAD_FRAMING, Limits, RequestGuard


def create_app(appliance: Appliance, deployments: Deployments, jobs: JobRunner, trials: TrialsRuntime, gates: Gates,
               retrieval: RetrievalService | None = None) -> FastAPI:
    # No /docs or /redoc (their pages load scripts from a CDN an air-gapped box cannot reach); the OpenAPI
    # document is served behind a key by routes_system.
    app = FastAPI(
        title="slm-appliance",
        version=__version__,
        description="Control API and OpenAI-compatible gateway of the small-language-model appliance.",
        docs_url=None, redoc_url=None, openapi_url=None,
    )
    config = appliance.config
    view = deployments.gateway_view
    metrics = GatewayMetrics(view.restarts, appliance.nvml_lib, trials.registry)
    usage = UsageMeter(appliance.store, metrics.registry)

    def capture_settings() -> dict[str, CaptureSettings]:
        return {d.name: p.capture for d in view.deployments() if (p := view.policy(d.name)) is not None}

    capture = CaptureRuntime.create(appliance.store, metrics.registry, capture_settings,
                                    config.capture_sweep_interval_s)
    app.state.appliance = appliance
    app.state.deployments = deployments
    app.state.jobs = jobs
    app.state.usage = usage
    app.state.capture = capture  # started and stopped by the daemon's serve loop
    app.state.trials = trials  # started and stopped with the deployments (reconcile, shutdown)
    app.state.retrieval = retrieval  # /v1/files, /v1/vector_stores; closed by the serve loop
    app.state.gateway = GatewayContext(
        deployments=view,
        upstream=UpstreamPool(config.upstream_read_timeout_s),
        gates=gates, metrics=metrics, usage=usage,
        limits=RequestLimits(config.max_json_depth, config.max_messages), capture=capture.writer,
        shadows=trials.runner, outcomes=trials.outcomes, audit=appliance.store.audit, retrieval=retrieval)
    install_error_handlers(app)
    for router in (routes_system.router, routes_keys.router, routes_keys.usage_router, routes_models.router,
                   routes_deploy.router, routes_trials.router, routes_jobs.router, routes_capture.router,
                   gateway_routes.router, responses_api.router, gateway_feedback.router, files_api.router,
                   vector_stores_api.router, vector_store_files_api.router):
        app.include_router(router)
    return app


def guarded(app: FastAPI, appliance: Appliance) -> RequestGuard:
    """`app` behind the body limits and the key check that run before any route (what uvicorn serves)."""
    config = appliance.config
    return RequestGuard(app, appliance, Limits(config.max_body_bytes_v1, config.max_body_bytes_control,
                                               config.body_timeout_s, config.auth_failures_per_minute,
                                               config.rate_limit_per_minute,
                                               upload_body_bytes=config.retrieval_max_file_bytes + UPLOAD_FRAMING))
