"""One plan for one model on this box: which quantization, and whether training and serving fit."""

from __future__ import annotations

from pydantic import BaseModel

from appliance.hardware.models import HardwareReport
from appliance.plan.ladder import choose_method, ladder
from appliance.plan.memory import MemoryEstimate
from appliance.plan.serving import ServingMemory
from appliance.plan.shapes import ModelShape
from appliance.profiles.select import Selection


class ModelPlan(BaseModel):
    params: float
    shape: ModelShape
    profile: str
    training_method: str
    method_reasons: list[str] = []  # each rung of the profile's method ladder and why it was or was not chosen
    quantization: str
    serving_backend: str
    training: MemoryEstimate
    serving: MemoryEstimate
    can_train: bool
    can_serve: bool
    notes: list[str]


def make_plan(shape: ModelShape, selection: Selection, hardware: HardwareReport, memory: ServingMemory) -> ModelPlan:
    """`memory`: how the profile's serving backend uses memory (its `Capabilities.memory`)."""
    profile = selection.profile
    notes: list[str] = []
    quant = profile.quantization
    variant = quant.variant_for(shape.params) if quant.format == "gguf" else quant.format
    if quant.format == "gguf" and variant != quant.variant:
        notes.append(
            f"{variant} instead of {quant.variant}: models under {quant.small_model_threshold_b:g}B "
            "parameters lose too much at 4 bits"
        )
    choice = choose_method(shape, ladder(profile.training), hardware)
    chosen = choice.chosen or choice.tried[0]
    training = chosen.estimate
    serving = memory.estimate(shape, profile.serving, hardware, variant or "none", selection.tensor_parallel_size)
    too_big = shape.params > profile.training.max_base_params_b * 1e9
    if too_big:
        notes.append(
            f"profile {profile.name} trains base models up to {profile.training.max_base_params_b:g}B "
            f"parameters; this one has {shape.params / 1e9:.2f}B"
        )
    if shape.name and not shape.name.startswith("custom"):
        notes.append(f"architecture assumed from {shape.name} (nearest reference in size)")
    return ModelPlan(
        params=shape.params,
        shape=shape,
        profile=profile.name,
        training_method=chosen.recipe.method,
        method_reasons=choice.reasons,
        quantization=variant or "none",
        serving_backend=profile.serving.backend,
        training=training,
        serving=serving,
        can_train=training.fits and not too_big,
        can_serve=serving.fits,
        notes=notes,
    )
