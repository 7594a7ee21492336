"""`export`: a LoRA adapter → merged HF model, F16 and quantized GGUF files and a GGUF LoRA, registered once the
parity gate passed (`jobs/handlers/export.py`, `appliance.export.pipeline`). Pre-flight resolves the variants
(the profile's by default) and the artifact names, and refuses names already taken."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import BadRequest, Conflict, DoesNotFit, NotFound
from appliance.jobs.kinds.base import JobKind, form

if TYPE_CHECKING:
    from appliance.core import Appliance


class ExportParams(BaseModel):
    """The `params` of an `export` job."""

    model_config = ConfigDict(extra="forbid")

    adapter: str = Field(..., description="Registry name of a PEFT LoRA adapter",
                         json_schema_extra=form(source="adapters"))
    variants: list[Literal["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_0", "Q4_1", "awq"]] | None = Field(
        None, min_length=1, max_length=7, description="Quantized GGUF variants, or awq (an HF folder for vLLM, "
        "needs a CUDA GPU); default: the profile's", json_schema_extra=form(cli="--variant"))
    name_prefix: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9._-]{0,47}$",
                                    description="Names of the artifacts: <prefix>-f16, <prefix>-q8_0 ...")
    golden: str | None = Field(None, description="Golden set JSONL under an import root (default: the one the "
                                              "adapter was fine-tuned with); the built-in set is added",
                               json_schema_extra=form(label="Golden set", path=True))
    max_new_tokens: int = Field(32, ge=1, le=256, description="Greedy tokens per golden prompt in the parity gate")


def artifact_names(prefix: str, variants: list[str]) -> list[str]:
    from appliance.export.pipeline import artifact_names as names

    return list(names(prefix, variants).values())


def _variants(appliance: Appliance, job: ExportParams, hf_base_params: float) -> list[str]:
    if job.variants:
        return list(job.variants)
    # The profile's variant for this size (Q8_0 under ~1B parameters); F16 is always written anyway.
    quant = appliance.selection.profile.quantization
    default = quant.variant_for(hf_base_params) if quant.format == "gguf" else None
    if quant.format == "awq":
        default = "awq"  # the merged folder is always registered too: on h100 it serves as dynamic FP8
    return [v for v in [default or "Q8_0"] if v != "F16"]


def preflight(appliance: Appliance, job: ExportParams) -> dict[str, Any]:
    from appliance.export.layout import ExportError
    from appliance.export.pipeline import plan_export
    from appliance.registry.registry import RegistryError

    try:
        plan = plan_export(appliance.registry, job.adapter, list(job.variants or []), job.name_prefix)
    except RegistryError as exc:
        raise NotFound(str(exc), param="params.adapter") from exc
    except ExportError as exc:
        raise BadRequest(str(exc), param="params.adapter") from exc
    variants = _variants(appliance, job, float(plan.hf_base.params or 0))
    if "awq" in variants and not appliance.hardware.compute_units():
        raise DoesNotFit("refused: an awq export calibrates on a CUDA GPU and this box has none; export GGUF "
                         "variants here (e.g. Q8_0)", param="params.variants")
    taken = {m.name for m in appliance.registry.all()}
    for name in artifact_names(plan.prefix, variants):
        if name in taken:
            raise Conflict(f"a model named {name!r} already exists; pass another name_prefix",
                           param="params.name_prefix")
    resolved = {"variants": variants, "name_prefix": plan.prefix, "profile": appliance.selection.profile.name}
    return {**job.model_dump(), "resolved": resolved}


KIND = JobKind(
    name="export",
    summary="merge a LoRA adapter and write F16/quantized GGUF files and a GGUF LoRA, behind the parity gate",
    params=ExportParams,
    handler="appliance.jobs.handlers.export:run_export",
    preflight=preflight,
)
