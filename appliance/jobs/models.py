"""Job data that crosses the API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator
from pydantic_core import PydanticCustomError

from appliance.jobs.kinds import KINDS

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]
FINAL_STATES = ("succeeded", "failed", "cancelled")


class Progress(BaseModel):
    """The latest progress a worker reported. Training fills step/total/loss/...; other jobs a phase."""

    model_config = ConfigDict(extra="allow")

    phase: str = ""
    step: int | None = None
    total: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    message: str = ""


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The registered kinds (appliance.jobs.kinds); the enum in the schema tells clients which.
    type: str = Field(..., json_schema_extra={"enum": list[JsonValue](KINDS.names())})
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _registered(cls, value: str) -> str:
        if KINDS.find(value) is None:
            raise PydanticCustomError("unknown_job_type", KINDS.unknown(value))
        return value


class Job(BaseModel):
    id: str
    type: str
    state: JobState
    params: dict[str, Any]
    progress: Progress
    result: dict[str, Any]
    error: str
    attempts: int
    interruptions: int = 0  # daemon crashes while it ran (MAX_INTERRUPTIONS of them fail it)
    cancel_requested: bool
    pid: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
