"""Deployment data that crosses the API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.capture.models import CaptureSettings
from appliance.guardrails.policy import GuardrailPolicy
from appliance.trials.models import ShadowSettings, ShadowSummary
from appliance.trials.verdict import Verdict


class DeploymentParams(BaseModel):
    """Per-deployment overrides; anything unset comes from the hardware profile."""

    model_config = ConfigDict(extra="forbid")

    context_length: int | None = Field(None, ge=128, le=1_048_576)
    parallel_slots: int | None = Field(None, ge=1, le=256)
    threads: int | None = Field(None, ge=0, le=1024)
    gpu_layers: int | None = Field(None, ge=-1)
    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0)
    max_model_len: int | None = Field(None, ge=128)
    max_loras: int | None = Field(None, ge=0)
    embeddings: bool | None = Field(None, description="Serve /v1/embeddings with this model (llama.cpp)")
    extra_args: list[str] = Field(default_factory=list, description="Appended last to the backend command line")


class CreateDeployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="Registry model name")
    name: str | None = Field(None, description="Served model name (default: the model's name)")
    backend: str | None = Field(None, description="llamacpp or vllm (default: from the profile and format)")
    params: DeploymentParams = Field(default_factory=DeploymentParams)


class DeploymentRow(BaseModel):
    """A deployment as the store holds it: the operator's intent and the last state the supervisor reported."""

    name: str
    model: str
    model_id: str
    backend: str
    backend_reason: str = Field("", description="Why this backend serves it: the request, the profile or the format")
    params: DeploymentParams
    desired_state: str
    state: str
    state_message: str
    port: int | None
    pid: int | None
    restarts: int
    created_at: float
    updated_at: float

    @property
    def wants_running(self) -> bool:
        return self.desired_state == "running"


class Deployment(DeploymentRow):
    """A deployment as the API shows it: the row plus what only the running daemon knows."""

    injected_args: dict[str, str] = Field(default_factory=dict)
    adapters: list[str] = Field(default_factory=list, description="Served names of the attached LoRA adapters")
    switching: bool = Field(False, description="A blue/green switch of this deployment is under way")
    policy_version: int | None = Field(None, description="The version of its policy in force (none: no policy)")


class ShadowGateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_agreement: float = Field(0.8, ge=0.0, le=1.0, description="Mean shadow agreement the candidate needs")
    min_pairs: int = Field(100, ge=1, description="Shadow pairs it needs at least")


class SwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="Registry model to serve under the deployment's name")
    golden: str | None = Field(None, description="Golden set JSONL under an import root (default: the one the "
                                                 "candidate was fine-tuned with, else the built-in general set)")
    force: bool = Field(False, description="Switch even if the eval gate finds a regression (audited)")
    reason: str | None = Field(None, max_length=500)
    drain_timeout_s: float = Field(60.0, ge=0.0, le=3600.0)
    shadow_gate: ShadowGateRequest | None = Field(
        None, description="Also require the shadow serving this model to agree with the live one (force overrides)")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, description="Registry model to return to (default: the previous version)")
    reason: str | None = Field(None, max_length=500)
    drain_timeout_s: float = Field(60.0, ge=0.0, le=3600.0)


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


class HistoryEntry(BaseModel):
    id: int
    deployment: str
    model_id: str
    model_name: str
    action: str = Field(..., description="create, switch, rollback or adapters")
    actor: str
    detail: dict[str, Any]
    at: float


class AttachAdapter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(..., description="Registry model of kind adapter-gguf (an exported GGUF LoRA)")
    name: str | None = Field(None, description="Served model name (default: the adapter's registry name)")
    scale: float = Field(1.0, gt=0.0, le=4.0)


class AttachedAdapter(BaseModel):
    name: str = Field(..., description="The model name apps send to use this adapter")
    deployment: str
    model_id: str
    model: str
    scale: float
    position: int = Field(..., description="The adapter's id in the backend (its order on the command line)")
    attached_at: float


class DeploymentPolicy(BaseModel):
    """What a deployment applies to its traffic: guardrails on requests and answers, and capture of answers."""

    model_config = ConfigDict(extra="forbid")

    guardrails: GuardrailPolicy = Field(default_factory=GuardrailPolicy,
                                        description="Limits, deny rules, PII redaction and a guard model")
    capture: CaptureSettings = Field(default_factory=CaptureSettings, description="Capture of answers (opt-in)")
    watch: dict[str, Any] = Field(default_factory=dict, description="Live-watch settings over the profile's "
                                  "defaults (appliance.trials.WatchSettings: window_s, thresholds, auto_rollback)")


class SetPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: DeploymentPolicy
    reason: str | None = Field(None, max_length=500, description="Why (kept with the version and in the audit log)")


class PolicyVersion(BaseModel):
    deployment: str
    version: int
    policy: DeploymentPolicy
    actor: str
    reason: str = ""
    created_at: float


class CanaryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(..., description="The deployment that serves the candidate version")
    weight: float = Field(0.05, gt=0.0, lt=1.0, description="Share of the keys sent to it (sticky per key)")


class CanaryState(BaseModel):
    candidate: str
    weight: float
    salt: str
    started_at: float


class TrialsView(BaseModel):
    """A deployment's trials: its shadow and what the shadow says, its canary, the live watch's latest verdict."""

    deployment: str
    shadow: ShadowSettings | None = None
    shadow_summary: ShadowSummary | None = None
    canary: CanaryState | None = None
    watch: Verdict | None = Field(None, description="Latest verdict of the live watch (canary, or after a switch)")
    watching: bool = False
