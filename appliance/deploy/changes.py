"""The rules of a change of what a running deployment serves: which golden set judges a new version, which
version a rollback returns to, and whether an adapter may be attached. The service (`deploy.service`) applies
them, runs the change and writes its history and audit."""

from __future__ import annotations

from pathlib import Path

from appliance.backends.base import Backend
from appliance.deploy.errors import DeploymentConflict, DeploymentError
from appliance.deploy.models import Deployment
from appliance.evaluation.golden import GoldenItem, golden_set
from appliance.names import NAME
from appliance.registry.registry import ModelRecord, Registry

ADAPTER_KINDS = {"adapter-gguf": "exported GGUF LoRA adapters (kind adapter-gguf, from an export job)",
                 "adapter": "PEFT LoRA adapters (kind adapter, from a fine-tune job) of the model it serves"}


def golden_for(registry: Registry, import_roots: list[Path], candidate: ModelRecord,
               requested: str | None) -> tuple[list[GoldenItem], str]:
    """The golden set asked for; else the one the candidate's adapter was fine-tuned with; else the built-in
    general set. The built-in set is always added (its forgotten prompts are reported)."""
    path = requested
    if path is None:
        recorded = registry.inherited(candidate.id, "golden_set")
        path = str(recorded) if recorded else None
    items, source = golden_set(path, import_roots)
    return items, str(source) if source else "built-in general set"


def check_served_name(served: str, taken: set[str]) -> None:
    if not NAME.match(served):
        raise DeploymentError(f"invalid served name {served!r}", param="name")
    if served in taken:
        raise DeploymentConflict(f"the model name {served!r} is already served; pick another with name")


def check_adapter(registry: Registry, backend: Backend, deployment: Deployment, adapter: ModelRecord,
                  scale: float) -> None:
    """The adapter is of the kind the deployment's backend loads, made for the model it serves when the backend
    needs that, at a scale the backend can apply."""
    capabilities = backend.capabilities
    if adapter.kind != capabilities.adapter_kind:
        wanted = ADAPTER_KINDS[capabilities.adapter_kind]
        raise DeploymentError(f"{adapter.name!r} is a {adapter.kind} model; a {deployment.backend} deployment "
                              f"serves {wanted}", param="adapter")
    if capabilities.adapter_needs_parent and adapter.parent_id != deployment.model_id:
        parent = registry.get(adapter.parent_id).name if adapter.parent_id else "an unknown base"
        raise DeploymentError(f"{adapter.name!r} was trained on {parent}; deployment {deployment.name!r} serves "
                              f"{deployment.model}", param="adapter")
    if capabilities.adapter_scale_fixed and scale != 1.0:
        raise DeploymentError(f"{backend.name} applies LoRA adapters at scale 1.0 only", param="scale")
