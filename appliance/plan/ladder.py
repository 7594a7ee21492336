"""The method ladder: a profile names its training methods in order of preference (e.g. full → lora-bf16 →
qlora-4bit); the first one the planner says fits is chosen, and every rung says why it was or was not.

Each rung is planned in the layout the box gives it: one process on a CPU or one GPU; data parallel (DDP, one
process per GPU, each holding the whole model) on several whole GPUs; for a full fine-tune that DDP cannot fit,
FSDP (weights, gradients and optimizer state sharded over the GPUs). A preference step whose frozen reference
forward does not fit is planned again with the reference log-probs precomputed before training."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.hardware.models import HardwareReport
from appliance.plan.memory import SINGLE, MemoryEstimate, Parallel, TrainingStep, plan_training
from appliance.plan.shapes import ModelShape
from appliance.profiles.recipe import TrainingMethod, TrainingRecipe
from appliance.profiles.schema import TrainingSettings

Planner = Callable[..., MemoryEstimate]


@dataclass(frozen=True)
class Rung:
    recipe: TrainingRecipe
    estimate: MemoryEstimate
    parallel: Parallel = SINGLE
    precompute_ref: bool = False

    @property
    def line(self) -> str:
        return f"{self.recipe.method}: {self.estimate.message}"


@dataclass(frozen=True)
class MethodChoice:
    chosen: Rung | None
    tried: list[Rung]

    @property
    def reasons(self) -> list[str]:
        return [rung.line + (" (chosen)" if rung is self.chosen else "") for rung in self.tried]


def _trainer_for(method: TrainingMethod, profile: TrainingSettings) -> str:
    if method == profile.method:
        return profile.trainer
    # Unsloth only does QLoRA; the rest of the ladder trains with PEFT (or plain transformers for full).
    return "unsloth" if method == "qlora-4bit" and profile.trainer == "unsloth" else "peft"


def ladder(profile: TrainingSettings) -> list[TrainingRecipe]:
    """The profile's recipe for each method of its ladder, first choice first (same hyperparameters)."""
    fields = {k: v for k, v in profile.model_dump().items() if k in TrainingRecipe.model_fields}
    return [TrainingRecipe.model_validate({**fields, "method": method, "trainer": _trainer_for(method, profile)})
            for method in (profile.method, *profile.fallback_methods)]


def data_parallel_gpus(hardware: HardwareReport) -> int:
    """Processes a GPU method trains with: one per whole GPU. MIG slices train one at a time (NCCL does not
    connect slices), and so does a box whose GPUs report no memory."""
    units = hardware.compute_units()
    if not units or any(u.is_mig_slice or u.memory_mib is None for u in units):
        return 1
    return len(units)


def layouts(recipe: TrainingRecipe, hardware: HardwareReport, processes: int | None = None) -> list[Parallel]:
    """The layouts to try for `recipe`, first choice first. `processes`: a job's own count (on a CPU, data
    parallel is opt-in; on GPUs, at most one process per GPU)."""
    if recipe.method == "lora-cpu":
        count = processes or 1
    else:
        count = min(processes or data_parallel_gpus(hardware), data_parallel_gpus(hardware))
    if count == 1:
        return [SINGLE]
    found = [Parallel(count, "ddp")]
    return [*found, Parallel(count, "fsdp")] if recipe.method == "full" else found


def _rung(shape: ModelShape, recipe: TrainingRecipe, hardware: HardwareReport, plan: Planner, step: TrainingStep,
          precompute: bool | None, processes: int | None) -> Rung:
    """The first layout (and reference mode) that fits, else the last one tried."""
    modes = [precompute] if precompute is not None or step not in ("preference", "kto") else [False, True]
    rung: Rung | None = None
    for parallel in layouts(recipe, hardware, processes):
        for mode in modes:
            estimate = plan(shape, recipe, hardware, step, bool(mode), parallel)
            rung = Rung(recipe, estimate, parallel, bool(mode))
            if estimate.fits:
                return rung
    assert rung is not None
    return rung


def choose_method(shape: ModelShape, recipes: list[TrainingRecipe], hardware: HardwareReport,
                  plan: Planner = plan_training, step: TrainingStep = "sft", precompute_ref: bool | None = False,
                  processes: int | None = None) -> MethodChoice:
    """The first recipe that fits (chosen stays None when none does); every one tried keeps its estimate.

    `precompute_ref`: None lets the planner precompute the reference log-probs when the step does not fit
    otherwise."""
    tried: list[Rung] = []
    for recipe in recipes:
        rung = _rung(shape, recipe, hardware, plan, step, precompute_ref, processes)
        tried.append(rung)
        if rung.estimate.fits:
            return MethodChoice(rung, tried)
    return MethodChoice(None, tried)
