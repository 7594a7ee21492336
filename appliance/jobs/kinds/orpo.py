"""`orpo`: Odds Ratio Preference Optimization on a preference dataset (prompt, chosen, rejected): the SFT loss on
the chosen answer plus an odds-ratio term against the rejected one, with no reference model (TRL 1.16 has it in
`trl.experimental.orpo`). Pre-flight: the fine-tune's with an ORPO step in the planner. Handler:
`jobs/handlers/preference.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from appliance.jobs.kinds.base import JobKind
from appliance.jobs.kinds.dpo import PreferenceParams

if TYPE_CHECKING:
    from appliance.core import Appliance


class OrpoParams(PreferenceParams):
    """The `params` of an `orpo` job (beta: the weight of the odds-ratio term)."""


def preflight(appliance: Appliance, job: OrpoParams) -> dict[str, Any]:
    from appliance.jobs.kinds.finetune import training_preflight

    return training_preflight(appliance, job, ("preference",), "orpo", False)


KIND = JobKind(
    name="orpo",
    summary="preference-tune a base model without a reference model (ORPO, LoRA; checked against memory first)",
    params=OrpoParams,
    handler="appliance.jobs.handlers.preference:run_orpo",
    preflight=preflight,
    trains=True,
    note="A preference dataset: prompt, chosen, rejected. Profile defaults are filled in.",
)
