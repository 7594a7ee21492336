"""Jobs (queue, progress, server-sent events, cancel, logs) and datasets (admin scope)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import PlainTextResponse, StreamingResponse

from appliance.datasets.store import DatasetRecord
from appliance.jobs.kinds import KINDS
from appliance.jobs.kinds.dataset_import import KIND as DATASET_IMPORT
from appliance.jobs.kinds.dataset_import import ImportDataset
from appliance.jobs.kinds.form import KindInfo, describe
from appliance.jobs.models import FINAL_STATES, Job, SubmitJob
from appliance.logfiles import tail
from appliance.security.keys import ApiKey
from appliance.web.auth import require
from appliance.web.state import appliance_of, jobs_of

router = APIRouter(prefix="/api/v1", tags=["jobs"])
KEEPALIVE_S = 15.0


def _job(request: Request, job_id: str) -> Job:
    return jobs_of(request).jobs.get(job_id)


@router.post("/jobs", response_model=Job, status_code=202)
async def submit_job(body: SubmitJob, request: Request, who: ApiKey = Depends(require("admin"))) -> Job:
    """Queue a job, checked first by its kind's pre-flight: a fine-tune that cannot fit memory or disk is refused
    (422), a missing model or dataset is a 404, a name already taken a 409."""
    params = KINDS.get(body.type).check(appliance_of(request), body.params)
    job = jobs_of(request).submit(body.type, params)
    appliance_of(request).store.audit(who.name, "job.submit", job.id, {"type": body.type})
    return job


@router.get("/job-kinds", response_model=list[KindInfo])
async def job_kinds(_: ApiKey = Depends(require("admin"))) -> list[KindInfo]:
    """Each kind of job: its params (JSON schema) and the fields the CLI and the TUI show for it."""
    return [describe(kind) for kind in KINDS]


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
    return tail(jobs_of(request).log_path(job_id), lines)


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
    params = DATASET_IMPORT.check(appliance_of(request), body.model_dump())
    job = jobs_of(request).submit(DATASET_IMPORT.name, params)
    appliance_of(request).store.audit(who.name, "dataset.import", body.name, {"source": body.path, "job": job.id})
    return job


@router.get("/datasets", response_model=list[DatasetRecord], tags=["datasets"])
async def list_datasets(request: Request, _: ApiKey = Depends(require("admin"))) -> list[DatasetRecord]:
    return appliance_of(request).datasets.all()


@router.get("/datasets/{name}", response_model=DatasetRecord, tags=["datasets"])
async def get_dataset(name: str, request: Request, version: int | None = Query(None, ge=1, le=2**31),
                      _: ApiKey = Depends(require("admin"))) -> DatasetRecord:
    return appliance_of(request).datasets.get(name, version)
