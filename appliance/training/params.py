"""What a fine-tune job asks for, validated at submit: the profile gives the defaults, a job may override
hyperparameters within bounds that keep a run sane on any box."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.profiles.schema import TrainingSettings


class TrainOverrides(BaseModel):
    """Per-job hyperparameters; anything left out comes from the hardware profile."""

    model_config = ConfigDict(extra="forbid")

    lora_r: int | None = Field(None, ge=1, le=256)
    lora_alpha: int | None = Field(None, ge=1, le=1024)
    lora_dropout: float | None = Field(None, ge=0.0, le=0.5)
    target_modules: list[str] | None = Field(None, min_length=1)
    batch_size: int | None = Field(None, ge=1, le=256)
    gradient_accumulation: int | None = Field(None, ge=1, le=256)
    max_seq_length: int | None = Field(None, ge=16, le=131072)
    gradient_checkpointing: bool | None = None
    learning_rate: float | None = Field(None, gt=0.0, le=1e-2)
    neftune_noise_alpha: float | None = Field(None, ge=0.0, le=50.0)
    epochs: float = Field(1.0, gt=0.0, le=100.0)
    max_steps: int | None = Field(None, ge=1, le=1_000_000, description="Stop after this many steps (wins over epochs)")
    warmup_ratio: float = Field(0.05, ge=0.0, le=0.5)
    seed: int = Field(0, ge=0)
    checkpoint_every: int = Field(10, ge=1, le=100_000, description="Steps between checkpoints")


class FinetuneParams(BaseModel):
    """The `params` of a `finetune` job."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(..., description="Registry name of the base model (GGUF or HF)")
    dataset: str = Field(..., description="Dataset name (latest version) or name@version")
    adapter_name: str | None = Field(None, description="Registry name of the adapter (default: <dataset>-<job>)")
    golden: str | None = Field(None, description="Golden set JSONL under an import root (prompt, expected, scorer)")
    overrides: TrainOverrides = Field(default_factory=TrainOverrides)


class EvalParams(BaseModel):
    """The `params` of an `eval` job: golden set (and held-out loss) of a registry model or adapter."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., description="Registry name: a base model (GGUF or HF) or a PEFT adapter")
    golden: str | None = Field(None, description="Golden set JSONL under an import root; default: built-in set")
    dataset: str | None = Field(None, description="Dataset whose eval split gives the held-out loss")
    max_new_tokens: int = Field(48, ge=1, le=1024)


class ExportParams(BaseModel):
    """The `params` of an `export` job: a LoRA adapter → merged model, GGUF files and a GGUF LoRA."""

    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(..., description="Registry name of a PEFT LoRA adapter")
    variants: list[Literal["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q4_1"]] | None = Field(
        None, min_length=1, max_length=6, description="Quantized GGUF variants; default: the profile's")
    name_prefix: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$",
                                    description="Names of the artifacts: <prefix>-f16, <prefix>-q8_0 ...")
    golden: str | None = Field(None, description="Golden set JSONL under an import root (default: the one the "
                                              "adapter was fine-tuned with); the built-in set is added")
    max_new_tokens: int = Field(32, ge=1, le=256, description="Greedy tokens per golden prompt in the parity gate")


def effective_training(profile: TrainingSettings, overrides: TrainOverrides) -> TrainingSettings:
    """The profile's training settings with the job's overrides applied (validated again as a whole)."""
    fields = TrainingSettings.model_fields
    changes: dict[str, Any] = {k: v for k, v in overrides.model_dump(exclude_none=True).items() if k in fields}
    return TrainingSettings.model_validate({**profile.model_dump(), **changes})
