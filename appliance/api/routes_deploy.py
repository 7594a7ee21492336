"""Changing what a deployment serves (admin scope): switch to a new version behind the eval gate, roll back,
history, live LoRA adapters, and its policy (guardrails and capture). The rules and the audit trail live in
the deployment service."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from appliance.deploy.models import (
    AttachAdapter,
    AttachedAdapter,
    DeploymentPolicy,
    HistoryEntry,
    PolicyVersion,
    RollbackRequest,
    SetPolicy,
    SwitchRequest,
    SwitchResult,
)
from appliance.security.keys import ApiKey
from appliance.web.auth import require
from appliance.web.state import deployments_of

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])


@router.post("/{name}/switch", response_model=SwitchResult)
async def switch(name: str, body: SwitchRequest, request: Request,
                 who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    """Serve another model version under this name, blue/green, if it passes health, a smoke prompt and the
    eval gate against the version serving now. `force` overrides a regression and is audited."""
    return await deployments_of(request).switch(name, body, who.name)


@router.post("/{name}/rollback", response_model=SwitchResult)
async def rollback(name: str, request: Request, body: RollbackRequest | None = None,
                   who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    """Back to the version that served before (or `to`), blue/green; no eval gate: this is the way out."""
    return await deployments_of(request).rollback(name, body or RollbackRequest(), who.name)


@router.get("/{name}/history", response_model=list[HistoryEntry])
async def history(name: str, request: Request, limit: int = Query(50, ge=1, le=1000),
                  _: ApiKey = Depends(require("admin"))) -> list[HistoryEntry]:
    """What this deployment served, newest first."""
    return deployments_of(request).history_of(name, limit)


@router.get("/{name}/adapters", response_model=list[AttachedAdapter])
async def list_adapters(name: str, request: Request, _: ApiKey = Depends(require("admin"))) -> list[AttachedAdapter]:
    return deployments_of(request).adapters_of(name)


@router.post("/{name}/adapters", response_model=SwitchResult)
async def attach_adapter(name: str, body: AttachAdapter, request: Request,
                         who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    """Serve a GGUF LoRA adapter over this deployment under its own model name. The backend restarts
    blue/green with the new set; if the adapter does not load, the previous set keeps serving."""
    return await deployments_of(request).attach(name, body, who.name)


@router.delete("/{name}/adapters/{served}", response_model=SwitchResult)
async def detach_adapter(name: str, served: str, request: Request,
                         who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    return await deployments_of(request).detach(name, served, who.name)


@router.get("/{name}/policy", response_model=PolicyVersion)
async def get_policy(name: str, request: Request, _: ApiKey = Depends(require("admin"))) -> PolicyVersion:
    """The policy in force (version 0, the empty policy, when none was ever set)."""
    versions = deployments_of(request).policies_of(name, 1)
    return versions[0] if versions else PolicyVersion(deployment=name, version=0, policy=DeploymentPolicy(),
                                                      actor="", created_at=0.0)


@router.put("/{name}/policy", response_model=PolicyVersion)
async def set_policy(name: str, body: SetPolicy, request: Request,
                     who: ApiKey = Depends(require("admin"))) -> PolicyVersion:
    """A new version of the deployment's guardrail and capture policy, in force for the next request. Regexes
    that can backtrack catastrophically, unknown entities and duplicate rule names are refused (422)."""
    return deployments_of(request).set_policy(name, body, who.name)


@router.get("/{name}/policy/versions", response_model=list[PolicyVersion])
async def policy_versions(name: str, request: Request, limit: int = Query(20, ge=1, le=1000),
                          _: ApiKey = Depends(require("admin"))) -> list[PolicyVersion]:
    """Every version of the policy, newest first."""
    return deployments_of(request).policies_of(name, limit)
