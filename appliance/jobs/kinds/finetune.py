"""`finetune`: a LoRA (or full) training run of a registry base model on a dataset version.

Pre-flight resolves the job's settings once (`training.settings.resolve`: the profile's method ladder, the job's
overrides, the box's cores, the layout: one process, or one per GPU), checks memory with the planner and disk, and
stores the result in the job's params; a job that cannot fit is refused with the planner's numbers. The worker
(`jobs/handlers/finetune.py`) trains with the stored settings as they are. The preference kinds (`dpo`, `kto`,
`orpo`) share these params and this pre-flight (`TrainingParams`, `training_preflight`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import BadRequest, Conflict, DoesNotFit
from appliance.jobs.kinds.base import JobKind, form
from appliance.names import NAME_RULE, is_valid_name
from appliance.training.settings import OVERRIDES_JSON_SCHEMA

if TYPE_CHECKING:
    from appliance.core import Appliance
    from appliance.plan.ladder import Rung
    from appliance.plan.memory import TrainingStep
    from appliance.registry.registry import ModelRecord
    from appliance.training.settings import ResolvedTraining

# The overrides the TUI form shows, with their labels; the others keep the profile's values unless set.
FORM_OVERRIDES = {"max_steps": "max steps", "epochs": "epochs", "learning_rate": "learning rate",
                  "batch_size": "batch size", "lora_r": "LoRA rank", "max_seq_length": "max sequence length"}


class TrainingParams(BaseModel):
    """The `params` every training kind takes."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(..., description="Registry name of the base model (GGUF or HF)",
                            json_schema_extra=form(label="Base model", source="models", plan=True))
    dataset: str = Field(..., description="Dataset name (latest version) or name@version",
                         json_schema_extra=form(label="Dataset", source="datasets"))
    adapter_name: str | None = Field(None, description="Registry name of the adapter (default: <dataset>-<job>)",
                                     json_schema_extra=form(label="Adapter name",
                                                            placeholder="default: <dataset>-<job>"))
    golden: str | None = Field(None, description="Golden set JSONL under an import root (prompt, expected, scorer)",
                               json_schema_extra=form(label="Golden set", path=True, in_form=False))
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={**OVERRIDES_JSON_SCHEMA, **form(cli="--set", entries=FORM_OVERRIDES,
                                                           prefill="profile.training",
                                                           placeholder="profile default")},
        description="Hyperparameters and run knobs over the profile's (checked at submit: `settings.resolve`)")


class FinetuneParams(TrainingParams):
    """The `params` of a `finetune` job."""


def _disk_needed(appliance: Appliance, base: ModelRecord, lora_params: int) -> int:
    from appliance.plan.memory import MIB
    from appliance.training.base import HF_BASE_KIND

    # fp32 HF copy of a GGUF base (once), checkpoint (weights + 2 Adam moments) and the adapter itself.
    conversion = 0
    if base.format == "gguf" and not appliance.registry.children(base.id, HF_BASE_KIND):
        conversion = int((base.params or 0) * 4 * 2)  # the staged folder and its registry copy
    return conversion + lora_params * 4 * 4 + 64 * MIB


