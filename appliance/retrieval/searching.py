"""The search path of `RetrievalService.search`: check the stores, embed the query once per embeddings model,
ask each store's backend (off the event loop), merge, and note the stores' last activity (their expiry counts
from it)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from appliance.errors import BadRequest
from appliance.retrieval.backend import Query
from appliance.retrieval.errors import VectorStoreExpired
from appliance.retrieval.filters import Filter, parse_filter
from appliance.retrieval.models import Hit
from appliance.retrieval.rows import expires_at, store_row
from appliance.retrieval.tokens import ESTIMATE
from appliance.validation import where_and_why

if TYPE_CHECKING:
    from appliance.retrieval.service import RetrievalService

QUERY_TOKENS = 400  # an estimate, kept under the embeddings model's 512 positions


def _filter(filters: object) -> Filter | None:
    try:
        return parse_filter(filters)  # type: ignore[arg-type]
    except ValidationError as exc:
        where, why = where_and_why(exc)
        raise BadRequest(f"filters{'.' + where if where else ''}: {why}", param="filters") from exc
    except (ValueError, AttributeError) as exc:
        raise BadRequest(f"filters: {exc}", param="filters") from exc


def _groups(service: RetrievalService, store_ids: list[str]) -> dict[tuple[str, str], list[str]]:
    """Stores grouped by (embeddings model, backend)."""
    groups: dict[tuple[str, str], list[str]] = {}
    now = time.time()
    for store_id in dict.fromkeys(store_ids):
        row = store_row(service.store, store_id)
        ends = expires_at(row)
        if ends is not None and ends <= now:
            raise VectorStoreExpired(f"vector store {store_id!r} expired at {ends}", param="vector_store_ids")
        groups.setdefault((row["embeddings"], row["backend"]), []).append(store_id)
    return groups


def _merge(found: list[list[Hit]], query: Query, ranker: str) -> list[Hit]:
    """Hits from several groups: by score when they come from different backends or models (their fused ranks
    are not comparable), else as ranked."""
    if len(found) == 1:
        return found[0]
    hits = [h for group in found for h in group]
    return sorted(hits, key=lambda h: -h.score)[:query.limit]


async def search_stores(service: RetrievalService, store_ids: list[str], text: str, limit: int, filters: object,
                        score_threshold: float, ranker: str) -> list[Hit]:
    if not store_ids:
        raise BadRequest("no vector store to search", param="vector_store_ids")
    if not 1 <= limit <= 50:
        raise BadRequest("max_num_results must be between 1 and 50", param="max_num_results")
    flt = _filter(filters)
    found: list[list[Hit]] = []
    query: Query | None = None
    vectors: dict[str, list[float]] = {}
    for (model, kind), stores in _groups(service, store_ids).items():
        if model not in vectors:
            vectors[model] = (await service.embed(model, [ESTIMATE.head(text, QUERY_TOKENS)]))[0]
        query = Query(store_ids=stores, text=text, vector=vectors[model], limit=limit, filters=flt,
                      score_threshold=score_threshold, hybrid=ranker != "none")
        backend = service.backend(kind)
        found.append(await asyncio.to_thread(backend.search, query))
    with service.store.transaction() as conn:
        conn.executemany("UPDATE vector_stores SET last_active_at = ? WHERE id = ?",
                         [(int(time.time()), s) for s in dict.fromkeys(store_ids)])
    assert query is not None
    return _merge(found, query, ranker)


def hits_as_json(hits: list[Hit]) -> list[dict[str, Any]]:
    return [h.result().model_dump(mode="json") for h in hits]
