"""Blue/green changes of a running deployment: a new model version, a rollback, or a new set of LoRA adapters.

The candidate backend starts beside the live one under the same served name but reports nothing; it must become
healthy, answer a smoke prompt and (for a new version) pass the eval gate. Only then does the name switch, in
one step under the manager's lock: the store row, the attached adapters and the gateway's routing change
together. The old backend finishes the requests it has (drain), then stops. Any failure before the switch stops
the candidate and leaves the live deployment exactly as it was.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.backends.process import STARTUP_TIMEOUT_S, BackendProcess
from appliance.deploy.gate import EvalGate, GateFailed, eval_gate, smoke_test
from appliance.deploy.history import AttachedAdapter
from appliance.deploy.manager import DeploymentConflict, DeploymentError, DeploymentManager
from appliance.deploy.models import Deployment, DeploymentParams
from appliance.evaluation.golden import GoldenItem
from appliance.registry.registry import ModelRecord

log = logging.getLogger(__name__)


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="Registry model to serve under the deployment's name")
    golden: str | None = Field(None, description="Golden set JSONL under an import root (default: the one the "
                                                 "candidate was fine-tuned with, else the built-in general set)")
    force: bool = Field(False, description="Switch even if the eval gate finds a regression (audited)")
    reason: str | None = Field(None, max_length=500)
    drain_timeout_s: float = Field(60.0, ge=0.0, le=3600.0)


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, description="Registry model to return to (default: the previous version)")
    reason: str | None = Field(None, max_length=500)
    drain_timeout_s: float = Field(60.0, ge=0.0, le=3600.0)


class EvalRegression(DeploymentError):
    def __init__(self, gate: EvalGate) -> None:
        super().__init__(f"eval gate: {gate.candidate_model} regresses against {gate.live_model} on {gate.golden}"
                         f" ({gate.reason}); live {gate.live.summary()}, candidate {gate.candidate.summary()}."
                         " Nothing changed; pass force to deploy anyway (audited)")
        self.gate = gate


class SwitchResult(BaseModel):
    deployment: Deployment
    action: str
    previous_model: str
    model: str
    blue_green: bool = Field(..., description="False when nothing was serving: the deployment was restarted")
    smoke_answer: str = ""
    gate: dict[str, Any] | None = None
    forced: bool = False
    still_running_at_stop: int = Field(0, description="Requests the old backend had left at the drain timeout")
    timings_s: dict[str, float] = Field(default_factory=dict)


def _log_excerpt(manager: DeploymentManager, name: str, since: int) -> str:
    """The candidate's own lines of the deployment log: llama-server's reason for refusing to start."""
    path = manager.log_path(name)
    if not path.exists():
        return ""
    with path.open("rb") as fh:
        fh.seek(since)
        lines = fh.read().decode(errors="replace").splitlines()
    wanted = [line for line in lines if any(w in line.lower() for w in ("error", "failed", "invalid", "exit"))]
    return " | ".join((wanted or lines)[-4:])[:800]


class Switcher:
    def __init__(self, manager: DeploymentManager) -> None:
        self.manager = manager

    async def _start_candidate(self, name: str, backend: str, model: ModelRecord, params: DeploymentParams,
                               attached: list[AttachedAdapter]) -> BackendProcess:
        manager = self.manager
        log_path = manager.log_path(name)
        offset = log_path.stat().st_size if log_path.exists() else 0
        candidate = manager.new_process(name, backend, model, params, attached, quiet=True)
        candidate.start()
        if not await candidate.wait_settled(STARTUP_TIMEOUT_S):
            message = candidate.state_message
            await candidate.stop("candidate refused")
            raise DeploymentError(f"candidate {model.name} did not start ({message.split(';')[0]}); the live "
                                  f"deployment keeps serving. Backend log: {_log_excerpt(manager, name, offset)}")
        return candidate

    async def change(self, name: str, model_name: str, *, action: str, actor: str,
                     attached: list[AttachedAdapter] | None = None, items: list[GoldenItem] | None = None,
                     golden_label: str = "", force: bool = False, reason: str | None = None,
                     drain_timeout_s: float = 60.0) -> SwitchResult:
        """Serve `model_name` (and `attached`, default: the current set) under `name`, blue/green.

        Raises:
            DeploymentConflict: another change of `name` is under way. EvalRegression: the gate blocked it.
            DeploymentError: the candidate did not start or answer (nothing changed).
        """
        manager = self.manager
        if name in manager.switching:
            raise DeploymentConflict(f"deployment {name!r} is already being switched")
        manager.switching.add(name)
        try:
            result = await self._change(name, model_name, action, actor, attached, items, golden_label, force,
                                        reason, drain_timeout_s)
        finally:
            manager.switching.discard(name)
        result.deployment = manager.get(name)
        return result

    async def _change(self, name: str, model_name: str, action: str, actor: str,
                      attached: list[AttachedAdapter] | None, items: list[GoldenItem] | None, golden_label: str,
                      force: bool, reason: str | None, drain_timeout_s: float) -> SwitchResult:
        manager, started = self.manager, time.monotonic()
        plan = manager.plan_change(name, model_name)
        previous, model, backend, params = plan.previous, plan.model, plan.backend, plan.params
        attached = manager.adapters.of(name) if attached is None else attached
        live = manager.processes.get(name)
        timings: dict[str, float] = {}
        detail: dict[str, Any] = {"from": previous.name, "to": model.name, "reason": reason,
                                  "adapters": [a.name for a in attached]}
        if live is None or not live.ready or not plan.wants_running:
            # Nothing serving to keep up: no blue/green, the deployment simply comes back with the new version.
            await manager.commit_change(name, model.id, backend, attached, None)
            if plan.wants_running:
                if live is not None:
                    manager.processes.pop(name, None)
                    await live.stop("replaced")
                await manager.ensure(name)
            manager.history.record(name, model.id, model.name, action, actor, {**detail, "blue_green": False})
            return SwitchResult(deployment=manager.get(name), action=action, previous_model=previous.name,
                                model=model.name, blue_green=False)
        manager.check_beside_live(plan, live)
        # On CPU the trial runs single-threaded: two multi-threaded llama.cpp processes busy on the same cores
        # stall each other at every thread barrier (4 short answers took 35 s beside a busy live backend on 2
        # cores). The version that takes over is then started with the deployment's threads and smoke-tested.
        trial_first = live.spec.gpu_layers == 0 and (live.spec.threads or 2) > 1
        trial_params = params.model_copy(update={"threads": 1}) if trial_first else params
        candidate = await self._start_candidate(name, backend, model, trial_params, attached)
        timings["candidate_ready"] = round(time.monotonic() - started, 2)
        gate: EvalGate | None = None
        try:
            smoke = await smoke_test(manager.client, candidate)
            if items is not None:
                gate = await eval_gate(manager.client, live, candidate, items, golden_label, previous.name,
                                       model.name)
                timings["eval_gate"] = round(time.monotonic() - started - timings["candidate_ready"], 2)
                if gate.regressed and not force:
                    raise EvalRegression(gate)
            if trial_first:
                await candidate.stop("trial passed")
                candidate = await self._start_candidate(name, backend, model, params, attached)
                smoke = await smoke_test(manager.client, candidate)
                timings["final_ready"] = round(time.monotonic() - started, 2)
        except GateFailed as exc:
            await candidate.stop("candidate refused")
            raise DeploymentError(f"candidate {model.name} failed its smoke prompt: {exc}; nothing changed") from exc
        except EvalRegression:
            await candidate.stop("candidate refused")
            raise
        forced = bool(force and gate is not None and gate.regressed)
        await manager.commit_change(name, model.id, backend, attached, candidate)
        timings["switched"] = round(time.monotonic() - started, 2)
        log.info("deployment switched", extra={"deployment": name, "from": previous.name, "to": model.name,
                                                "action": action, "forced": forced})
        left = await live.drain(drain_timeout_s)
        await live.stop(f"replaced by {model.name}")
        timings["drained"] = round(time.monotonic() - started, 2)
        gate_figures = gate.figures() if gate else None
        manager.history.record(name, model.id, model.name, action, actor,
                               {**detail, "blue_green": True, "gate": gate_figures, "forced": forced,
                                "timings_s": timings})
        return SwitchResult(deployment=manager.get(name), action=action, previous_model=previous.name,
                            model=model.name, blue_green=True, smoke_answer=smoke, gate=gate_figures,
                            forced=forced, still_running_at_stop=left, timings_s=timings)
