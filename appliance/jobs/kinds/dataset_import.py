"""`dataset-import`: a JSONL, CSV or Parquet file → a validated, deduplicated, split dataset version
(`jobs/handlers/dataset_import.py`; a worker, since counting tokens loads the base model's tokenizer).
`POST /api/v1/datasets` and `slm-appliance datasets import` queue it. With `semantic_dedup`, records an
embeddings deployment finds as close in meaning as `semantic_threshold` to an earlier one are dropped too
(`datasets/semantic.py`), each pair listed in the report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.jobs.kinds.base import JobKind, form

if TYPE_CHECKING:
    from appliance.core import Appliance

# registry.embeddings.EMBEDDINGS_DEPLOYMENT, the deployment the daemon's first start makes (named here: the CLI
# imports the kinds, and they stay clear of the registry).
DEFAULT_EMBEDDINGS = "minilm-embeddings"


class ImportDataset(BaseModel):
    """The `params` of a `dataset-import` job (and the body of `POST /api/v1/datasets`)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="Absolute path of a JSONL, CSV or Parquet file under an allowed import root",
                      json_schema_extra=form(label="Path on the appliance", path=True,
                                             placeholder="/var/lib/slm-appliance/imports/data.jsonl"))
    name: str = Field(..., description="Dataset name", json_schema_extra=form(label="Dataset name"))
    base_model: str | None = Field(None, description="Registry model whose chat template and tokenizer count tokens",
                                   json_schema_extra=form(label="Base model", source="models"))
    max_seq_length: int | None = Field(None, ge=16, description="Default: the hardware profile's")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Share of the records held out for evaluation")
    seed: int = Field(0, description="Seeds the split")
    strict: bool = Field(False, description="Refuse the file on any defect instead of skipping bad records")
    kind: Literal["sft", "preference", "kto"] = Field(
        "sft", description="What a record holds: conversations (sft), prompt/chosen/rejected (preference) or "
        "prompt/completion/label (kto)")
    semantic_dedup: bool = Field(False, description="Also drop records whose meaning repeats an earlier one's "
                                 "(SemDeDup: cosine of their embeddings, after exact and MinHash dedup)")
    semantic_threshold: float = Field(0.9, gt=0.0, le=1.0, description="Cosine similarity at or above which a "
                                      "record is a semantic duplicate")
    embeddings_deployment: str = Field(DEFAULT_EMBEDDINGS, min_length=1, max_length=64,
                                       description="The embeddings deployment that embeds the records")


def preflight(appliance: Appliance, job: ImportDataset) -> dict[str, Any]:
    """With semantic dedup, the embeddings deployment exists, embeds and is wanted running."""
    from appliance.jobs.served import served

    if job.semantic_dedup:
        served(appliance, job.embeddings_deployment, "params.embeddings_deployment", embeddings=True)
    return job.model_dump()


KIND = JobKind(
    name="dataset-import",
    summary="validate, deduplicate and split a JSONL, CSV or Parquet file into a dataset version",
    params=ImportDataset,
    handler="appliance.jobs.handlers.dataset_import:run_dataset_import",
    preflight=preflight,
    submit_via_cli=False,  # `slm-appliance datasets import` follows it and prints the validation report
)
