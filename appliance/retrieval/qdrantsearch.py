"""Hybrid search on the Qdrant backend: per store (collection), the dense KNN and the sparse (BM25-like) lists
under the store's payload filter, the cosine of keyword-only hits from their stored vectors, then
`backend.ranked` fuses by reciprocal rank, exactly as on sqlite-vec."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from appliance.retrieval.backend import Query, ranked
from appliance.retrieval.models import Hit
from appliance.retrieval.qdrant import sparse
from appliance.retrieval.qdrantfilters import store_filter


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return max(0.0, min(1.0, dot / norm)) if norm else 0.0


def _lists(client: Any, models: Any, store_id: str, query: Query) -> tuple[list[Any], list[Any]]:
    # One collection per store: the store's own condition only matters beside attribute filters (and local mode
    # checks every condition in Python, point by point).
    where = store_filter(store_id, query.filters) if query.filters is not None else None
    dense = client.query_points(store_id, query=list(query.vector), using="dense", query_filter=where,
                                limit=query.candidates, with_payload=True).points
    keyword: list[Any] = []
    indices, values = sparse(query.text, query=True)
    if query.hybrid and indices:
        keyword = client.query_points(store_id, query=models.SparseVector(indices=indices, values=values),
                                      using="text", query_filter=where, limit=query.candidates,
                                      with_payload=True).points
    return list(dense), list(keyword)


def search(client: Any, models: Any, query: Query) -> list[Hit]:
    dense: list[Any] = []
    keyword: list[Any] = []
    for store_id in dict.fromkeys(query.store_ids):
        if not client.collection_exists(store_id):
            continue
        more_dense, more_keyword = _lists(client, models, store_id, query)
        dense += more_dense
        keyword += more_keyword
    dense = sorted(dense, key=lambda p: -p.score)[:query.candidates]
    keyword = sorted(keyword, key=lambda p: -p.score)[:query.candidates]
    points = {str(p.id): p for p in [*keyword, *dense]}
    cosine = {str(p.id): max(0.0, min(1.0, float(p.score))) for p in dense}
    missing = [p for p in keyword if str(p.id) not in cosine]
    for store_id in {p.payload["store_id"] for p in missing}:
        ids = [p.id for p in missing if p.payload["store_id"] == store_id]
        for point in client.retrieve(store_id, ids=ids, with_vectors=["dense"]):
            vector = point.vector["dense"] if isinstance(point.vector, dict) else point.vector
            cosine[str(point.id)] = _cosine(vector, query.vector)
    order = ranked(query, [str(p.id) for p in keyword], [str(p.id) for p in dense], cosine)
    return [Hit(vector_store_id=p.payload["store_id"], file_id=p.payload["file_id"],
                filename=p.payload.get("filename", ""), score=cosine.get(i, 0.0), text=p.payload["text"],
                attributes=dict(p.payload.get("attributes") or {}), chunk_id=i, seq=int(p.payload["seq"]))
            for i in order if (p := points[i]) is not None]
