"""`eval`: a registry model's (or adapter's) answers to a golden set, and its held-out loss on a dataset's eval
split, stored in the model's metadata (`jobs/handlers/evaluate.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.jobs.kinds.base import JobKind, form

if TYPE_CHECKING:
    from appliance.core import Appliance


class EvalParams(BaseModel):
    """The `params` of an `eval` job."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="Registry name: a base model (GGUF or HF) or a PEFT adapter",
                       json_schema_extra=form(source="models"))
    golden: str | None = Field(None, description="Golden set JSONL under an import root; default: built-in set",
                               json_schema_extra=form(label="Golden set", path=True))
    dataset: str | None = Field(None, description="Dataset whose eval split gives the held-out loss",
                                json_schema_extra=form(source="datasets"))
    max_new_tokens: int = Field(48, ge=1, le=1024, description="Greedy tokens per golden prompt")


def preflight(appliance: Appliance, job: EvalParams) -> dict[str, Any]:
    from appliance.jobs.kinds.checks import dataset_exists, model_named

    model_named(appliance, job.model, "params.model")
    if job.dataset:
        dataset_exists(appliance, job.dataset, "params.dataset")
    return job.model_dump()


KIND = JobKind(
    name="eval",
    summary="score a model or adapter on a golden set (and its held-out loss on a dataset's eval split)",
    params=EvalParams,
    handler="appliance.jobs.handlers.evaluate:run_eval",
    preflight=preflight,
)
