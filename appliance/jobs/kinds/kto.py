"""`kto`: Kahneman-Tversky Optimization of a base model on unpaired feedback (prompt, completion, label: a
desirable answer or not) — imported, or exported from reviewed captures. LoRA, with the base (adapter disabled) as
the reference model. Pre-flight: the fine-tune's with a KTO step in the planner. Handler:
`jobs/handlers/preference.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from appliance.jobs.kinds.base import JobKind, form
from appliance.jobs.kinds.finetune import TrainingParams

if TYPE_CHECKING:
    from appliance.core import Appliance


class KtoParams(TrainingParams):
    """The `params` of a `kto` job."""

    dataset: str = Field(..., description="A kto dataset (prompt, completion, label): name or name@version",
                         json_schema_extra=form(label="KTO dataset", source="datasets"))
    beta: float = Field(0.1, gt=0.0, le=10.0, description="How far from the reference the policy may move "
                                                          "(higher: closer)",
                        json_schema_extra=form(label="Beta"))
    precompute_ref_log_probs: bool | None = Field(
        None, description="Reference log-probs computed once before training (default: only when the planner "
                          "says the step does not fit otherwise)",
        json_schema_extra=form(label="Precompute reference", in_form=False))


def preflight(appliance: Appliance, job: KtoParams) -> dict[str, Any]:
    from appliance.jobs.kinds.finetune import training_preflight

    return training_preflight(appliance, job, ("kto",), "kto", job.precompute_ref_log_probs)


KIND = JobKind(
    name="kto",
    summary="tune a base model on answers marked good or bad (KTO, LoRA; checked against memory first)",
    params=KtoParams,
    handler="appliance.jobs.handlers.preference:run_kto",
    preflight=preflight,
    trains=True,
    note="A kto dataset: prompt, completion, label. Profile defaults are filled in.",
)
