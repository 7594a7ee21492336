"""The Qdrant backend: for more than one box (HNSW, payload filters, sharding and replication across a cluster's
nodes), chosen with `retrieval_backend = "qdrant"` and a `retrieval_qdrant_url` (+ key). Without a URL it runs
`qdrant-client`'s local mode in a folder: the same client API, no server, one process at a time (the daemon and
a job's worker take turns: each operation opens the folder, waiting while the other holds it, and closes it).

One collection per vector store (named by its id), a dense vector `dense` (cosine; HNSW on a server) and a sparse
vector `text` (term frequencies, saturated as BM25's with k1 = 1.2, b = 0; the collection's IDF modifier weighs
them), so both lists of the hybrid search come from Qdrant and are fused here as on sqlite-vec. Point ids are the
chunk ids (UUIDs): an upsert of the same chunk replaces it.
"""

from __future__ import annotations

import re
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

from appliance.retrieval.backend import BackendSettings, Query, StoredChunk
from appliance.retrieval.errors import BackendUnavailable
from appliance.retrieval.models import Attributes, Hit
from appliance.retrieval.qdrantfilters import store_filter

K1 = 1.2
LOCK_WAIT_S = 120.0
_TERM = re.compile(r"\w+", re.UNICODE)


def sparse(text: str, query: bool = False) -> tuple[list[int], list[float]]:
    """Hashed terms of `text`: BM25-saturated frequencies for a chunk, 1 per distinct term for a query."""
    counts = Counter(zlib.crc32(t.lower().encode()) for t in _TERM.findall(text))
    indices = sorted(counts)
    if query:
        return indices, [1.0] * len(indices)
    return indices, [counts[i] * (K1 + 1) / (counts[i] + K1) for i in indices]


class QdrantBackend:
    kind: Literal["qdrant"] = "qdrant"

    def __init__(self, settings: BackendSettings, hold: bool = False) -> None:
        try:
            from qdrant_client import QdrantClient, models
        except ImportError as exc:
            raise BackendUnavailable("qdrant-client is not installed") from exc
        self.settings = settings
        self._models = models
        self._factory = QdrantClient
        self._hold = hold or settings.qdrant_url is not None  # a server's client is kept; a local folder is not
        self._client: Any = None

    def _open(self) -> Any:
        if self.settings.qdrant_url is not None:
            key = self.settings.qdrant_api_key
            return self._factory(url=self.settings.qdrant_url, api_key=key, timeout=60)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                return self._factory(path=self.settings.qdrant_path)
            except RuntimeError as exc:
                if "already accessed" not in str(exc) or time.monotonic() > deadline:
                    raise BackendUnavailable(f"Qdrant local folder busy: {exc}") from exc
                time.sleep(0.05)

    @contextmanager
    def _session(self) -> Iterator[Any]:
        if self._client is not None:
            yield self._client
            return
        client = self._open()
        if self._hold:
            self._client = client
            yield client
            return
        try:
            yield client
        finally:
            client.close()

    def _ensure(self, client: Any, store_id: str, dims: int) -> None:
        if client.collection_exists(store_id):
            return
        m = self._models
        client.create_collection(
            store_id, vectors_config={"dense": m.VectorParams(size=dims, distance=m.Distance.COSINE)},
            sparse_vectors_config={"text": m.SparseVectorParams(modifier=m.Modifier.IDF)},
            shard_number=self.settings.shards, replication_factor=self.settings.replicas)
        if self.settings.qdrant_url is not None:  # payload indexes: a server's filters use them
            for key in ("store_id", "file_id"):
                client.create_payload_index(store_id, key, field_schema=m.PayloadSchemaType.KEYWORD)

    def _point(self, chunk: StoredChunk) -> Any:
        m = self._models
        indices, values = sparse(chunk.text)
        return m.PointStruct(id=chunk.id, vector={"dense": list(chunk.vector),
                                                  "text": m.SparseVector(indices=indices, values=values)},
                             payload={"store_id": chunk.store_id, "file_id": chunk.file_id,
                                      "filename": chunk.filename, "seq": chunk.seq, "text": chunk.text,
                                      "attributes": chunk.attributes})

    def upsert(self, chunks: Sequence[StoredChunk]) -> None:
        if not chunks:
            return
        with self._session() as client:
            for store_id in {c.store_id for c in chunks}:
                mine = [c for c in chunks if c.store_id == store_id]
                self._ensure(client, store_id, len(mine[0].vector))
                client.upsert(store_id, points=[self._point(c) for c in mine], wait=True)

    def delete_file(self, store_id: str, file_id: str) -> int:
        with self._session() as client:
            if not client.collection_exists(store_id):
                return 0
            selector = store_filter(store_id, file_id=file_id)
            count = int(client.count(store_id, count_filter=selector, exact=True).count)
            client.delete(store_id, points_selector=self._models.FilterSelector(filter=selector), wait=True)
            return count

    def delete_store(self, store_id: str) -> None:
        with self._session() as client:
            if client.collection_exists(store_id):
                client.delete_collection(store_id)

    def set_attributes(self, store_id: str, file_id: str, attributes: Attributes) -> None:
        with self._session() as client:
            if client.collection_exists(store_id):
                client.set_payload(store_id, payload={"attributes": attributes},
                                   points=store_filter(store_id, file_id=file_id), wait=True)

    def count(self, store_id: str, file_id: str | None = None) -> int:
        with self._session() as client:
            if not client.collection_exists(store_id):
                return 0
            return int(client.count(store_id, count_filter=store_filter(store_id, file_id=file_id),
                                    exact=True).count)

    def _scroll(self, client: Any, store_id: str, file_id: str) -> list[Any]:
        points: list[Any] = []
        offset = None
        while True:
            batch, offset = client.scroll(store_id, scroll_filter=store_filter(store_id, file_id=file_id),
                                          limit=1000, offset=offset, with_payload=True)
            points.extend(batch)
            if offset is None:
                return sorted(points, key=lambda p: int(p.payload["seq"]))

    def chunk_ids(self, store_id: str, file_id: str) -> list[str]:
        with self._session() as client:
            if not client.collection_exists(store_id):
                return []
            return [str(p.id) for p in self._scroll(client, store_id, file_id)]

    def file_texts(self, store_id: str, file_id: str) -> list[str]:
        with self._session() as client:
            if not client.collection_exists(store_id):
                return []
            return [str(p.payload["text"]) for p in self._scroll(client, store_id, file_id)]

    def search(self, query: Query) -> list[Hit]:
        from appliance.retrieval.qdrantsearch import search

        with self._session() as client:
            return search(client, self._models, query)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

