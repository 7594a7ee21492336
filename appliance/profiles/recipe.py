"""A fine-tune recipe as a hardware profile declares it (its `[training]` table): the method, its trainer and
precision, and the LoRA and optimiser hyperparameters with the bounds that keep a run sane on any box.

Declared here, with the profiles, because the planner reads them before any training exists;
`appliance.training.settings` builds a job's resolved settings on top of them (run knobs, overrides, threads).
Pure pydantic.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TrainingMethod = Literal["lora-cpu", "qlora-4bit", "lora-bf16", "full"]
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class Frozen(BaseModel):
    """Settings that are read, never changed: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Hyperparameters(Frozen):
    """LoRA and optimiser settings. The bounds keep a run sane on any box, whoever sets them."""

    lora_r: int = Field(16, gt=0, le=256, description="LoRA rank")
    lora_alpha: int = Field(32, gt=0, le=1024, description="LoRA scaling numerator (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0.0, le=0.5, description="Dropout on the LoRA input")
    target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_TARGET_MODULES), min_length=1,
                                      description="Projections that get a LoRA (module names)")
    batch_size: int = Field(4, ge=1, le=256, description="Sequences per micro-batch")
    gradient_accumulation: int = Field(1, ge=1, le=256, description="Micro-batches per optimizer step")
    max_seq_length: int = Field(512, ge=16, le=131072, description="Tokens per sequence; longer ones are cut")
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward to save memory")
    learning_rate: float = Field(2e-4, gt=0.0, le=1e-2, description="Peak AdamW learning rate")
    neftune_noise_alpha: float | None = Field(None, ge=0.0, le=50.0,
                                              description="NEFTune embedding noise; none: off")


class TrainingRecipe(Hyperparameters):
    """What to train with: the method, its trainer and precision, and the hyperparameters."""

    method: TrainingMethod = Field(..., description="lora-cpu, qlora-4bit, lora-bf16 or full")
    trainer: Literal["peft", "unsloth"] = Field(..., description="unsloth only for qlora-4bit")
    precision: Literal["fp32", "bf16", "fp16"] = Field(..., description="fp32 for lora-cpu")

    @model_validator(mode="after")
    def _method_fits_trainer(self) -> TrainingRecipe:
        if self.method == "lora-cpu" and (self.trainer != "peft" or self.precision != "fp32"):
            raise ValueError("method lora-cpu needs trainer = 'peft' and precision = 'fp32'")
        if self.trainer == "unsloth" and self.method != "qlora-4bit":
            raise ValueError("trainer unsloth is only used for method qlora-4bit")
        return self
