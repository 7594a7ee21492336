"""The schema of a hardware profile file (`profiles/*.toml`). Unknown fields are errors, not ignored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from appliance.profiles.recipe import TrainingMethod, TrainingRecipe

GGUF_VARIANTS = ("F16", "Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q4_1")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumberRange(_Strict):
    min: float | None = None
    max: float | None = None

    def contains(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def describe(self, unit: str = "") -> str:
        lo = "0" if self.min is None else f"{self.min:g}"
        hi = "∞" if self.max is None else f"{self.max:g}"
        return f"{lo}–{hi}{(' ' + unit) if unit else ''}"


class MatchRules(_Strict):
    """Which boxes a profile fits. Every set rule must hold for every GPU (or MIG slice)."""

    fallback: bool = Field(False, description="Chosen when no profile matches (exactly one profile).")
    gpu_count: NumberRange | None = None
    gpu_name_patterns: list[str] = Field(default_factory=list, description="fnmatch patterns on NVML names")
    compute_capability: NumberRange | None = None
    vram_per_gpu_gib: NumberRange | None = None
    mig: bool | None = Field(None, description="true: only MIG slices; false: only whole GPUs")

    def specificity(self) -> int:
        """How narrowly the rules pin hardware; the most specific matching profile wins."""
        return (
            4 * bool(self.gpu_name_patterns)
            + (self.compute_capability is not None)
            + (self.vram_per_gpu_gib is not None)
            + (self.gpu_count is not None)
            + (self.mig is not None)
        )


class TrainingSettings(TrainingRecipe):
    """A profile's `[training]` table: the recipe (method and hyperparameters, declared in
    `appliance.profiles.recipe`) and what the profile allows on its box."""

    max_base_params_b: float = Field(..., gt=0.0, description="Largest base model it will train (billions)")
    serving_during_training: bool = Field(True, description="Keep serving while a job trains (false: pause)")
    fallback_methods: list[TrainingMethod] = Field(
        default_factory=list, description="Methods tried in this order when the planner says `method` does not "
        "fit (the method ladder), e.g. full → lora-bf16 → qlora-4bit")

    @model_validator(mode="after")
    def _ladder_on_one_device(self) -> TrainingSettings:
        if self.method in self.fallback_methods:
            raise ValueError(f"fallback_methods repeats the method {self.method!r}")
        if "lora-cpu" in (self.method, *self.fallback_methods) and self.fallback_methods:
            raise ValueError("lora-cpu has no fallback: the GPU methods do not run on a CPU box")
        return self


class QuantizationSettings(_Strict):
    format: Literal["gguf", "awq", "fp8", "none"]
    variant: str | None = Field(None, description="GGUF type such as Q4_K_M; AWQ scheme such as w4g128")
    small_model_variant: str | None = Field(
        None, description="Variant for models under small_model_threshold_b (4-bit breaks tiny models)"
    )
    small_model_threshold_b: float = Field(1.0, gt=0.0)

    @model_validator(mode="after")
    def _variant_known(self) -> QuantizationSettings:
        if self.format == "gguf":
            for value in (self.variant, self.small_model_variant):
                if value is not None and value not in GGUF_VARIANTS:
                    raise ValueError(f"unknown GGUF variant {value!r}; expected one of {', '.join(GGUF_VARIANTS)}")
            if self.variant is None:
                raise ValueError("format gguf needs a variant")
        return self

    def variant_for(self, params: float) -> str | None:
        if self.small_model_variant and params < self.small_model_threshold_b * 1e9:
            return self.small_model_variant
        return self.variant


class ServingSettings(_Strict):
    backend: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]*$",
                         description="A serving backend of appliance/backends (checked when profiles are loaded)")
    context_length: int = Field(4096, ge=128, description="Tokens of context per parallel slot")
    parallel_slots: int = Field(4, ge=1, le=256)
    gpu_layers: int = Field(0, ge=-1, description="llama.cpp layers on the GPU; -1 = all")
    threads: int = Field(0, ge=0, description="llama.cpp threads; 0 = physical cores")
    gpu_memory_utilization: float | None = Field(None, gt=0.0, le=1.0)
    max_model_len: int | None = Field(None, ge=128)
    max_loras: int | None = Field(None, ge=0)
    tensor_parallel_size: int | Literal["auto"] = "auto"
    quantization: str | None = Field(None, description="vLLM --quantization (awq, fp8)")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="vLLM --dtype; on a box without a GPU vLLM runs float32 (greedy output then matches "
        "transformers)")
    max_lora_rank: int = Field(16, description="vLLM --max-lora-rank: the largest adapter rank it can load")
    embeddings: bool = Field(False, description="Serve /v1/embeddings (llama.cpp --embeddings, mean pooling)")


class BackendRules(Protocol):
    """What a serving backend says about profiles. The backends declare it (`appliance.backends.registry`); the
    profile loader is given it, so this layer names no backend."""

    formats: tuple[str, ...]  # model and quantization formats it serves

    def problems(self, serving: ServingSettings) -> list[str]: ...


class Profile(_Strict):
    name: str = Field(..., pattern=r"^[a-z0-9][a-z0-9-]*$")
    description: str
    match: MatchRules
    training: TrainingSettings
    quantization: QuantizationSettings
    serving: ServingSettings
    watch: dict[str, float | int | bool | None] = Field(
        default_factory=dict, description="Live-watch defaults of this box's deployments (appliance.trials."
        "WatchSettings: window_s, min_requests, max_error_rate_increase, max_p95_ratio, ...); checked at start")

    @field_validator("description")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("description must not be empty")
        return value

    def backend_problems(self, backends: Mapping[str, BackendRules]) -> list[str]:
        """The profile's serving backend exists, serves its quantization format, and takes its settings."""
        if self.serving.backend not in backends:
            return [f"serving.backend: unknown backend {self.serving.backend!r} (known: {', '.join(backends)})"]
        problems = [f"serving: {p}" for rules in backends.values() for p in rules.problems(self.serving)]
        wanted = [name for name, rules in backends.items() if self.quantization.format in rules.formats]
        if wanted and self.serving.backend not in wanted:
            problems.append(f"quantization.format {self.quantization.format} is served by {wanted[0]}, "
                            f"not serving.backend {self.serving.backend}")
        return problems
