"""`/v1/vector_stores`, as OpenAI's: create (with `file_ids`, queued for ingestion at once), list, get, update,
delete, and `search` (query, `max_num_results`, attribute `filters`, `ranking_options`). A store's files and
batches are in `vector_store_files_api.py`. The routes parse and call `RetrievalService`; the rules are there."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from appliance.gateway.retrieval_http import AFTER, BEFORE, INFERENCE, LIMIT, ORDER, Order, answer, body_of, off_loop
from appliance.retrieval.requests import CreateVectorStore, SearchRequest, UpdateVectorStore
from appliance.web.state import retrieval_of

router = APIRouter(prefix="/v1/vector_stores", tags=["openai"])


@router.post("", dependencies=INFERENCE)
async def create_store(request: Request) -> JSONResponse:
    """A vector store; its `file_ids` are ingested by a job (the store is `in_progress` until they are done)."""
    body = await body_of(request, CreateVectorStore)
    return answer(await off_loop(retrieval_of(request).create_store, body))


@router.get("", dependencies=INFERENCE)
async def list_stores(request: Request, limit: int = LIMIT, order: Order = ORDER, after: str | None = AFTER,
                      before: str | None = BEFORE) -> JSONResponse:
    return answer(await off_loop(retrieval_of(request).list_stores, limit, order, after, before))


@router.get("/{store_id}", dependencies=INFERENCE)
async def get_store(store_id: str, request: Request) -> JSONResponse:
    """The store with its status (`in_progress` while a file is, `expired`, else `completed`) and file counts."""
    return answer(await off_loop(retrieval_of(request).get_store, store_id))


@router.post("/{store_id}", dependencies=INFERENCE)
async def update_store(store_id: str, request: Request) -> JSONResponse:
    """A new name, metadata or expiry policy."""
    body = await body_of(request, UpdateVectorStore)
    return answer(await off_loop(retrieval_of(request).update_store, store_id, body))


@router.delete("/{store_id}", dependencies=INFERENCE)
async def delete_store(store_id: str, request: Request) -> JSONResponse:
    """The store and its chunks (the files stay in /v1/files)."""
    return answer(await off_loop(retrieval_of(request).delete_store, store_id))


@router.post("/{store_id}/search", dependencies=INFERENCE)
async def search_store(store_id: str, request: Request) -> JSONResponse:
    """The store's best chunks for `query`: hybrid (BM25 and vectors fused by rank; `ranking_options.ranker`
    `none`: vectors only), attribute `filters` applied before ranking, hits under `score_threshold` left out."""
    body = await body_of(request, SearchRequest)
    return answer(await retrieval_of(request).search_store(store_id, body))
