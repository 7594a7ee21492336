"""The `params` of the training-side jobs (fine-tune, eval, export), as submitted. A fine-tune job's overrides
are resolved against the profile at submit (`appliance.training.settings`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.training.settings import OVERRIDES_JSON_SCHEMA


class FinetuneParams(BaseModel):
    """The `params` of a `finetune` job."""

    model_config = ConfigDict(extra="forbid")

    base_model: str = Field(..., description="Registry name of the base model (GGUF or HF)")
    dataset: str = Field(..., description="Dataset name (latest version) or name@version")
    adapter_name: str | None = Field(None, description="Registry name of the adapter (default: <dataset>-<job>)")
    golden: str | None = Field(None, description="Golden set JSONL under an import root (prompt, expected, scorer)")
    overrides: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra=OVERRIDES_JSON_SCHEMA,
        description="Hyperparameters and run knobs over the profile's (checked at submit: `settings.resolve`)")


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
    variants: list[Literal["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q4_1", "awq"]] | None = Field(
        None, min_length=1, max_length=7, description="Quantized GGUF variants, or awq (an HF folder for vLLM, "
        "needs a CUDA GPU); default: the profile's")
    name_prefix: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$",
                                    description="Names of the artifacts: <prefix>-f16, <prefix>-q8_0 ...")
    golden: str | None = Field(None, description="Golden set JSONL under an import root (default: the one the "
                                              "adapter was fine-tuned with); the built-in set is added")
    max_new_tokens: int = Field(32, ge=1, le=256, description="Greedy tokens per golden prompt in the parity gate")

