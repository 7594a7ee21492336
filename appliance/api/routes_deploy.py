"""Changing what a deployment serves (admin scope): switch to a new version behind the eval gate, roll back,
history, and live LoRA adapters. Every change, and every blocked or forced one, goes to the audit log."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query, Request

from appliance.api.auth import require
from appliance.api.domain_errors import domain_errors
from appliance.api.errors import BadRequest, Conflict, NotFound
from appliance.api.state import appliance_of, deployments_of
from appliance.core import Appliance
from appliance.deploy.bluegreen import EvalRegression, RollbackRequest, Switcher, SwitchRequest, SwitchResult
from appliance.deploy.history import AttachAdapter, AttachedAdapter, HistoryEntry
from appliance.deploy.manager import NAME
from appliance.evaluation.golden import GoldenItem, golden_set
from appliance.registry.registry import ModelRecord
from appliance.security.keys import ApiKey

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"])
ADAPTER_KINDS = ("adapter-gguf",)


def golden_for(appliance: Appliance, candidate: ModelRecord, requested: str | None) -> tuple[list[GoldenItem], str]:
    """The golden set asked for; else the one the candidate's adapter was fine-tuned with; else the built-in
    general set. The built-in set is always added (its forgotten prompts are reported)."""
    path = requested
    if path is None:
        recorded = appliance.registry.inherited(candidate.id, "golden_set")
        path = str(recorded) if recorded else None
    items, source = golden_set(path, appliance.import_roots)
    return items, str(source) if source else "built-in general set"


def _audit(appliance: Appliance, who: ApiKey, action: str, name: str, result: SwitchResult) -> None:
    appliance.store.audit(who.name, action, name, {"from": result.previous_model, "to": result.model,
                                                   "gate": result.gate, "forced": result.forced,
                                                   "blue_green": result.blue_green})


@router.post("/{name}/switch", response_model=SwitchResult)
async def switch(name: str, body: SwitchRequest, request: Request,
                 who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    """Serve another model version under this name, blue/green, if it passes health, a smoke prompt and the
    eval gate against the version serving now. `force` overrides a regression and is audited."""
    appliance, manager = appliance_of(request), deployments_of(request)
    with domain_errors():
        candidate = appliance.registry.get(body.model)
        items, label = golden_for(appliance, candidate, body.golden)
        try:
            result = await Switcher(manager).change(name, candidate.name, action="switch", actor=who.name,
                                                    items=items, golden_label=label, force=body.force,
                                                    reason=body.reason, drain_timeout_s=body.drain_timeout_s)
        except EvalRegression as exc:
            appliance.store.audit(who.name, "deployment.switch.blocked", name, exc.gate.figures())
            raise
    _audit(appliance, who, "deployment.switch.forced" if result.forced else "deployment.switch", name, result)
    return result


@router.post("/{name}/rollback", response_model=SwitchResult)
async def rollback(name: str, request: Request, body: RollbackRequest | None = None,
                   who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    """Back to the version that served before (or `to`), blue/green; no eval gate: this is the way out."""
    appliance, manager = appliance_of(request), deployments_of(request)
    body = body or RollbackRequest()
    with domain_errors():
        current = manager.get(name)
        if body.to is not None:
            target = appliance.registry.get(body.to).name
        else:
            entry = manager.history.previous_model(name, current.model_id)
            if entry is None:
                raise Conflict(f"deployment {name!r} has no earlier version to roll back to")
            target = appliance.registry.get(entry.model_id).name
        result = await Switcher(manager).change(name, target, action="rollback", actor=who.name,
                                                reason=body.reason, drain_timeout_s=body.drain_timeout_s)
    _audit(appliance, who, "deployment.rollback", name, result)
    return result


@router.get("/{name}/history", response_model=list[HistoryEntry])
async def history(name: str, request: Request, limit: int = Query(50, ge=1, le=1000),
                  _: ApiKey = Depends(require("admin"))) -> list[HistoryEntry]:
    """What this deployment served, newest first."""
    manager = deployments_of(request)
    with domain_errors():
        manager.get(name)
        return manager.history.entries(name, limit)


@router.get("/{name}/adapters", response_model=list[AttachedAdapter])
async def list_adapters(name: str, request: Request, _: ApiKey = Depends(require("admin"))) -> list[AttachedAdapter]:
    manager = deployments_of(request)
    with domain_errors():
        manager.get(name)
        return manager.adapters.of(name)


async def _apply(request: Request, who: ApiKey, name: str, attached: list[AttachedAdapter], what: str,
                 action: str) -> SwitchResult:
    appliance, manager = appliance_of(request), deployments_of(request)
    with domain_errors():
        current = manager.get(name)
        result = await Switcher(manager).change(name, current.model, action="adapters", actor=who.name,
                                                attached=attached, reason=what)
    appliance.store.audit(who.name, action, name, {"adapters": [a.name for a in attached], "change": what})
    return result


@router.post("/{name}/adapters", response_model=SwitchResult)
async def attach_adapter(name: str, body: AttachAdapter, request: Request,
                         who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    """Serve a GGUF LoRA adapter over this deployment under its own model name. The backend restarts
    blue/green with the new set; if the adapter does not load, the previous set keeps serving."""
    appliance, manager = appliance_of(request), deployments_of(request)
    with domain_errors():
        current = manager.get(name)
        adapter = appliance.registry.get(body.adapter)
        if adapter.kind not in ADAPTER_KINDS:
            raise BadRequest(f"{adapter.name!r} is a {adapter.kind} model; attach an exported GGUF LoRA "
                             f"(kind adapter-gguf, from an export job)", param="adapter")
        served = body.name or adapter.name
        if not NAME.match(served):
            raise BadRequest(f"invalid served name {served!r}", param="name")
        taken = {d.name for d in manager.all()} | set(manager.adapter_routes)
        if served in taken:
            raise Conflict(f"the model name {served!r} is already served; pick another with name")
        attached = [*manager.adapters.of(current.name),
                    AttachedAdapter(name=served, deployment=name, model_id=adapter.id, model=adapter.name,
                                    scale=body.scale, position=0, attached_at=time.time())]
    return await _apply(request, who, name, attached, f"attach {served}", "deployment.adapter.attach")


@router.delete("/{name}/adapters/{served}", response_model=SwitchResult)
async def detach_adapter(name: str, served: str, request: Request,
                         who: ApiKey = Depends(require("admin"))) -> SwitchResult:
    manager = deployments_of(request)
    with domain_errors():
        attached = manager.adapters.of(manager.get(name).name)
        if served not in {a.name for a in attached}:
            raise NotFound(f"no adapter {served!r} on deployment {name!r}")
    remaining = [a for a in attached if a.name != served]
    return await _apply(request, who, name, remaining, f"detach {served}", "deployment.adapter.detach")
