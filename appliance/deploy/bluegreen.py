"""Blue/green changes of a running deployment: a new model version, a rollback, or a new set of LoRA adapters.

The candidate backend starts beside the live one under the same served name but reports nothing; it must become
healthy, answer a smoke prompt and (for a new version) pass the eval gate. Only then does the name switch, in
one step under the reconciler's lock: the store row, the attached adapters and the routing change together.
The old backend finishes the requests it has (drain), then stops. Any failure before the switch stops the
candidate and leaves the live deployment exactly as it was.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from appliance.backends.process import STARTUP_TIMEOUT_S
from appliance.deploy.errors import DeploymentError
from appliance.deploy.fit import ServingPlan
from appliance.deploy.gate import EvalGate, GateFailed, eval_gate, smoke_test
from appliance.deploy.models import AttachedAdapter, SwitchResult
from appliance.deploy.parts import DeploymentParts, PlannedChange
from appliance.deploy.reconciler import Served
from appliance.evaluation.golden import GoldenItem
from appliance.logfiles import read_from

log = logging.getLogger(__name__)


class EvalRegression(DeploymentError):
    status, code = 409, "eval_regression"

    def __init__(self, gate: EvalGate) -> None:
        super().__init__(f"eval gate: {gate.candidate_model} regresses against {gate.live_model} on {gate.golden}"
                         f" ({gate.reason}); live {gate.live.summary()}, candidate {gate.candidate.summary()}."
                         " Nothing changed; pass force to deploy anyway (audited)")
        self.gate = gate


@dataclass(frozen=True)
class Change:
    """One requested change of what `name` serves."""

    name: str
    model_name: str
    action: str  # switch, rollback or adapters
    attached: list[AttachedAdapter] | None = None  # the adapter set after the change (None: keep the current)
    items: list[GoldenItem] | None = None  # the eval gate's golden set (None: no gate)
    golden_label: str = ""
    force: bool = False
    reason: str | None = None
    drain_timeout_s: float = 60.0


@dataclass
class Trial:
    """A candidate that passed: the process to switch to, and what it was judged on."""

    candidate: Served
    smoke: str
    gate: EvalGate | None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Outcome:
    """A change that went through: the API's result, and what the deployment's history records of it."""

    result: SwitchResult
    model_id: str
    detail: dict[str, Any]


def _log_excerpt(parts: DeploymentParts, name: str, since: int) -> str:
    """The candidate's own lines of the deployment log: llama-server's reason for refusing to start."""
    lines = read_from(parts.reconciler.log_path(name), since).splitlines()
    wanted = [line for line in lines if any(w in line.lower() for w in ("error", "failed", "invalid", "exit"))]
    return " | ".join((wanted or lines)[-4:])[:800]


class Switcher:
    def __init__(self, parts: DeploymentParts) -> None:
        self.parts = parts

    async def change(self, change: Change) -> Outcome:
        """Serve `change.model_name` (and its adapter set) under `change.name`, blue/green.

        Raises:
            DeploymentConflict: another change of the name is under way. EvalRegression: the gate blocked it.
            DeploymentError: the candidate did not start or answer (nothing changed).
        """
        with self.parts.changing(change.name):
            outcome = await self._change(change)
        outcome.result.deployment = self.parts.get(change.name)
        return outcome

    async def _change(self, change: Change) -> Outcome:
        parts, started = self.parts, time.monotonic()
        planned = parts.plan_change(change.name, change.model_name)
        attached = parts.adapters.of(change.name) if change.attached is None else change.attached
        detail: dict[str, Any] = {"from": planned.previous.name, "to": planned.model.name, "reason": change.reason,
                                  "adapters": [a.name for a in attached]}
        live = parts.reconciler.live(change.name)
        if live is None or not live.process.ready or not planned.row.wants_running:
            return await self._restart(change, planned, attached, detail)
        parts.planner.check_beside_live(live.plan, planned.plan)
        trial = await self._trial(change, planned, live, attached, started)
        forced = bool(change.force and trial.gate is not None and trial.gate.regressed)
        await parts.reconciler.commit(change.name, planned.plan, attached, trial.candidate)
        trial.timings["switched"] = round(time.monotonic() - started, 2)
        log.info("deployment switched", extra={"deployment": change.name, "from": planned.previous.name,
                                                "to": planned.model.name, "action": change.action, "forced": forced})
        left = await live.process.drain(change.drain_timeout_s)
        await live.process.stop(f"replaced by {planned.model.name}")
        trial.timings["drained"] = round(time.monotonic() - started, 2)
        figures = trial.gate.figures() if trial.gate else None
        result = SwitchResult(deployment=parts.get(change.name), action=change.action,
                              previous_model=planned.previous.name, model=planned.model.name, blue_green=True,
                              smoke_answer=trial.smoke, gate=figures, forced=forced, still_running_at_stop=left,
                              timings_s=trial.timings)
        return Outcome(result, planned.model.id, {**detail, "blue_green": True, "gate": figures, "forced": forced,
                                                  "timings_s": trial.timings})

    async def _restart(self, change: Change, planned: PlannedChange, attached: list[AttachedAdapter],
                       detail: dict[str, Any]) -> Outcome:
        """Nothing serving to keep up: no blue/green, the deployment simply comes back with the new version."""
        parts = self.parts
        await parts.reconciler.commit(change.name, planned.plan, attached, None)
        if planned.row.wants_running:
            await parts.reconciler.restart(change.name, "replaced")
        result = SwitchResult(deployment=parts.get(change.name), action=change.action,
                              previous_model=planned.previous.name, model=planned.model.name, blue_green=False)
        return Outcome(result, planned.model.id, {**detail, "blue_green": False})

    async def _trial(self, change: Change, planned: PlannedChange, live: Served, attached: list[AttachedAdapter],
                     started: float) -> Trial:
        """Start the candidate and judge it; stops it and raises if it fails."""
        # On CPU the trial runs single-threaded: two multi-threaded llama.cpp processes busy on the same cores
        # stall each other at every thread barrier (4 short answers took 35 s beside a busy live backend on 2
        # cores). The version that takes over is then started with the deployment's threads and smoke-tested.
        trial_first = live.process.spec.threaded_on_cpu
        candidate = await self._start_candidate(planned.plan.with_threads(1) if trial_first else planned.plan,
                                                attached)
        trial = Trial(candidate, "", None, {"candidate_ready": round(time.monotonic() - started, 2)})
        try:
            trial.smoke = await smoke_test(candidate.process)
            if change.items is not None:
                trial.gate = await eval_gate(live.process, candidate.process, change.items,
                                             change.golden_label, planned.previous.name, planned.model.name)
                trial.timings["eval_gate"] = round(time.monotonic() - started - trial.timings["candidate_ready"], 2)
                if trial.gate.regressed and not change.force:
                    raise EvalRegression(trial.gate)
            if trial_first:
                await candidate.process.stop("trial passed")
                trial.candidate = candidate = await self._start_candidate(planned.plan, attached)
                trial.smoke = await smoke_test(candidate.process)
                trial.timings["final_ready"] = round(time.monotonic() - started, 2)
        except GateFailed as exc:
            await candidate.process.stop("candidate refused")
            raise DeploymentError(f"candidate {planned.model.name} failed its smoke prompt: {exc}; nothing "
                                  "changed") from exc
        except EvalRegression:
            await candidate.process.stop("candidate refused")
            raise
        return trial

    async def _start_candidate(self, plan: ServingPlan, attached: list[AttachedAdapter]) -> Served:
        parts = self.parts
        log_path = parts.reconciler.log_path(plan.deployment)
        offset = log_path.stat().st_size if log_path.exists() else 0
        candidate = parts.reconciler.new_process(plan, attached, quiet=True)
        candidate.process.start()
        if not await candidate.process.wait_settled(STARTUP_TIMEOUT_S):
            message = candidate.process.state_message
            await candidate.process.stop("candidate refused")
            raise DeploymentError(f"candidate {plan.model.name} did not start ({message.split(';')[0]}); the live "
                                  f"deployment keeps serving. Backend log: "
                                  f"{_log_excerpt(parts, plan.deployment, offset)}")
        return candidate
