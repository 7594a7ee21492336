"""`vector-store-ingest`: files added to a vector store are parsed, chunked, embedded through the store's
embeddings deployment (the gateway, with the job's own key) and stored in the store's backend. Queued by the
retrieval service (`/v1/vector_stores/{id}/files` and `file_batches`, a store created with `file_ids`), not
submitted by hand. Resumable: each file's cursor is in its row, and chunk ids are stable, so a job resumed after
a crash stores no chunk twice. Handler: `jobs/handlers/vector_store_ingest.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import BadRequest, NotFound
from appliance.jobs.kinds.base import JobKind

if TYPE_CHECKING:
    from appliance.core import Appliance


class IngestParams(BaseModel):
    """The `params` of a `vector-store-ingest` job."""

    model_config = ConfigDict(extra="forbid")

    vector_store_id: str = Field(..., min_length=1, max_length=64, description="The vector store (vs_...)")
    file_ids: list[str] = Field(..., min_length=1, max_length=500, description="Its files to ingest, in order")


def preflight(appliance: Appliance, job: IngestParams) -> dict[str, Any]:
    store = appliance.store
    if store.query_one("SELECT 1 FROM vector_stores WHERE id = ?", (job.vector_store_id,)) is None:
        raise NotFound(f"no vector store {job.vector_store_id!r}", param="params.vector_store_id")
    missing = [f for f in job.file_ids if store.query_one(
        "SELECT 1 FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?", (job.vector_store_id, f)) is None]
    if missing:
        raise BadRequest(f"not in vector store {job.vector_store_id}: {', '.join(missing)} (add files through "
                         "/v1/vector_stores/{id}/files)", param="params.file_ids")
    return job.model_dump()


KIND = JobKind(
    name="vector-store-ingest",
    summary="parse, chunk, embed and store files added to a vector store",
    params=IngestParams,
    handler="appliance.jobs.handlers.vector_store_ingest:run_ingest",
    preflight=preflight,
    submit_via_cli=False,
    note="Queued by /v1/vector_stores; a killed job resumes from each file's cursor.",
)
