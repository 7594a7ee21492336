"""Trials of a candidate on a live deployment (admin scope): its shadow and the pairs it produced, its canary
(start, promote, abort), and the live watch's verdict. The rules and the audit trail live in the deployment
service; a switch's shadow gate is a field of the switch request."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from appliance.deploy.models import CanaryRequest, CanaryState, SwitchRequest, SwitchResult, TrialsView
from appliance.security.keys import ApiKey
from appliance.trials.models import ShadowPair, ShadowSettings
from appliance.web.auth import require
from appliance.web.state import deployments_of, trials_of

router = APIRouter(prefix="/api/v1/deployments", tags=["trials"])


class AbortCanary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


@router.get("/{name}/trials", response_model=TrialsView)
async def trials(name: str, request: Request, _: ApiKey = Depends(require("admin"))) -> TrialsView:
    """The shadow and its figures, the canary, and the live watch's latest verdict (both sides side by side)."""
    return deployments_of(request).trials_of(name)


@router.put("/{name}/shadow", response_model=ShadowSettings)
async def set_shadow(name: str, body: ShadowSettings, request: Request,
                     who: ApiKey = Depends(require("admin"))) -> ShadowSettings:
    """`candidate` (another deployment) also answers a sample of this deployment's requests, in the background:
    never returned, never delaying the live answer; each pair is compared."""
    return await deployments_of(request).set_shadow(name, body, who.name)


@router.delete("/{name}/shadow", status_code=204)
async def clear_shadow(name: str, request: Request, who: ApiKey = Depends(require("admin"))) -> None:
    await deployments_of(request).clear_shadow(name, who.name)


@router.get("/{name}/shadow/pairs", response_model=list[ShadowPair])
async def shadow_pairs(name: str, request: Request, limit: int = Query(20, ge=1, le=500),
                       _: ApiKey = Depends(require("admin"))) -> list[ShadowPair]:
    """The pairs the candidate agreed with least (redacted like the live deployment's capture)."""
    view = deployments_of(request).trials_of(name)
    if view.shadow is None:
        return []
    runner = trials_of(request).runner
    return await asyncio.to_thread(runner.worst, name, view.shadow.candidate, limit)


@router.post("/{name}/canary", response_model=CanaryState, status_code=201)
async def start_canary(name: str, body: CanaryRequest, request: Request,
                       who: ApiKey = Depends(require("admin"))) -> CanaryState:
    """Send a sticky share of the keys (`weight`) to the candidate deployment, watched against the live side;
    a regression past the watch's thresholds aborts it on its own."""
    return deployments_of(request).start_canary(name, body, who.name)


@router.post("/{name}/canary/promote", response_model=SwitchResult)
async def promote_canary(name: str, request: Request, body: SwitchRequest | None = None,
                         who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    """Serve the candidate's model under this name (blue/green, behind the eval gate; a body overrides the
    switch), then end the canary; the live watch follows the switch."""
    return await deployments_of(request).promote_canary(name, body, who.name)


@router.post("/{name}/canary/abort", response_model=TrialsView)
async def abort_canary(name: str, request: Request, body: AbortCanary | None = None,
                       who: ApiKey = Depends(require("admin"))) -> TrialsView:
    """Every key back on the live version at once."""
    return deployments_of(request).abort_canary(name, who.name, (body or AbortCanary()).reason)
