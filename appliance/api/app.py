"""The FastAPI application: control API, health, (later) the /v1 gateway and /metrics."""

from __future__ import annotations

from fastapi import FastAPI

from appliance import __version__
from appliance.api import routes_keys, routes_system
from appliance.api.auth import RateLimiter
from appliance.api.errors import install_error_handlers
from appliance.core import Appliance


def create_app(appliance: Appliance) -> FastAPI:
    app = FastAPI(
        title="slm-appliance",
        version=__version__,
        description="Control API and OpenAI-compatible gateway of the small-language-model appliance.",
    )
    app.state.appliance = appliance
    app.state.rate_limiter = RateLimiter(appliance.config.rate_limit_per_minute)
    install_error_handlers(app)
    app.include_router(routes_system.router)
    app.include_router(routes_keys.router)
    return app
