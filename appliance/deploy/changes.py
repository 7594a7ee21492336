"""What an operator can ask of a running deployment — switch to a new version, roll back, attach or detach a
LoRA adapter — with the rules that decide each and the audit trail (every change, and every blocked or forced
one). The control routes only parse the request and call these."""

from __future__ import annotations

import time
from pathlib import Path

from appliance.deploy.bluegreen import Change, EvalRegression, Switcher
from appliance.deploy.errors import DeploymentConflict, DeploymentError, DeploymentNotFound
from appliance.deploy.history import AttachAdapter, AttachedAdapter
from appliance.deploy.manager import NAME, DeploymentManager
from appliance.deploy.models import Deployment, RollbackRequest, SwitchRequest, SwitchResult
from appliance.evaluation.golden import GoldenItem, golden_set
from appliance.registry.registry import ModelRecord, Registry
from appliance.state.store import StateStore

ADAPTER_KINDS = {"adapter-gguf": "exported GGUF LoRA adapters (kind adapter-gguf, from an export job)",
                 "adapter": "PEFT LoRA adapters (kind adapter, from a fine-tune job) of the model it serves"}


class DeploymentChanges:
    def __init__(self, manager: DeploymentManager, registry: Registry, store: StateStore,
                 import_roots: list[Path]) -> None:
        self.manager = manager
        self.registry = registry
        self.store = store
        self.import_roots = import_roots
        self.switcher = Switcher(manager)

    def golden_for(self, candidate: ModelRecord, requested: str | None) -> tuple[list[GoldenItem], str]:
        """The golden set asked for; else the one the candidate's adapter was fine-tuned with; else the built-in
        general set. The built-in set is always added (its forgotten prompts are reported)."""
        path = requested
        if path is None:
            recorded = self.registry.inherited(candidate.id, "golden_set")
            path = str(recorded) if recorded else None
        items, source = golden_set(path, self.import_roots)
        return items, str(source) if source else "built-in general set"

    async def switch(self, name: str, body: SwitchRequest, actor: str) -> SwitchResult:
        """Another model version under this name, blue/green, if it passes health, a smoke prompt and the eval
        gate against the version serving now. `force` overrides a regression and is audited."""
        candidate = self.registry.get(body.model)
        items, label = self.golden_for(candidate, body.golden)
        change = Change(name, candidate.name, "switch", actor, items=items, golden_label=label, force=body.force,
                        reason=body.reason, drain_timeout_s=body.drain_timeout_s)
        try:
            result = await self.switcher.change(change)
        except EvalRegression as exc:
            self.store.audit(actor, "deployment.switch.blocked", name, exc.gate.figures())
            raise
        self._audit(actor, "deployment.switch.forced" if result.forced else "deployment.switch", name, result)
        return result

    async def rollback(self, name: str, body: RollbackRequest, actor: str) -> SwitchResult:
        """Back to the version that served before (or `to`), blue/green; no eval gate: this is the way out."""
        current = self.manager.get(name)
        if body.to is not None:
            target = self.registry.get(body.to).name
        else:
            entry = self.manager.history.previous_model(name, current.model_id)
            if entry is None:
                raise DeploymentConflict(f"deployment {name!r} has no earlier version to roll back to")
            target = self.registry.get(entry.model_id).name
        result = await self.switcher.change(Change(name, target, "rollback", actor, reason=body.reason,
                                                   drain_timeout_s=body.drain_timeout_s))
        self._audit(actor, "deployment.rollback", name, result)
        return result

    async def attach(self, name: str, body: AttachAdapter, actor: str) -> SwitchResult:
        """Serve a GGUF LoRA adapter over this deployment under its own model name: the backend restarts
        blue/green with the new set; if the adapter does not load, the previous set keeps serving."""
        current = self.manager.get(name)
        adapter = self.registry.get(body.adapter)
        self._check_adapter(current, adapter, body.scale)
        served = body.name or adapter.name
        if not NAME.match(served):
            raise DeploymentError(f"invalid served name {served!r}", param="name")
        if served in self.manager.served_names():
            raise DeploymentConflict(f"the model name {served!r} is already served; pick another with name")
        attached = [*self.manager.adapters.of(current.name),
                    AttachedAdapter(name=served, deployment=name, model_id=adapter.id, model=adapter.name,
                                    scale=body.scale, position=0, attached_at=time.time())]
        return await self._apply(name, current.model, attached, f"attach {served}", "deployment.adapter.attach",
                                 actor)

    async def detach(self, name: str, served: str, actor: str) -> SwitchResult:
        current = self.manager.get(name)
        attached = self.manager.adapters.of(name)
        if served not in {a.name for a in attached}:
            raise DeploymentNotFound(f"no adapter {served!r} on deployment {name!r}")
        remaining = [a for a in attached if a.name != served]
        return await self._apply(name, current.model, remaining, f"detach {served}", "deployment.adapter.detach",
                                 actor)

    def _check_adapter(self, deployment: Deployment, adapter: ModelRecord, scale: float) -> None:
        """The adapter is of the kind the deployment's backend loads, and made for the model it serves."""
        capabilities = self.manager.planner.backends[deployment.backend].capabilities
        if adapter.kind != capabilities.adapter_kind:
            wanted = ADAPTER_KINDS[capabilities.adapter_kind]
            raise DeploymentError(f"{adapter.name!r} is a {adapter.kind} model; a {deployment.backend} deployment "
                                  f"serves {wanted}", param="adapter")
        if capabilities.runtime_lora and adapter.parent_id != deployment.model_id:
            parent = self.registry.get(adapter.parent_id).name if adapter.parent_id else "an unknown base"
            raise DeploymentError(f"{adapter.name!r} was trained on {parent}; deployment {deployment.name!r} serves "
                                  f"{deployment.model}", param="adapter")
        if capabilities.runtime_lora and scale != 1.0:
            raise DeploymentError("vLLM applies LoRA adapters at scale 1.0 only", param="scale")

    async def _apply(self, name: str, model: str, attached: list[AttachedAdapter], what: str, action: str,
                     actor: str) -> SwitchResult:
        deployment = self.manager.get(name)
        if self.manager.planner.backends[deployment.backend].capabilities.runtime_lora:
            result = await self._apply_live(deployment, attached, what, actor)
        else:
            result = await self.switcher.change(Change(name, model, "adapters", actor, attached=attached, reason=what))
        self.store.audit(actor, action, name, {"adapters": [a.name for a in attached], "change": what})
        return result

    async def _apply_live(self, deployment: Deployment, attached: list[AttachedAdapter], what: str,
                          actor: str) -> SwitchResult:
        """The backend loads and unloads adapters while it serves: no new process, no drain."""
        with self.manager.changing(deployment.name):
            await self.manager.reconciler.change_adapters(deployment.name, attached)
        self.manager.history.record(deployment.name, deployment.model_id, deployment.model, "adapters", actor,
                                    {"reason": what, "adapters": [a.name for a in attached], "blue_green": False,
                                     "runtime": True})
        return SwitchResult(deployment=self.manager.get(deployment.name), action="adapters",
                            previous_model=deployment.model, model=deployment.model, blue_green=False)

    def _audit(self, actor: str, action: str, name: str, result: SwitchResult) -> None:
        self.store.audit(actor, action, name, {"from": result.previous_model, "to": result.model,
                                               "gate": result.gate, "forced": result.forced,
                                               "blue_green": result.blue_green})
