"""`distill`: a teacher (any chat deployment, or an adapter attached to one, by its served name) answers a prompt
set through the gateway, and the answers become a new SFT dataset version for a student's fine-tune.

Prompts: a dataset version's (each record's conversation up to its last user turn; a preference or KTO record's
prompt) and/or captured requests (the review queue's filters). Sampling (`temperature`, `top_p`, `max_tokens`),
`n` answers per prompt and a `seed` (each answer's own seed derives from it and the prompt) are stated in the
params; requests run `concurrency` at a time (default: the teacher's parallel slots). Resumable: answers are
appended durably to the job's folder and a rerun asks only what is not answered yet. The answers go through the
dataset pipeline (validation, exact and near dedup, seeded split) as a new version of `output_dataset`, each
record with its lineage in `metadata` (teacher, prompt source, sampling). Handler: `jobs/handlers/distill.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from appliance.errors import BadRequest
from appliance.jobs.kinds.base import JobKind, form
from appliance.names import NAME_RULE, is_valid_name
from appliance.validation import where_and_why

if TYPE_CHECKING:
    from appliance.core import Appliance

MAX_CONCURRENCY = 16  # the gateway's default per-key concurrency
CAPTURE_FILTERS = {"deployment": "captured on", "rated": "rated (up/down)", "state": "review state",
                   "since": "since (Unix time)", "until": "until (Unix time)", "limit": "at most"}
CAPTURE_FILTER_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "deployment": {"type": "string", "description": "Captured on this deployment"},
    "key_name": {"type": "string", "description": "Sent with this API key"},
    "since": {"type": "number", "description": "Captured at or after (Unix time)"},
    "until": {"type": "number", "description": "Captured before (Unix time)"},
    "rated": {"type": "string", "enum": ["up", "down"], "description": "Thumbs label of the feedback"},
    "corrected": {"type": "boolean", "description": "With (true) or without (false) a correction"},
    "state": {"type": "string", "description": "Review state: pending, accepted, edited or rejected"},
    "limit": {"type": "integer", "description": "The newest this many (at most 1000; default 1000)"},
}}


class DistillParams(BaseModel):
    """The `params` of a `distill` job."""

    model_config = ConfigDict(extra="forbid")

    teacher: str = Field(..., min_length=1, max_length=64,
                         description="Served name of the teacher: a chat deployment or an attached adapter",
                         json_schema_extra=form(label="Teacher (served name)",
                                                placeholder="a deployment or an attached adapter"))
    output_dataset: str = Field(..., description="The dataset the answers become a new version of",
                                json_schema_extra=form(label="Output dataset"))
    dataset: str | None = Field(None, description="Prompts from this dataset (name or name@version)",
                                json_schema_extra=form(label="Prompts from dataset", source="datasets"))
    split: Literal["train", "eval", "both"] = Field("both", description="Which split of the dataset gives prompts")
    captured: bool = Field(False, description="Prompts from captured requests too (filtered by capture_filter)",
                           json_schema_extra=form(label="Prompts from captured requests"))
    capture_filter: dict[str, Any] = Field(
        default_factory=dict, description="Which captured requests: the review queue's filters",
        json_schema_extra={**CAPTURE_FILTER_SCHEMA, **form(entries=CAPTURE_FILTERS, placeholder="any")})
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="Sampling temperature (0: greedy)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus sampling")
    max_tokens: int = Field(256, ge=1, le=8192, description="Longest answer, in tokens")
    n: int = Field(1, ge=1, le=16, description="Answers per prompt (each with its own seed)")
    seed: int = Field(0, ge=0, description="Seeds the answers and the dataset's split")
    keep_truncated: bool = Field(False, description="Keep answers cut at max_tokens (left out by default: they "
                                 "would teach the student to stop mid-sentence)")
    concurrency: int | None = Field(None, ge=1, le=MAX_CONCURRENCY,
                                    description="Requests at once (default and most: the teacher's parallel slots)")
    base_model: str | None = Field(None, description="Registry model whose chat template counts the records' "
                                   "tokens (the student's)", json_schema_extra=form(label="Student base model",
                                                                                    source="models"))
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the answers held out for evaluation")


def _capture_filter(job: DistillParams) -> dict[str, Any]:
    from appliance.capture.models import CaptureFilter

    try:
        return CaptureFilter.model_validate({"limit": 1000, **job.capture_filter}).model_dump(exclude_none=True)
    except ValidationError as exc:
        where, why = where_and_why(exc)
        raise BadRequest(f"params.capture_filter.{where}: {why}", param="params.capture_filter") from exc


def _prompt_source(appliance: Appliance, job: DistillParams) -> dict[str, Any]:
    from appliance.datasets.errors import DatasetError
    from appliance.errors import NotFound

    if not job.dataset and not job.captured:
        raise BadRequest("no prompts: name a dataset, or set captured to take captured requests",
                         param="params.dataset")
    resolved: dict[str, Any] = {}
    if job.dataset:
        try:
            record = appliance.datasets.get_ref(job.dataset)
        except DatasetError as exc:
            raise NotFound(str(exc), param="params.dataset") from exc
        # Pinned: a resumed job asks the same prompts even if the dataset has a newer version by then.
        resolved["dataset"] = {"name": record.name, "version": record.version, "id": record.id,
                               "kind": record.report.kind}
    if job.captured:
        resolved["capture_filter"] = _capture_filter(job)
    return resolved


def preflight(appliance: Appliance, job: DistillParams) -> dict[str, Any]:
    from appliance.jobs.kinds.checks import model_named
    from appliance.jobs.served import served

    if not is_valid_name(job.output_dataset):
        raise BadRequest(f"invalid dataset name {job.output_dataset!r}: {NAME_RULE}", param="params.output_dataset")
    teacher = served(appliance, job.teacher, "params.teacher", embeddings=False)
    if job.concurrency is not None and job.concurrency > teacher.parallel_slots:
        raise BadRequest(f"concurrency {job.concurrency} is more than the teacher's {teacher.parallel_slots} "
                         "parallel slots (the rest would only queue)", param="params.concurrency")
    if job.base_model:
        model_named(appliance, job.base_model, "params.base_model")
    resolved = {"teacher": teacher.lineage(), "concurrency": job.concurrency or min(teacher.parallel_slots,
                                                                                     MAX_CONCURRENCY),
                **_prompt_source(appliance, job)}
    return {**job.model_dump(), "resolved": resolved}


KIND = JobKind(
    name="distill",
    summary="a teacher deployment answers a prompt set; the answers become a new SFT dataset version",
    params=DistillParams,
    handler="appliance.jobs.handlers.distill:run_distill",
    preflight=preflight,
    note="Answers go through the gateway with the job's own key; a killed job resumes where it stopped.",
)
