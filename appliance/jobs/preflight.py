"""Checks a job before it is queued: parameters, referenced models and datasets, and (for training) whether
memory and disk suffice. A refusal carries the planner's numbers, so the operator sees what to change."""

from __future__ import annotations

import shutil
from typing import Any, Literal, TypeVar

import psutil
from pydantic import BaseModel, ValidationError

from appliance.core import Appliance
from appliance.datasets.errors import DatasetError
from appliance.errors import ApplianceError
from appliance.plan.ladder import choose_method, ladder
from appliance.plan.memory import GIB, MIB, MemoryEstimate, lora_parameters
from appliance.registry.registry import NAME, ModelRecord, RegistryError
from appliance.registry.shapes import shape_of
from appliance.training.base import HF_BASE_KIND
from appliance.training.params import EvalParams, ExportParams, FinetuneParams
from appliance.training.settings import OverrideRefused, ResolvedTraining, resolve

ModelT = TypeVar("ModelT", bound=BaseModel)
Reason = Literal["invalid", "not_found", "conflict", "does_not_fit"]


STATUS = {"invalid": 400, "not_found": 404, "conflict": 409, "does_not_fit": 422}


class PreflightRefused(ApplianceError):
    """A job that would fail or cannot fit, refused before it is queued; the status follows the reason."""

    def __init__(self, message: str, reason: Reason, param: str | None = None) -> None:
        super().__init__(message, param=param, code="bad_request" if reason == "invalid" else reason)
        self.reason = reason
        self.status = STATUS[reason]