def _choose_training(appliance: Appliance, job: TrainingParams, base: ModelRecord, step: TrainingStep,
                     precompute: bool | None) -> tuple[ResolvedTraining, Rung, list[str]]:
    """The job's settings, resolved once: the first method of the profile's ladder that fits (in the layout the
    box gives it), with the job's overrides; and why each method tried was or was not chosen."""
    import psutil

    from appliance.plan.ladder import choose_method, ladder
    from appliance.plan.memory import MIB
    from appliance.registry.shapes import shape_of
    from appliance.training.settings import OverrideRefused, resolve, with_layout

    profile = appliance.selection.profile
    shape = shape_of(base)
    if shape.params > profile.training.max_base_params_b * 1e9:
        raise DoesNotFit(
            f"profile {profile.name} trains base models up to {profile.training.max_base_params_b:g}B parameters; "
            f"{base.name} has {shape.params / 1e9:.2f}B")
    cores = appliance.hardware.cpu.physical_cores
    try:
        rungs = [resolve(recipe, job.overrides, cores, profile.name) for recipe in ladder(profile.training)]
    except OverrideRefused as exc:
        where = "params.overrides" + (f".{exc.key}" if exc.key else "")
        raise BadRequest(f"{where}: {exc.message}", param=where) from exc
    hardware = appliance.hardware
    live = hardware.memory.model_copy(update={"available_mib": psutil.virtual_memory().available // MIB})
    choice = choose_method(shape, list(rungs), hardware.model_copy(update={"memory": live}), step=step,
                           precompute_ref=precompute, processes=job.overrides.get("processes"))
    if choice.chosen is None:
        raise DoesNotFit("refused: " + "; ".join(rung.line for rung in choice.tried))
    chosen = choice.chosen
    asked = job.overrides.get("processes")
    if asked and asked != chosen.parallel.processes:  # more processes than this box has GPUs
        raise BadRequest(f"params.overrides.processes: {chosen.recipe.method} trains with at most "
                         f"{chosen.parallel.processes} process(es) here (one per whole GPU)",
                         param="params.overrides.processes")
    settings = with_layout(rungs[choice.tried.index(chosen)], chosen.parallel.processes, chosen.parallel.layout,
                           cores)
    return settings, chosen, choice.reasons


def _check_adapter_name(appliance: Appliance, name: str | None) -> None:
    if name is None:
        return
    if not is_valid_name(name):
        raise BadRequest(f"invalid adapter name {name!r}: {NAME_RULE}", param="params.adapter_name")
    if any(m.name == name for m in appliance.registry.all()):
        raise Conflict(f"a model named {name!r} already exists", param="params.adapter_name")


def training_preflight(appliance: Appliance, job: TrainingParams, record_kinds: tuple[str, ...] = ("sft",),
                       step: TrainingStep = "sft", precompute: bool | None = False) -> dict[str, Any]:
    """The checks of every training kind: the base model, the dataset's record kind, the adapter name, the
    settings and layout that fit (memory), the disk. Returns the params to store, with `resolved`."""
    import shutil

    from appliance.jobs.kinds.checks import dataset_exists, model_named
    from appliance.plan.memory import GIB, lora_parameters
    from appliance.registry.shapes import shape_of

    base = model_named(appliance, job.base_model, "params.base_model")
    if base.format == "peft":
        raise BadRequest(f"{base.name!r} is an adapter; pass its base model (or merge it first with an export job "
                         "and train on the merged model)", param="params.base_model")
    dataset_exists(appliance, job.dataset, "params.dataset", kinds=record_kinds)
    _check_adapter_name(appliance, job.adapter_name)
    training, rung, ladder_reasons = _choose_training(appliance, job, base, step, precompute)
    need = _disk_needed(appliance, base, lora_parameters(shape_of(base), training.lora_r, training.target_modules))
    free = shutil.disk_usage(appliance.state_dir).free
    if need > free:
        raise DoesNotFit(f"refused: training needs {need / GIB:.2f} GiB of disk in {appliance.state_dir}, "
                         f"{free / GIB:.2f} GiB free")
    # The job's settings, resolved once: the worker trains with them as they are.
    resolved = {"training": training.model_dump(mode="json"), "profile": appliance.selection.name,
                "memory_plan": rung.estimate.message, "method_ladder": ladder_reasons, "disk_needed_bytes": need,
                "precompute_ref_log_probs": rung.precompute_ref}
    return {**job.model_dump(), "resolved": resolved}


def preflight(appliance: Appliance, job: FinetuneParams) -> dict[str, Any]:
    return training_preflight(appliance, job)


KIND = JobKind(
    name="finetune",
    summary="train a LoRA adapter of a base model on a dataset (checked against memory and disk first)",
    params=FinetuneParams,
    handler="appliance.jobs.handlers.finetune:run_finetune",
    preflight=preflight,
    trains=True,
    note="Profile defaults are filled in.",
)
