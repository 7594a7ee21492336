"""Model registry and deployments (admin scope). Every change is written to the audit log (deployments' by the
deployment service itself)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from appliance.deploy.models import CreateDeployment, Deployment
from appliance.logs import RECENT
from appliance.registry.registry import ModelRecord
from appliance.security.keys import ApiKey
from appliance.web.auth import require
from appliance.web.state import appliance_of, deployments_of

router = APIRouter(prefix="/api/v1", tags=["models"])


class ImportModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="Absolute path of a GGUF file or HF folder under an allowed import root")
    name: str


class ModelDetail(BaseModel):
    model: ModelRecord
    lineage: list[ModelRecord]


@router.get("/models", response_model=list[ModelRecord])
async def list_models(request: Request, _: ApiKey = Depends(require("admin"))) -> list[ModelRecord]:
    return appliance_of(request).registry.all()


@router.post("/models", response_model=ModelRecord, status_code=201)
async def import_model(body: ImportModel, request: Request, who: ApiKey = Depends(require("admin"))) -> ModelRecord:
    """Import a model the operator placed under an allowed import root (copied; the original is untouched)."""
    appliance = appliance_of(request)
    record = await asyncio.to_thread(appliance.registry.import_model, Path(body.path), body.name)
    appliance.store.audit(who.name, "model.import", record.name, {"source": body.path, "sha256": record.sha256})
    return record


@router.get("/models/{name}", response_model=ModelDetail)
async def get_model(name: str, request: Request, _: ApiKey = Depends(require("admin"))) -> ModelDetail:
    registry = appliance_of(request).registry
    return ModelDetail(model=registry.get(name), lineage=registry.lineage(name)[1:])


@router.delete("/models/{name}", response_model=ModelRecord)
async def delete_model(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> ModelRecord:
    appliance = appliance_of(request)
    record = appliance.registry.delete(name)
    appliance.store.audit(who.name, "model.delete", record.name)
    return record


@router.get("/deployments", response_model=list[Deployment], tags=["deployments"])
async def list_deployments(request: Request, _: ApiKey = Depends(require("admin"))) -> list[Deployment]:
    return deployments_of(request).all()


@router.post("/deployments", response_model=Deployment, status_code=201, tags=["deployments"])
async def create_deployment(body: CreateDeployment, request: Request,
                            who: ApiKey = Depends(require("admin"))) -> Deployment:
    """Create a deployment; backend and parameters default from the hardware profile."""
    return await deployments_of(request).create(body, who.name)


@router.get("/deployments/{name}", response_model=Deployment, tags=["deployments"])
async def get_deployment(name: str, request: Request, _: ApiKey = Depends(require("admin"))) -> Deployment:
    return deployments_of(request).get(name)


@router.post("/deployments/{name}/stop", response_model=Deployment, tags=["deployments"])
async def stop_deployment(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> Deployment:
    return await deployments_of(request).stop(name, who.name)


@router.post("/deployments/{name}/start", response_model=Deployment, tags=["deployments"])
async def start_deployment(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> Deployment:
    return await deployments_of(request).start(name, who.name)


@router.delete("/deployments/{name}", response_model=Deployment, tags=["deployments"])
async def delete_deployment(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> Deployment:
    return await deployments_of(request).delete(name, who.name)


@router.get("/deployments/{name}/logs", response_class=PlainTextResponse, tags=["deployments"])
async def deployment_logs(name: str, request: Request, lines: int = Query(200, ge=1, le=10000),
                          _: ApiKey = Depends(require("admin"))) -> str:
    return deployments_of(request).logs(name, lines)


@router.get("/audit", tags=["system"])
async def audit(request: Request, limit: int = Query(100, ge=1, le=1000),
                _: ApiKey = Depends(require("admin"))) -> list[dict[str, object]]:
    return appliance_of(request).store.audit_entries(limit)


@router.get("/logs/daemon", response_class=PlainTextResponse, tags=["system"])
async def daemon_log(lines: int = Query(200, ge=1, le=2000), _: ApiKey = Depends(require("admin"))) -> str:
    """The daemon's most recent log lines (JSON, one per line, secrets masked), as journald also has them."""
    return "\n".join(RECENT.tail(lines))

