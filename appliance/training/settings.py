"""Fine-tune settings, declared once: the hyperparameters (a profile's `[training]` table gives them, declared
with it in `appliance.profiles.recipe`; a job may override them), the run knobs of one job, and the resolved
settings a job trains with.

Pre-flight resolves a job's settings once (`resolve`): profile + overrides + the box's cores, validated in one
pass against one set of bounds. The worker and the training core take the stored result as it is. Pure
pydantic: the daemon imports it without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, ValidationError

from appliance.profiles.recipe import Frozen, Hyperparameters, TrainingRecipe
from appliance.validation import where_and_why


class RunKnobs(Frozen):
    """How long one job trains and how it checkpoints; not a profile's business."""

    epochs: float = Field(1.0, gt=0.0, le=100.0, description="Passes over the train split")
    max_steps: int | None = Field(None, ge=1, le=1_000_000, description="Stop after this many steps (wins over epochs)")
    warmup_ratio: float = Field(0.05, ge=0.0, le=0.5, description="Share of the steps with a linear warmup")
    seed: int = Field(0, ge=0, description="Seeds the data order and torch")
    checkpoint_every: int = Field(10, ge=1, le=100_000, description="Steps between checkpoints")
    processes: int | None = Field(None, ge=1, le=64,
                                  description="Data-parallel processes (default: one per GPU; one on a CPU)")


class ResolvedTraining(TrainingRecipe, RunKnobs):
    """Everything one fine-tune job trains with, resolved at submit and stored with the job."""

    threads: int = Field(..., ge=1, description="torch threads of each process: the box's physical cores "
                                                "shared by the processes on a CPU")
    processes: int = Field(1, ge=1, le=64, description="Training processes (data parallel when more than one)")
    layout: Literal["single", "ddp", "fsdp"] = Field(
        "single", description="single process; DDP (a whole model per process); FSDP (sharded full fine-tune)")

    @property
    def sequences_per_step(self) -> int:
        return self.batch_size * self.gradient_accumulation


OVERRIDABLE = (*Hyperparameters.model_fields, *RunKnobs.model_fields)
# The JSON schema of a job's `overrides` object, for the API docs: the same fields, bounds and descriptions.
OVERRIDES_JSON_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False,
    "properties": {k: v for k, v in ResolvedTraining.model_json_schema()["properties"].items() if k in OVERRIDABLE},
}


class OverrideRefused(ValueError):
    """A job's override is unknown, not overridable or out of bounds; `key` names it (None: the whole set)."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key, self.message = key, message


def _check_keys(overrides: Mapping[str, Any], profile_name: str) -> None:
    for key in overrides:
        if key in OVERRIDABLE:
            continue
        if key in ResolvedTraining.model_fields or key in ("max_base_params_b", "serving_during_training",
                                                           "fallback_methods"):
            raise OverrideRefused(key, f"set by the hardware profile ({profile_name}), not overridable per job")
        raise OverrideRefused(key, f"unknown setting; overridable: {', '.join(sorted(OVERRIDABLE))}")


def resolve(recipe: TrainingRecipe, overrides: Mapping[str, Any], threads: int,
            profile_name: str = "in use") -> ResolvedTraining:
    """The settings a job trains with: the profile's recipe, the job's overrides on top, the run knob defaults
    (one process; `with_layout` sets the planner's layout).

    Raises:
        OverrideRefused: an override key is unknown or fixed by the profile, or a value is out of bounds.
    """
    _check_keys(overrides, profile_name)
    fields = {k: v for k, v in recipe.model_dump().items() if k in TrainingRecipe.model_fields}
    try:
        return ResolvedTraining.model_validate({**fields, **overrides, "processes": overrides.get("processes") or 1,
                                                "threads": threads})
    except ValidationError as exc:
        where, why = where_and_why(exc)
        raise OverrideRefused(where.split(".")[0] or None, why) from exc


def with_layout(settings: ResolvedTraining, processes: int, layout: Literal["single", "ddp", "fsdp"],
                cores: int) -> ResolvedTraining:
    """`settings` trained by `processes` processes in `layout`; on a CPU they share the cores."""
    threads = max(1, cores // processes) if settings.method == "lora-cpu" else settings.threads
    return settings.model_copy(update={"processes": processes, "layout": layout, "threads": threads})
