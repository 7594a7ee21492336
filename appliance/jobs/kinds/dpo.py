"""`dpo`: Direct Preference Optimization of a base model on a preference dataset (prompt, chosen, rejected) —
imported, or exported from reviewed captures. LoRA, with the base (adapter disabled) as the reference model.

Pre-flight is the fine-tune's (`finetune.training_preflight`) with a preference step in the planner: chosen and
rejected through the policy, and the frozen reference forward unless its log-probs are precomputed (which the
planner chooses when the step would not fit otherwise). The handler is `jobs/handlers/preference.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from appliance.jobs.kinds.base import JobKind, form
from appliance.jobs.kinds.finetune import TrainingParams

if TYPE_CHECKING:
    from appliance.core import Appliance


class PreferenceParams(TrainingParams):
    """The `params` of the preference kinds (dpo, orpo): a preference dataset and the objective's strength."""

    dataset: str = Field(..., description="A preference dataset (prompt, chosen, rejected): name or name@version",
                         json_schema_extra=form(label="Preference dataset", source="datasets"))
    beta: float = Field(0.1, gt=0.0, le=10.0, description="How far from the reference the policy may move "
                                                          "(higher: closer)",
                        json_schema_extra=form(label="Beta"))


class DpoParams(PreferenceParams):
    """The `params` of a `dpo` job."""

    precompute_ref_log_probs: bool | None = Field(
        None, description="Reference log-probs computed once before training (default: only when the planner "
                          "says the step does not fit otherwise)",
        json_schema_extra=form(label="Precompute reference", in_form=False))


def preflight(appliance: Appliance, job: DpoParams) -> dict[str, Any]:
    from appliance.jobs.kinds.finetune import training_preflight

    return training_preflight(appliance, job, ("preference",), "preference", job.precompute_ref_log_probs)


KIND = JobKind(
    name="dpo",
    summary="preference-tune a base model on chosen/rejected pairs (DPO, LoRA; checked against memory first)",
    params=DpoParams,
    handler="appliance.jobs.handlers.preference:run_dpo",
    preflight=preflight,
    trains=True,
    note="A preference dataset: prompt, chosen, rejected. Profile defaults are filled in.",
)
