"""Deployment data that crosses the API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


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
    extra_args: list[str] = Field(default_factory=list, description="Appended last to the backend command line")


class CreateDeployment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="Registry model name")
    name: str | None = Field(None, description="Served model name (default: the model's name)")
    backend: str | None = Field(None, description="llamacpp or vllm (default: from the profile and format)")
    params: DeploymentParams = Field(default_factory=DeploymentParams)


class Deployment(BaseModel):
    name: str
    model: str
    model_id: str
    backend: str
    params: DeploymentParams
    desired_state: str
    state: str
    state_message: str
    port: int | None
    pid: int | None
    restarts: int
    injected_args: dict[str, str] = Field(default_factory=dict)
    adapters: list[str] = Field(default_factory=list, description="Served names of the attached LoRA adapters")
    switching: bool = Field(False, description="A blue/green switch of this deployment is under way")
    created_at: float
    updated_at: float
