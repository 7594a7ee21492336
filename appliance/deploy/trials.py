"""Trials of a candidate on a live deployment's traffic, inside the deployment service: its shadow (a candidate
deployment answering a sample in the background) and the shadow gate of a switch, its canary (a sticky share of
the keys sent to the candidate), and the live watch that rolls a regression back on its own. The settings are
kept in the store (a restart brings them back); the gateway reads them from memory through its view."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from appliance.deploy.errors import DeploymentConflict, DeploymentError, DeploymentNotFound
from appliance.deploy.models import CanaryRequest, CanaryState, ShadowGateRequest, TrialsView
from appliance.deploy.parts import DeploymentParts
from appliance.trials.canary import Canary, arm_of
from appliance.trials.gate import ShadowGate, check
from appliance.trials.models import ShadowSettings
from appliance.trials.runtime import TrialsRuntime
from appliance.trials.verdict import WatchSettings, merge
from appliance.trials.watch import ArmRef

log = logging.getLogger(__name__)

Audit = Callable[[str, str, str, dict[str, Any]], None]


class Trials:
    def __init__(self, parts: DeploymentParts, runtime: TrialsRuntime | None) -> None:
        self.parts = parts
        self.runtime = runtime
        self.shadows: dict[str, ShadowSettings] = {}
        self.canaries: dict[str, Canary] = {}

    async def start(self) -> None:
        if self.runtime is not None:
            await self.runtime.runner.start()
            self.runtime.watch.start()

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.watch.stop()
            await self.runtime.runner.stop()

    # -- the store ------------------------------------------------------------------------------------
    def load(self) -> None:
        """Shadows and canaries back from the store (daemon start); each canary is watched again."""
        for row in self.parts.store.query("SELECT * FROM deployment_trials"):
            settings = json.loads(row["settings"])
            if row["kind"] == "shadow":
                self.shadows[row["deployment"]] = ShadowSettings.model_validate(settings)
            else:
                state = CanaryState.model_validate(settings)
                self.canaries[row["deployment"]] = Canary(row["deployment"], state.candidate, state.weight,
                                                          state.salt, state.started_at)
                self._watch_canary(row["deployment"])

    def _save(self, deployment: str, kind: str, settings: dict[str, Any] | None, actor: str) -> None:
        with self.parts.store.transaction() as conn:
            conn.execute("DELETE FROM deployment_trials WHERE deployment = ? AND kind = ?", (deployment, kind))
            if settings is not None:
                conn.execute("INSERT INTO deployment_trials(deployment, kind, settings, actor, created_at)"
                             " VALUES(?, ?, ?, ?, ?)", (deployment, kind, json.dumps(settings), actor, time.time()))

    def _candidate(self, name: str, candidate: str) -> None:
        self.parts.rows.get(name)
        if candidate == name:
            raise DeploymentError("a deployment cannot be its own candidate", param="candidate")
        if not self.parts.rows.exists(candidate):
            raise DeploymentNotFound(f"candidate deployment {candidate!r} does not exist", param="candidate")

    # -- shadow ---------------------------------------------------------------------------------------
    async def set_shadow(self, name: str, settings: ShadowSettings, actor: str) -> ShadowSettings:
        self._candidate(name, settings.candidate)
        previous = self.shadows.get(name)
        if previous is not None and previous.candidate != settings.candidate and self.runtime is not None:
            await self.runtime.runner.forget(name, previous.candidate, delete=True)
        self._save(name, "shadow", settings.model_dump(), actor)
        self.shadows[name] = settings
        self.parts.store.audit(actor, "deployment.shadow", name, settings.model_dump())
        if (warning := self.contention(name, settings.candidate)) is not None:
            log.warning("shadow candidate will slow the live deployment", extra={
                "deployment": name, "candidate": settings.candidate, "detail": warning})
        return settings

    def contention(self, name: str, candidate: str) -> str | None:
        """Why a shadow `candidate` on the CPU would slow `name`'s live answers, if it would: two multi-threaded
        llama.cpp processes on the same cores stall each other at every thread barrier (docs/deploy.md: a live
        answer took 15.5 s beside a 2-thread shadow, 1.0 s beside a 1-thread one, 0.45 s alone). Not when the
        shadow gives way to live traffic (`shadow_gives_way`, the default)."""
        if self.runtime is not None and self.runtime.runner.gives_way:
            return None
        live, shadow = self.parts.reconciler.live(name), self.parts.reconciler.live(candidate)
        if live is None or shadow is None:
            return None
        shadow_spec = shadow.process.spec
        if live.process.spec.gpu_layers != 0 or not shadow_spec.threaded_on_cpu:
            return None
        return (f"{candidate} computes on the CPU with {shadow_spec.threads or 'all'} threads beside {name}: "
                f"redeploy it with params.threads = 1")

    async def clear_shadow(self, name: str, actor: str) -> None:
        self.parts.rows.get(name)
        settings = self.shadows.pop(name, None)
        if settings is None:
            raise DeploymentNotFound(f"deployment {name!r} has no shadow")
        self._save(name, "shadow", None, actor)
        if self.runtime is not None:
            await self.runtime.runner.forget(name, settings.candidate, delete=True)
        self.parts.store.audit(actor, "deployment.shadow.clear", name, {"candidate": settings.candidate})

    def gate(self, name: str, model_name: str, request: ShadowGateRequest, force: bool) -> ShadowGate:
        """The shadow gate of a switch of `name` to `model_name`: the shadow must be the deployment serving it.

        Raises:
            DeploymentConflict: no shadow serves that model. ShadowGateFailed (409): not passed, not forced.
        """
        shadow = self.shadows.get(name)
        if shadow is None or self.runtime is None or self.parts.get(shadow.candidate).model != model_name:
            raise DeploymentConflict(f"a shadow gate needs a shadow of {name!r} serving {model_name!r}; attach one "
                                     "first (PUT /api/v1/deployments/{name}/shadow)", param="shadow_gate")
        return check(self.runtime.runner.summary(name, shadow.candidate), request.min_agreement,
                     request.min_pairs, force=force)

    # -- canary ---------------------------------------------------------------------------------------
    def start_canary(self, name: str, body: CanaryRequest, actor: str) -> CanaryState:
        self._candidate(name, body.candidate)
        if name in self.canaries:
            raise DeploymentConflict(f"deployment {name!r} already has a canary; promote or abort it first")
        canary = Canary(name, body.candidate, body.weight)
        state = CanaryState(candidate=canary.candidate, weight=canary.weight, salt=canary.salt,
                            started_at=canary.started_at)
        self._save(name, "canary", state.model_dump(), actor)
        self.canaries[name] = canary
        self._watch_canary(name)
        self.parts.store.audit(actor, "deployment.canary", name, {"candidate": body.candidate,
                                                                  "weight": body.weight})
        return state

    def canary_of(self, name: str) -> Canary:
        canary = self.canaries.get(name)
        if canary is None:
            raise DeploymentNotFound(f"deployment {name!r} has no canary")
        return canary

    def end_canary(self, name: str, actor: str, action: str, detail: dict[str, Any] | None = None,
                   end_watch: bool = True) -> Canary:
        """Stop splitting (promoted, aborted, rolled back by the watch); audited with the watch's figures."""
        canary = self.canary_of(name)
        del self.canaries[name]
        self._save(name, "canary", None, actor)
        runtime = self.runtime
        verdict = (runtime.watch.end(name) if end_watch else runtime.watch.verdict(name)) if runtime else None
        self.parts.store.audit(actor, f"deployment.canary.{action}", name, {
            "candidate": canary.candidate, "weight": canary.weight, **(detail or {}),
            "figures": verdict.figures() if verdict is not None else None})
        return canary

    def _watch_canary(self, name: str) -> None:
        canary = self.canaries[name]
        if self.runtime is None:
            return
        live, candidate = self._arm(name), self._arm(canary.candidate)
        self.runtime.watch.watch_canary(name, live, candidate, self.settings(name))

    # -- the watch ------------------------------------------------------------------------------------
    def settings(self, name: str) -> WatchSettings:
        """The profile's watch defaults with the deployment's overrides (its policy's `watch`)."""
        policy = self.parts.active.get(name)
        defaults = self.runtime.defaults if self.runtime is not None else WatchSettings()
        return merge(defaults, policy.policy.watch if policy is not None else None)

    def _arm(self, deployment: str) -> ArmRef:
        served = self.parts.reconciler.live(deployment)
        model_id = served.plan.model.id if served is not None else self.parts.rows.get(deployment).model_id
        return ArmRef(arm_of(deployment, model_id), model_id)

    def after_switch(self, name: str, previous_model_id: str) -> None:
        """Watch the version a switch just put live against the previous one (its figures before the switch)."""
        if self.runtime is None:
            return
        previous = ArmRef(arm_of(name, previous_model_id), previous_model_id)
        self.runtime.watch.watch_switch(name, previous, self._arm(name), self.settings(name))

    def view(self, name: str) -> TrialsView:
        self.parts.rows.get(name)
        shadow, canary = self.shadows.get(name), self.canaries.get(name)
        runtime = self.runtime
        return TrialsView(
            deployment=name, shadow=shadow,
            shadow_summary=runtime.runner.summary(name, shadow.candidate) if shadow and runtime else None,
            canary=CanaryState(candidate=canary.candidate, weight=canary.weight, salt=canary.salt,
                               started_at=canary.started_at) if canary else None,
            watch=runtime.watch.verdict(name) if runtime else None,
            watching=runtime is not None and any(w.deployment == name for w in runtime.watch.watching()))

    def check_not_candidate(self, name: str) -> None:
        """A deployment another one tries as its shadow or canary cannot go while that trial runs."""
        for live, shadow in self.shadows.items():
            if shadow.candidate == name:
                raise DeploymentConflict(f"deployment {name!r} is the shadow of {live!r}; clear that shadow first")
        for live, canary in self.canaries.items():
            if canary.candidate == name:
                raise DeploymentConflict(f"deployment {name!r} is the canary of {live!r}; abort it first")

    async def forget(self, name: str) -> None:
        """A deleted deployment: its trials go (the rows with it, ON DELETE CASCADE)."""
        shadow = self.shadows.pop(name, None)
        self.canaries.pop(name, None)
        if self.runtime is not None:
            self.runtime.watch.end(name)
            self.runtime.outcomes.forget(name)
            if shadow is not None:
                await self.runtime.runner.forget(name, shadow.candidate, delete=True)