def _validated(model: type[ModelT], params: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise PreflightRefused(f"params.{where}: {first['msg']}", "invalid", param=f"params.{where}") from exc


def _disk_needed(appliance: Appliance, base: ModelRecord, lora_params: int) -> int:
    # fp32 HF copy of a GGUF base (once), checkpoint (weights + 2 Adam moments) and the adapter itself.
    conversion = 0
    if base.format == "gguf" and not appliance.registry.children(base.id, HF_BASE_KIND):
        conversion = int((base.params or 0) * 4 * 2)  # the staged folder and its registry copy
    return conversion + lora_params * 4 * 4 + 64 * MIB


def _choose_training(appliance: Appliance, job: FinetuneParams,
                     base: ModelRecord) -> tuple[ResolvedTraining, MemoryEstimate, list[str]]:
    """The job's settings, resolved once: the first method of the profile's ladder that fits, with the job's
    overrides; and why each method tried was or was not chosen."""
    profile = appliance.selection.profile
    shape = shape_of(base)
    if shape.params > profile.training.max_base_params_b * 1e9:
        raise PreflightRefused(
            f"profile {profile.name} trains base models up to {profile.training.max_base_params_b:g}B parameters; "
            f"{base.name} has {shape.params / 1e9:.2f}B", "does_not_fit")
    try:
        rungs = [resolve(recipe, job.overrides, appliance.hardware.cpu.physical_cores, profile.name)
                 for recipe in ladder(profile.training)]
    except OverrideRefused as exc:
        where = "params.overrides" + (f".{exc.key}" if exc.key else "")
        raise PreflightRefused(f"{where}: {exc.message}", "invalid", where) from exc
    hardware = appliance.hardware
    live = hardware.memory.model_copy(update={"available_mib": psutil.virtual_memory().available // MIB})
    choice = choose_method(shape, list(rungs), hardware.model_copy(update={"memory": live}))
    if choice.chosen is None:
        raise PreflightRefused("refused: " + "; ".join(rung.line for rung in choice.tried), "does_not_fit")
    chosen = rungs[choice.tried.index(choice.chosen)]
    return chosen, choice.chosen.estimate, choice.reasons


def _check_finetune(appliance: Appliance, params: dict[str, Any]) -> dict[str, Any]:
    job = _validated(FinetuneParams, params)
    try:
        base = appliance.registry.get(job.base_model)
    except RegistryError as exc:
        raise PreflightRefused(str(exc), "not_found", param="params.base_model") from exc
    if base.format == "peft":
        raise PreflightRefused(f"{base.name!r} is an adapter; pass its base model", "invalid", "params.base_model")
    try:
        appliance.datasets.get_ref(job.dataset)
    except DatasetError as exc:
        raise PreflightRefused(str(exc), "not_found", param="params.dataset") from exc
    if job.adapter_name is not None:
        if not NAME.match(job.adapter_name):
            raise PreflightRefused(f"invalid adapter name {job.adapter_name!r}", "invalid", "params.adapter_name")
        if any(m.name == job.adapter_name for m in appliance.registry.all()):
            raise PreflightRefused(f"a model named {job.adapter_name!r} already exists", "conflict",
                                   "params.adapter_name")
    training, estimate, ladder_reasons = _choose_training(appliance, job, base)
    shape = shape_of(base)
    need = _disk_needed(appliance, base, lora_parameters(shape, training.lora_r, training.target_modules))
    free = shutil.disk_usage(appliance.state_dir).free
    if need > free:
        raise PreflightRefused(f"refused: training needs {need / GIB:.2f} GiB of disk in {appliance.state_dir}, "
                               f"{free / GIB:.2f} GiB free", "does_not_fit")
    # The job's settings, resolved once: the worker trains with them as they are.
    resolved = {"training": training.model_dump(mode="json"), "profile": appliance.selection.name,
                "memory_plan": estimate.message, "method_ladder": ladder_reasons, "disk_needed_bytes": need}
    return {**job.model_dump(), "resolved": resolved}


def _check_eval(appliance: Appliance, params: dict[str, Any]) -> dict[str, Any]:
    job = _validated(EvalParams, params)
    try:
        appliance.registry.get(job.model)
    except RegistryError as exc:
        raise PreflightRefused(str(exc), "not_found", param="params.model") from exc
    if job.dataset:
        try:
            appliance.datasets.get_ref(job.dataset)
        except DatasetError as exc:
            raise PreflightRefused(str(exc), "not_found", param="params.dataset") from exc
    return job.model_dump()


def _check_export(appliance: Appliance, params: dict[str, Any]) -> dict[str, Any]:
    from appliance.export.layout import ExportError
    from appliance.export.pipeline import plan_export

    job = _validated(ExportParams, params)
    quant = appliance.selection.profile.quantization
    try:
        plan = plan_export(appliance.registry, job.adapter, list(job.variants or []), job.name_prefix)
    except RegistryError as exc:
        raise PreflightRefused(str(exc), "not_found", param="params.adapter") from exc
    except ExportError as exc:
        raise PreflightRefused(str(exc), "invalid", param="params.adapter") from exc
    # The profile's variant for this size (Q8_0 under ~1B parameters); F16 is always written anyway.
    default = quant.variant_for(float(plan.hf_base.params or 0)) if quant.format == "gguf" else None
    if quant.format == "awq":
        default = "awq"  # the merged folder is always registered too: on h100 it serves as dynamic FP8
    variants: list[str] = list(job.variants) if job.variants else [v for v in [default or "Q8_0"] if v != "F16"]
    if "awq" in variants and not appliance.hardware.compute_units():
        raise PreflightRefused("refused: an awq export calibrates on a CUDA GPU and this box has none; export GGUF "
                               "variants here (e.g. Q8_0)", "does_not_fit", "params.variants")
    taken = {m.name for m in appliance.registry.all()}
    for name in plan_export_names(plan.prefix, variants):
        if name in taken:
            raise PreflightRefused(f"a model named {name!r} already exists; pass another name_prefix", "conflict",
                                   "params.name_prefix")
    resolved = {"variants": variants, "name_prefix": plan.prefix, "profile": appliance.selection.profile.name}
    return {**job.model_dump(), "resolved": resolved}


def plan_export_names(prefix: str, variants: list[str]) -> list[str]:
    from appliance.export.pipeline import artifact_names

    return list(artifact_names(prefix, variants).values())


def preflight(appliance: Appliance, job_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """The params to store with the job (validated, with what was resolved at submit time).

    Raises:
        PreflightRefused: the job would fail or cannot fit; the message says why, with numbers.
    """
    if job_type == "finetune":
        return _check_finetune(appliance, params)
    if job_type == "eval":
        return _check_eval(appliance, params)
    if job_type == "export":
        return _check_export(appliance, params)
    return params
