"""Health, hardware, profiles and the planner."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from appliance import __version__
from appliance.backends.registry import serving_memory
from appliance.errors import BadRequest
from appliance.hardware.models import GpuSample, HardwareReport
from appliance.hardware.nvml import sample_gpus
from appliance.plan.planner import ModelPlan, make_plan
from appliance.plan.shapes import ModelShape, parse_params, shape_for
from appliance.profiles.schema import Profile
from appliance.profiles.select import ProfileVerdict
from appliance.web.auth import require
from appliance.web.state import appliance_of

router = APIRouter()
admin = [Depends(require("admin"))]


class Health(BaseModel):
    status: str
    version: str
    uptime_s: float


class HardwareResponse(BaseModel):
    report: HardwareReport
    samples: list[GpuSample]
    profile: str
    profile_reason: str


class ProfilesResponse(BaseModel):
    selected: str
    pinned: bool
    reason: str
    tensor_parallel_size: int
    verdicts: list[ProfileVerdict]
    profiles: list[Profile]


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz(request: Request) -> Health:
    """Liveness: the process answers. No key needed."""
    import time

    return Health(status="ok", version=__version__, uptime_s=round(time.time() - appliance_of(request).started_at, 3))


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> JSONResponse:
    """Readiness: startup finished (store open, hardware detected, profile chosen). No key needed."""
    ready = appliance_of(request).ready
    return JSONResponse({"status": "ready" if ready else "starting"}, status_code=200 if ready else 503)


@router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("inference"))])
async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document of the whole API, for any valid key (it maps every route: not for anonymous eyes)."""
    return JSONResponse(request.app.openapi())


@router.get("/api/v1/hardware", response_model=HardwareResponse, dependencies=admin, tags=["system"])
async def hardware(request: Request) -> HardwareResponse:
    """What detection found at startup, plus a live sample of every GPU."""
    appliance = appliance_of(request)
    samples = await asyncio.to_thread(sample_gpus, appliance.nvml_lib)
    return HardwareResponse(report=appliance.hardware, samples=samples, profile=appliance.selection.name,
                            profile_reason=appliance.selection.reason)


@router.get("/api/v1/profiles", response_model=ProfilesResponse, dependencies=admin, tags=["system"])
async def profiles(request: Request) -> ProfilesResponse:
    """Every profile, whether it matched and why, and the one in use."""
    selection = appliance_of(request).selection
    return ProfilesResponse(
        selected=selection.name, pinned=selection.pinned, reason=selection.reason,
        tensor_parallel_size=selection.tensor_parallel_size, verdicts=selection.verdicts,
        profiles=appliance_of(request).profiles,
    )


@router.get("/api/v1/plan", response_model=ModelPlan, dependencies=admin, tags=["system"])
async def plan(
    request: Request,
    params: str = Query(..., description="Model size: 135M, 1.5B, 7B or a plain number"),
    layers: int | None = Query(None, gt=0, le=2**31),
    hidden: int | None = Query(None, gt=0, le=2**31),
    intermediate: int | None = Query(None, gt=0, le=2**31),
    heads: int | None = Query(None, gt=0, le=2**31),
    kv_heads: int | None = Query(None, gt=0, le=2**31),
    vocab: int | None = Query(None, gt=0, le=2**31),
) -> ModelPlan:
    """Memory needed to train and serve a model of this size under the selected profile, and whether it fits."""
    try:
        count = parse_params(params)
    except ValueError as exc:
        raise BadRequest(str(exc), param="params") from exc
    overrides: dict[str, Any] = {
        k: v for k, v in {"layers": layers, "hidden": hidden, "intermediate": intermediate, "heads": heads,
                          "kv_heads": kv_heads, "vocab": vocab}.items() if v is not None
    }
    shape = shape_for(count)
    if overrides:
        try:
            shape = ModelShape(**{**shape.model_dump(), **overrides, "name": "custom"})
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
    appliance = appliance_of(request)
    return make_plan(shape, appliance.selection, appliance.hardware,
                     serving_memory(appliance.selection.profile.serving.backend))
