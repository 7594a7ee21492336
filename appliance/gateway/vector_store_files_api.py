"""`/v1/vector_stores/{id}/files` and `/file_batches`, as OpenAI's: add a file (or a batch of them: one ingestion
job each time), list, get, update a file's attributes, its parsed content, remove it; a batch's status, its
files, its cancel. `filter` on a list is a file status."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from appliance.gateway.retrieval_http import AFTER, BEFORE, INFERENCE, LIMIT, ORDER, Order, answer, body_of, off_loop
from appliance.retrieval.requests import AddFile, AddFileBatch, UpdateFileAttributes
from appliance.web.state import retrieval_of

router = APIRouter(prefix="/v1/vector_stores/{store_id}", tags=["openai"])
Status = Literal["in_progress", "completed", "failed", "cancelled"]
FILTER = Query(None, alias="filter", description="Only files in this status.")


@router.post("/files", dependencies=INFERENCE)
async def add_file(store_id: str, request: Request) -> JSONResponse:
    """Add an uploaded file (`file_id`, optional `attributes` and `chunking_strategy`): `in_progress` until its
    ingestion job has parsed, chunked, embedded and stored it."""
    body = await body_of(request, AddFile)
    return answer(await off_loop(retrieval_of(request).add_file, store_id, body))


@router.get("/files", dependencies=INFERENCE)
async def list_files(store_id: str, request: Request, limit: int = LIMIT, order: Order = ORDER,
                     after: str | None = AFTER, before: str | None = BEFORE,
                     status: Status | None = FILTER) -> JSONResponse:
    service = retrieval_of(request)
    return answer(await off_loop(service.list_store_files, store_id, limit, order, after, before, status))


@router.get("/files/{file_id}", dependencies=INFERENCE)
async def get_file(store_id: str, file_id: str, request: Request) -> JSONResponse:
    """The file's status in the store (`last_error` when it failed), usage, attributes and chunking."""
    return answer(await off_loop(retrieval_of(request).get_store_file, store_id, file_id))


@router.post("/files/{file_id}", dependencies=INFERENCE)
async def update_file(store_id: str, file_id: str, request: Request) -> JSONResponse:
    """New `attributes` (filters see them at once)."""
    body = await body_of(request, UpdateFileAttributes)
    return answer(await off_loop(retrieval_of(request).update_store_file, store_id, file_id, body))


@router.get("/files/{file_id}/content", dependencies=INFERENCE)
async def file_content(store_id: str, file_id: str, request: Request) -> JSONResponse:
    """The file's chunks as stored, in order."""
    return answer(await off_loop(retrieval_of(request).store_file_content, store_id, file_id))


@router.delete("/files/{file_id}", dependencies=INFERENCE)
async def remove_file(store_id: str, file_id: str, request: Request) -> JSONResponse:
    """The file leaves the store with its chunks; it stays in /v1/files."""
    return answer(await off_loop(retrieval_of(request).delete_store_file, store_id, file_id))


@router.post("/file_batches", dependencies=INFERENCE)
async def add_batch(store_id: str, request: Request) -> JSONResponse:
    """Add several files at once (`file_ids` sharing `attributes` and `chunking_strategy`, or `files` each with
    its own): one ingestion job for them."""
    body = await body_of(request, AddFileBatch)
    return answer(await off_loop(retrieval_of(request).add_batch, store_id, body))


@router.get("/file_batches/{batch_id}", dependencies=INFERENCE)
async def get_batch(store_id: str, batch_id: str, request: Request) -> JSONResponse:
    return answer(await off_loop(retrieval_of(request).get_batch, store_id, batch_id))


@router.post("/file_batches/{batch_id}/cancel", dependencies=INFERENCE)
async def cancel_batch(store_id: str, batch_id: str, request: Request) -> JSONResponse:
    """Files not done become `cancelled` at once; the ingestion job stops after the chunks in flight."""
    return answer(await retrieval_of(request).cancel_batch(store_id, batch_id))


@router.get("/file_batches/{batch_id}/files", dependencies=INFERENCE)
async def batch_files(store_id: str, batch_id: str, request: Request, limit: int = LIMIT, order: Order = ORDER,
                      after: str | None = AFTER, before: str | None = BEFORE,
                      status: Status | None = FILTER) -> JSONResponse:
    service = retrieval_of(request)
    return answer(await off_loop(service.list_store_files, store_id, limit, order, after, before, status, batch_id))
