"""Captured answers and their review (admin scope): the queue with its filters, one item with its feedback,
accept / edit / reject, purge, the retention sweep, and the export of accepted items into a new dataset
version (a `dataset-import` job of the export's kind, with lineage to each item and its feedback)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from appliance.capture.export import ExportKind, ExportResult, ExportSelection, write_export
from appliance.capture.models import CaptureDetail, CaptureFilter, CaptureSummary, ReviewDecision, ReviewState
from appliance.capture.review import count_captures, decide, get_capture, list_captures
from appliance.capture.sweep import SweepResult, purge
from appliance.capture.writer import WriterStats
from appliance.errors import BadRequest
from appliance.jobs.kinds.dataset_import import KIND as DATASET_IMPORT
from appliance.jobs.models import Job
from appliance.security.keys import ApiKey
from appliance.web.auth import require
from appliance.web.state import appliance_of, capture_of, jobs_of

router = APIRouter(prefix="/api/v1/captures", tags=["capture"])
EXPORTS_DIR = "review-exports"  # under the imports root: the dataset import reads it from there


class CaptureList(BaseModel):
    total: int = Field(..., description="Items matching the filters (for paging)")
    items: list[CaptureSummary]


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ExportKind = Field(..., description="sft (conversations), preference (prompt/chosen/rejected) or kto "
                                              "(prompt/completion/label)")
    dataset: str = Field(..., description="The dataset the export becomes a new version of")
    selection: ExportSelection = Field(default_factory=ExportSelection)
    base_model: str | None = Field(None, description="Registry model whose tokenizer counts tokens")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0


class ExportStarted(BaseModel):
    export: ExportResult
    job: Job = Field(..., description="The dataset-import job that makes the new version")


class Purged(BaseModel):
    deleted: int


@router.get("", response_model=CaptureList)
async def captures(request: Request, deployment: str | None = None, key: str | None = None,
                   since: float | None = None, until: float | None = None,
                   rated: Literal["up", "down"] | None = None, corrected: bool | None = None,
                   sampled: bool | None = None, state: ReviewState | None = None,
                   limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0, le=2**31),
                   _: ApiKey = Depends(require("admin"))) -> CaptureList:
    """The review queue, newest first: every filter given must hold (`sampled`: items with no feedback)."""
    filt = CaptureFilter(deployment=deployment, key_name=key, since=since, until=until, rated=rated,
                         corrected=corrected, sampled=sampled, state=state, limit=limit, offset=offset)
    store = appliance_of(request).store
    items, total = await asyncio.gather(asyncio.to_thread(list_captures, store, filt),
                                        asyncio.to_thread(count_captures, store, filt))
    return CaptureList(total=total, items=items)


@router.get("/stats", response_model=WriterStats)
async def stats(request: Request, _: ApiKey = Depends(require("admin"))) -> WriterStats:
    """What the capture writer did since the daemon started: written, dropped (by reason), queued."""
    return capture_of(request).writer.stats()


@router.post("/sweep", response_model=SweepResult)
async def sweep(request: Request, who: ApiKey = Depends(require("admin"))) -> SweepResult:
    """Apply every deployment's retention now (the daemon also does it on its own every few minutes)."""
    result = await capture_of(request).sweeper.run_once()
    if result is None:
        raise BadRequest("the retention sweep failed; see the daemon log", code="sweep_failed")
    return result


@router.delete("", response_model=Purged)
async def purge_captures(request: Request, deployment: str | None = None, key: str | None = None,
                         older_than_s: float | None = Query(None, ge=0),
                         who: ApiKey = Depends(require("admin"))) -> Purged:
    """Delete captured items (with their feedback and review) of a deployment, of a key, or older than a
    number of seconds; the filters combine, at least one is needed (`older_than_s=0`: all)."""
    store = appliance_of(request).store
    deleted = await asyncio.to_thread(purge, store, deployment=deployment, key=key, older_than=older_than_s)
    store.audit(who.name, "capture.purge", deployment or "", {"key": key, "older_than_s": older_than_s,
                                                                "deleted": deleted})
    return Purged(deleted=deleted)


@router.get("/{response_id}", response_model=CaptureDetail)
async def capture(response_id: str, request: Request, _: ApiKey = Depends(require("admin"))) -> CaptureDetail:
    """One captured exchange (redacted) with its feedback and its review."""
    return await asyncio.to_thread(get_capture, appliance_of(request).store, response_id)


@router.post("/{response_id}/review", response_model=CaptureDetail)
async def review(response_id: str, body: ReviewDecision, request: Request,
                 who: ApiKey = Depends(require("admin"))) -> CaptureDetail:
    """Accept, edit (the conversation as it should be) or reject an item; `reopen` puts it back in the queue."""
    store = appliance_of(request).store
    await asyncio.to_thread(decide, store, response_id, body, who.name)
    store.audit(who.name, "capture.review", response_id, {"action": body.action})
    return await asyncio.to_thread(get_capture, store, response_id)


@router.post("/export", response_model=ExportStarted, status_code=202)
async def export(body: ExportRequest, request: Request, who: ApiKey = Depends(require("admin"))) -> ExportStarted:
    """Write the accepted and edited items as `kind` rows (with their lineage) and import them as a new version
    of `dataset` through the dataset pipeline (validation, dedup, split)."""
    appliance = appliance_of(request)
    folder = appliance.imports_dir / EXPORTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{body.dataset}-{body.kind}-{int(time.time())}"
    result = await asyncio.to_thread(write_export, appliance.store, body.kind, folder, name, body.selection)
    params = DATASET_IMPORT.check(appliance, {"path": result.path, "name": body.dataset, "kind": body.kind,
                                              "base_model": body.base_model, "eval_fraction": body.eval_fraction,
                                              "seed": body.seed})
    job = jobs_of(request).submit(DATASET_IMPORT.name, params)
    appliance.store.audit(who.name, "capture.export", body.dataset, {"kind": body.kind, "rows": result.rows,
                                                                     "items": result.items, "job": job.id})
    return ExportStarted(export=result, job=job)
