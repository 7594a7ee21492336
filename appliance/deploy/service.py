"""Deployments, the one service: create, start, stop, delete, switch, rollback, attach, detach, logs, list and
get. It writes each change's history and audit line itself; routes only parse and call it. The daemon starts
and stops it (`reconcile`, `shutdown`, the training pause); the gateway gets a read-only view and the client
of the backends at wiring time. Its parts (rows, planner, reconciler, routing) stay inside `appliance.deploy`."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from appliance.backends.base import Backend
from appliance.deploy.bluegreen import Change, EvalRegression, Outcome, Switcher
from appliance.deploy.changes import check_adapter, check_served_name, golden_for
from appliance.deploy.errors import DeploymentConflict, DeploymentError, DeploymentNotFound
from appliance.deploy.models import (
    AttachAdapter,
    AttachedAdapter,
    CanaryRequest,
    CanaryState,
    CreateDeployment,
    Deployment,
    HistoryEntry,
    PolicyVersion,
    RollbackRequest,
    SetPolicy,
    SwitchRequest,
    SwitchResult,
    TrialsView,
)
from appliance.deploy.parts import DeploymentParts
from appliance.deploy.policies import apply_policy
from appliance.deploy.trials import Trials
from appliance.deploy.view import GatewayView
from appliance.hardware.models import HardwareReport
from appliance.logfiles import tail
from appliance.names import NAME
from appliance.profiles.select import Selection
from appliance.registry.registry import Registry
from appliance.state.store import StateStore
from appliance.trials.gate import ShadowGateFailed
from appliance.trials.models import ShadowSettings
from appliance.trials.runtime import TrialsRuntime
from appliance.trials.verdict import Verdict, merge


class Deployments:
    def __init__(self, store: StateStore, registry: Registry, selection: Selection, hardware: HardwareReport,
                 backends: Mapping[str, Backend], logs_dir: Path, runtime_dir: Path, import_roots: list[Path],
                 niceness: int = 0, trials: TrialsRuntime | None = None) -> None:
        self._parts = DeploymentParts(store, registry, selection, hardware, backends, logs_dir, runtime_dir,
                                      niceness)
        self._switcher = Switcher(self._parts)
        self._trials = Trials(self._parts, trials)
        self._import_roots = import_roots
        self._view = GatewayView(self._parts, self._trials)

    # -- read -----------------------------------------------------------------------------------------
    def all(self) -> list[Deployment]:
        return [self._parts.get(name) for name in self._parts.rows.names()]

    def get(self, name: str) -> Deployment:
        return self._parts.get(name)

    def history_of(self, name: str, limit: int = 50) -> list[HistoryEntry]:
        """What `name` served, newest first."""
        self._parts.rows.get(name)
        return self._parts.history.entries(name, limit)

    def adapters_of(self, name: str) -> list[AttachedAdapter]:
        self._parts.rows.get(name)
        return self._parts.adapters.of(name)

    def policies_of(self, name: str, limit: int = 20) -> list[PolicyVersion]:
        """The policy versions of `name`, newest (the one in force) first."""
        self._parts.rows.get(name)
        return self._parts.policies.versions(name, limit)

    def logs(self, name: str, lines: int = 200) -> str:
        """The end of the backend log of `name` (every process that served it, candidates included)."""
        self._parts.rows.get(name)
        return tail(self._parts.reconciler.log_path(name), lines)

    # -- intent ---------------------------------------------------------------------------------------
    async def create(self, request: CreateDeployment, actor: str) -> Deployment:
        parts = self._parts
        model = parts.registry.get(request.model)
        name = request.name or model.name
        if not NAME.match(name):
            raise DeploymentError(f"invalid deployment name {name!r}")
        choice = parts.planner.choose_backend(model, request.backend)
        parts.planner.plan(name, model, request.params, choice.backend, choice.reason)
        parts.rows.insert(name, model.id, choice.backend, choice.reason, request.params)
        parts.history.record(name, model.id, model.name, "create", actor)
        parts.store.audit(actor, "deployment.create", name, request.model_dump(mode="json"))
        await parts.reconciler.ensure(name)
        return self.get(name)

    async def start(self, name: str, actor: str) -> Deployment:
        deployment = await self._set_desired(name, "running")
        self._parts.store.audit(actor, "deployment.start", name)
        return deployment

    async def stop(self, name: str, actor: str) -> Deployment:
        deployment = await self._set_desired(name, "stopped")
        self._parts.store.audit(actor, "deployment.stop", name)
        return deployment

    async def delete(self, name: str, actor: str) -> Deployment:
        parts = self._parts
        if name in parts.switching:
            raise DeploymentConflict(f"deployment {name!r} is being switched; try again when that is done")
        self._trials.check_not_candidate(name)
        deployment = await self._set_desired(name, "stopped")
        parts.rows.delete(name)  # its policy versions go with it (ON DELETE CASCADE)
        parts.active.pop(name, None)
        await self._trials.forget(name)
        parts.history.forget(name)
        parts.reconciler.withdraw(name)
        parts.store.audit(actor, "deployment.delete", name)
        return deployment

    def set_policy(self, name: str, body: SetPolicy, actor: str) -> PolicyVersion:
        """A new version of the deployment's policy, in force for the next request (audited, no rule content)."""
        merge(self._trials.settings(name), body.policy.watch)  # its watch overrides are valid
        return apply_policy(self._parts, name, body, actor)

    async def switch(self, name: str, body: SwitchRequest, actor: str) -> SwitchResult:
        """Another model version under this name, blue/green, if it passes health, a smoke prompt and the eval
        gate against the version serving now. `force` overrides a regression and is audited."""
        parts = self._parts
        candidate = parts.registry.get(body.model)
        items, label = golden_for(parts.registry, self._import_roots, candidate, body.golden)
        change = Change(name, candidate.name, "switch", items=items, golden_label=label, force=body.force,
                        reason=body.reason, drain_timeout_s=body.drain_timeout_s)
        previous = parts.rows.get(name).model_id
        try:
            shadow = self._trials.gate(name, candidate.name, body.shadow_gate, body.force) if body.shadow_gate \
                else None
            outcome = await self._switcher.change(change)
        except (EvalRegression, ShadowGateFailed) as exc:
            parts.store.audit(actor, "deployment.switch.blocked", name, exc.gate.figures())
            raise
        if shadow is not None:
            outcome.detail["shadow_gate"] = shadow.figures()
        result = self._record(name, "switch", actor, outcome)
        self._trials.after_switch(name, previous)
        self._audit_switch(actor, "deployment.switch.forced" if result.forced else "deployment.switch", name, result)
        return result

    async def rollback(self, name: str, body: RollbackRequest, actor: str) -> SwitchResult:
        """Back to the version that served before (or `to`), blue/green; no eval gate: this is the way out."""
        parts = self._parts
        current = parts.get(name)
        if body.to is not None:
            target = parts.registry.get(body.to).name
        else:
            entry = parts.history.previous_model(name, current.model_id)
            if entry is None:
                raise DeploymentConflict(f"deployment {name!r} has no earlier version to roll back to")
            target = parts.registry.get(entry.model_id).name
        outcome = await self._switcher.change(Change(name, target, "rollback", reason=body.reason,
                                                     drain_timeout_s=body.drain_timeout_s))
        result = self._record(name, "rollback", actor, outcome)
        self._audit_switch(actor, "deployment.rollback", name, result)
        return result

    async def attach(self, name: str, body: AttachAdapter, actor: str) -> SwitchResult:
        """Serve a LoRA adapter over this deployment under its own model name: blue/green with the new set, or
        loaded while it serves where the backend can; if the adapter does not load, the previous set serves."""
        parts = self._parts
        current = parts.get(name)
        adapter = parts.registry.get(body.adapter)
        check_adapter(parts.registry, parts.backend(current.backend), current, adapter, body.scale)
        served = body.name or adapter.name
        check_served_name(served, parts.served_names())
        attached = [*parts.adapters.of(name),
                    AttachedAdapter(name=served, deployment=name, model_id=adapter.id, model=adapter.name,
                                    scale=body.scale, position=0, attached_at=time.time())]
        return await self._set_adapters(current, attached, f"attach {served}", "deployment.adapter.attach", actor)

    async def detach(self, name: str, served: str, actor: str) -> SwitchResult:
        current = self._parts.get(name)
        attached = self._parts.adapters.of(name)
        if served not in {a.name for a in attached}:
            raise DeploymentNotFound(f"no adapter {served!r} on deployment {name!r}")
        remaining = [a for a in attached if a.name != served]
        return await self._set_adapters(current, remaining, f"detach {served}", "deployment.adapter.detach", actor)

    # -- trials -------------------------------------------------------------------------------------
    async def set_shadow(self, name: str, body: ShadowSettings, actor: str) -> ShadowSettings:
        """`body.candidate` answers a sample of `name`'s requests in the background; never returned."""
        return await self._trials.set_shadow(name, body, actor)

    async def clear_shadow(self, name: str, actor: str) -> None:
        await self._trials.clear_shadow(name, actor)

    def start_canary(self, name: str, body: CanaryRequest, actor: str) -> CanaryState:
        """A sticky share of `name`'s keys served by `body.candidate`, watched against the live side."""
        return self._trials.start_canary(name, body, actor)

    async def promote_canary(self, name: str, body: SwitchRequest | None, actor: str) -> SwitchResult:
        """Serve the candidate's model under `name` (a switch behind the eval gate), then end the canary."""
        canary = self._trials.canary_of(name)
        result = await self.switch(name, body or SwitchRequest(model=self.get(canary.candidate).model), actor)
        self._trials.end_canary(name, actor, "promote", {"model": result.model}, end_watch=False)
        return result

    def abort_canary(self, name: str, actor: str, reason: str = "") -> TrialsView:
        self._trials.end_canary(name, actor, "abort", {"reason": reason})
        return self._trials.view(name)

    def trials_of(self, name: str) -> TrialsView:
        return self._trials.view(name)

    async def auto_rollback(self, name: str, verdict: Verdict) -> None:
        """The live watch found a regression: abort the canary, or roll the switch back; audited with the
        figures that triggered it."""
        if verdict.kind == "canary":
            self._trials.end_canary(name, "live-watch", "rolled-back", {"reasons": verdict.reasons})
            return
        reason = f"live watch: {'; '.join(verdict.reasons)}"[:500]
        await self.rollback(name, RollbackRequest(reason=reason), "live-watch")
        self._parts.store.audit("live-watch", "deployment.watch.rollback", name, verdict.figures())

    # -- the daemon's -------------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Every deployment the store says should run comes back, under its policy (daemon start)."""
        self._parts.load_policies()
        self._trials.load()
        await self._trials.start()
        await self._parts.reconciler.reconcile()

    async def shutdown(self) -> None:
        await self._trials.stop()
        await self._parts.reconciler.shutdown()

    async def pause_all(self, reason: str) -> list[str]:
        """Stop every backend without changing what the operator asked for (a training job on a profile that
        cannot serve and train at once); returns the names to `resume`."""
        return await self._parts.reconciler.pause_all(reason)

    async def resume(self, names: list[str]) -> None:
        await self._parts.reconciler.resume(names)

    @property
    def gateway_view(self) -> GatewayView:
        return self._view

    # -- internals ------------------------------------------------------------------------------------
    async def _set_desired(self, name: str, desired: str) -> Deployment:
        parts = self._parts
        parts.rows.get(name)
        parts.rows.set_desired(name, desired)
        await parts.reconciler.ensure(name)
        return self.get(name)

    async def _set_adapters(self, current: Deployment, attached: list[AttachedAdapter], what: str, action: str,
                            actor: str) -> SwitchResult:
        parts, name = self._parts, current.name
        names = [a.name for a in attached]
        if parts.backend(current.backend).capabilities.runtime_lora:
            # Loaded and unloaded while it serves: no new process, no drain.
            with parts.changing(name):
                await parts.reconciler.change_adapters(name, attached)
            result = SwitchResult(deployment=parts.get(name), action="adapters", previous_model=current.model,
                                  model=current.model, blue_green=False)
            outcome = Outcome(result, current.model_id, {"reason": what, "adapters": names, "blue_green": False,
                                                         "runtime": True})
        else:
            outcome = await self._switcher.change(Change(name, current.model, "adapters", attached=attached,
                                                         reason=what))
        result = self._record(name, "adapters", actor, outcome)
        parts.store.audit(actor, action, name, {"adapters": names, "change": what})
        return result

    def _record(self, name: str, action: str, actor: str, outcome: Outcome) -> SwitchResult:
        self._parts.history.record(name, outcome.model_id, outcome.result.model, action, actor, outcome.detail)
        return outcome.result

    def _audit_switch(self, actor: str, action: str, name: str, result: SwitchResult) -> None:
        detail: dict[str, Any] = {"from": result.previous_model, "to": result.model, "gate": result.gate,
                                  "forced": result.forced, "blue_green": result.blue_green}
        self._parts.store.audit(actor, action, name, detail)
