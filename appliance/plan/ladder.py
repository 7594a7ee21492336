"""The method ladder: a profile names its training methods in order of preference (e.g. full → lora-bf16 →
qlora-4bit); the first one the planner says fits is chosen, and every rung says why it was or was not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from appliance.hardware.models import HardwareReport
from appliance.plan.memory import MemoryEstimate, plan_training
from appliance.plan.shapes import ModelShape
from appliance.profiles.recipe import TrainingMethod, TrainingRecipe
from appliance.profiles.schema import TrainingSettings


@dataclass(frozen=True)
class Rung:
    recipe: TrainingRecipe
    estimate: MemoryEstimate

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


def choose_method(shape: ModelShape, recipes: list[TrainingRecipe], hardware: HardwareReport,
                  plan: Callable[[ModelShape, TrainingRecipe, HardwareReport], MemoryEstimate] = plan_training
                  ) -> MethodChoice:
    """The first recipe that fits (chosen stays None when none does); every one tried keeps its estimate."""
    tried: list[Rung] = []
    for recipe in recipes:
        rung = Rung(recipe, plan(shape, recipe, hardware))
        tried.append(rung)
        if rung.estimate.fits:
            return MethodChoice(rung, tried)
    return MethodChoice(None, tried)
