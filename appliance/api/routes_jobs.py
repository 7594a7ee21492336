"""Jobs (queue, progress, server-sent events, cancel, logs) and datasets (admin scope)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from appliance.datasets.store import DatasetRecord
from appliance.jobs.models import FINAL_STATES, Job, SubmitJob
from appliance.jobs.preflight import preflight
from appliance.security.keys import ApiKey
from appliance.web.auth import require
from appliance.web.state import appliance_of, jobs_of

router = APIRouter(prefix="/api/v1", tags=["jobs"])
KEEPALIVE_S = 15.0


class ImportDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., description="Absolute path of a JSONL, CSV or Parquet file under an allowed import root")
    name: str
    base_model: str | None = Field(None, description="Registry model whose chat template and tokenizer count tokens")
    max_seq_length: int | None = Field(None, ge=16, description="Default: the hardware profile's")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    strict: bool = Field(False, description="Refuse the file on any defect instead of skipping bad records")


def _job(request: Request, job_id: str) -> Job:
    return jobs_of(request).jobs.get(job_id)


@router.post("/jobs", response_model=Job, status_code=202)
async def submit_job(body: SubmitJob, request: Request, who: ApiKey = Depends(require("admin"))) -> Job:
    """Queue a job. Fine-tune jobs are checked first: a job that cannot fit memory or disk is refused (422)."""
    params = preflight(appliance_of(request), body.type, body.params)
    job = jobs_of(request).submit(body.type, params)
    appliance_of(request).store.audit(who.name, "job.submit", job.id, {"type": body.type})
    return job


@router.get("/jobs", response_model=list[Job])
async def list_jobs(request: Request, limit: int = Query(100, ge=1, le=1000),
                    _: ApiKey = Depends(require("admin"))) -> list[Job]:
    return jobs_of(request).jobs.all(limit)


@router.get("/jobs/{job_id}", response_model=Job)
async def get_job(job_id: str, request: Request, _: ApiKey = Depends(require("admin"))) -> Job:
    return _job(request, job_id)


@router.post("/jobs/{job_id}/cancel", response_model=Job)
async def cancel_job(job_id: str, request: Request, who: ApiKey = Depends(require("admin"))) -> Job:
    _job(request, job_id)
    job = await jobs_of(request).cancel(job_id)
    appliance_of(request).store.audit(who.name, "job.cancel", job_id)
    return job


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
async def job_logs(job_id: str, request: Request, lines: int = Query(200, ge=1, le=10000),
                   _: ApiKey = Depends(require("admin"))) -> str:
    _job(request, job_id)
    path = jobs_of(request).log_path(job_id)
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _sse(event: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(event, default=str)}\n\n".encode()


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: str, request: Request, _: ApiKey = Depends(require("admin"))) -> StreamingResponse:
    """Server-sent events: a snapshot of the job, then each progress, log and state event until it ends."""
    runner = jobs_of(request)
    snapshot = _job(request, job_id)
    queue = runner.subscribe(job_id)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield _sse({"event": "snapshot", **snapshot.model_dump(mode="json")})
            if snapshot.state in FINAL_STATES:
                return
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield _sse(event)
                if event.get("event") == "state" and event.get("state") in (*FINAL_STATES, "interrupted"):
                    return
        finally:
            runner.unsubscribe(job_id, queue)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


@router.post("/datasets", response_model=Job, status_code=202, tags=["datasets"])
async def import_dataset(body: ImportDataset, request: Request, who: ApiKey = Depends(require("admin"))) -> Job:
    """Validate and import a dataset as a job (it loads the base model's tokenizer in a worker)."""
    job = jobs_of(request).submit("dataset-import", body.model_dump())
    appliance_of(request).store.audit(who.name, "dataset.import", body.name, {"source": body.path, "job": job.id})
    return job


@router.get("/datasets", response_model=list[DatasetRecord], tags=["datasets"])
async def list_datasets(request: Request, _: ApiKey = Depends(require("admin"))) -> list[DatasetRecord]:
    return appliance_of(request).datasets.all()


@router.get("/datasets/{name}", response_model=DatasetRecord, tags=["datasets"])
async def get_dataset(name: str, request: Request, version: int | None = Query(None, ge=1),
                      _: ApiKey = Depends(require("admin"))) -> DatasetRecord:
    return appliance_of(request).datasets.get(name, version)
