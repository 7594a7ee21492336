"""`RetrievalService`: what the `/v1/files` and `/v1/vector_stores` routes call, and `search`, what the
gateway's `file_search` calls. No HTTP here: the routes parse a body into `requests.*`, call a method, and return
the `models.*` object it gives (`model_dump(mode="json")`); errors are `ApplianceError`s with their status.

Adding files to a store queues one ingestion job for them (`jobs/kinds/vector_store_ingest.py`): their rows start
`in_progress`, the job's worker parses, chunks, embeds and stores each, and marks it `completed` or `failed`.
Synchronous methods touch only SQLite and small files (call them from a worker thread in async routes);
`search`, `search_store` and `cancel_batch` are coroutines.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Literal

from appliance.config import ApplianceConfig
from appliance.errors import BadRequest
from appliance.retrieval.backend import VectorBackend, open_backend
from appliance.retrieval.files import FileStore
from appliance.retrieval.ids import new_store_id
from appliance.retrieval.models import (
    FileDeleted,
    FileObject,
    Hit,
    ListPage,
    SearchPage,
    VectorStore,
    VectorStoreDeleted,
)
from appliance.retrieval.requests import CreateVectorStore, SearchRequest, UpdateVectorStore, resolve_chunking
from appliance.retrieval.rows import page_rows, store_row, vector_store
from appliance.retrieval.storefiles import StoreFiles
from appliance.retrieval.wiring import Embed, JobQueue, backend_settings
from appliance.state.store import StateStore

Order = Literal["asc", "desc"]


class RetrievalService(StoreFiles):
    """Files, vector stores, their files and batches, and search. See the module's docstring."""

    def __init__(self, store: StateStore, state_dir: Path, config: ApplianceConfig, jobs: JobQueue,
                 embed: Embed) -> None:
        self.store = store
        self.state_dir = state_dir
        self.config = config
        self.jobs = jobs
        self.embed = embed
        self.files = FileStore(store, state_dir / "files", config.retrieval_max_file_bytes)
        self.settings = backend_settings(config, state_dir)
        self.settings.save(state_dir)  # the job workers read it (it may hold the Qdrant key: mode 0600)
        self._backends: dict[str, VectorBackend] = {}
        self.files.sweep_orphans()

    def backend(self, kind: str) -> VectorBackend:
        if kind not in self._backends:
            self._backends[kind] = open_backend("qdrant" if kind == "qdrant" else "sqlite-vec", self.settings)
        return self._backends[kind]

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()

    # -- /v1/files ----------------------------------------------------------------------------------------
    def create_file(self, filename: str, data: bytes, purpose: str = "assistants") -> FileObject:
        return self.files.create(filename, data, purpose)

    def get_file(self, file_id: str) -> FileObject:
        return self.files.get(file_id)

    def file_content(self, file_id: str) -> tuple[bytes, str]:
        """The bytes as uploaded, and their media type."""
        return self.files.content(file_id), self.files.media_type(file_id)

    def list_files(self, purpose: str | None = None, limit: int = 10000, order: Order = "desc",
                   after: str | None = None) -> ListPage[FileObject]:
        found = self.files.list_files(purpose)
        if order == "asc":
            found.reverse()
        items, more = page_rows([f.model_dump() for f in found], "id", limit, after, None)
        data = [FileObject.model_validate(i) for i in items]
        return ListPage[FileObject](data=data, first_id=data[0].id if data else None,
                                    last_id=data[-1].id if data else None, has_more=more)

    def delete_file(self, file_id: str) -> FileDeleted:
        """The file leaves every vector store it is in (its chunks too), then goes."""
        self.files.get(file_id)
        for row in self.store.query("SELECT s.id, s.backend FROM vector_store_files f JOIN vector_stores s ON "
                                    "s.id = f.vector_store_id WHERE f.file_id = ?", (file_id,)):
            self.remove_from_store(row["id"], file_id)
        self.files.delete_row(file_id)
        return FileDeleted(id=file_id)

    # -- /v1/vector_stores --------------------------------------------------------------------------------
    def create_store(self, request: CreateVectorStore) -> VectorStore:
        for file_id in request.file_ids:
            self.files.get(file_id)
        store_id, now = new_store_id(), int(time.time())
        chunking = resolve_chunking(request.chunking_strategy)
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO vector_stores(id, name, description, created_at, last_active_at, metadata, "
                         "expires_after, chunking, backend, embeddings) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (store_id, request.name, request.description, now, now,
                          json.dumps(request.metadata) if request.metadata is not None else None,
                          request.expires_after.model_dump_json() if request.expires_after else None,
                          chunking.model_dump_json(), self.settings.kind, self.config.retrieval_embeddings))
        if request.file_ids:
            self.queue_files(store_id, [(f, None, chunking) for f in request.file_ids], None)
        return self.get_store(store_id)

    def get_store(self, store_id: str) -> VectorStore:
        return vector_store(self.store, store_row(self.store, store_id))

    def list_stores(self, limit: int = 20, order: Order = "desc", after: str | None = None,
                    before: str | None = None) -> ListPage[VectorStore]:
        direction = "DESC" if order == "desc" else "ASC"
        rows = self.store.query(f"SELECT * FROM vector_stores ORDER BY created_at {direction}, rowid {direction}")
        rows, more = page_rows(rows, "id", limit, after, before)
        data = [vector_store(self.store, r) for r in rows]
        return ListPage[VectorStore](data=data, first_id=data[0].id if data else None,
                                     last_id=data[-1].id if data else None, has_more=more)

    def update_store(self, store_id: str, request: UpdateVectorStore) -> VectorStore:
        store_row(self.store, store_id)
        changes = request.model_dump(exclude_unset=True)
        with self.store.transaction() as conn:
            if "name" in changes and request.name is not None:
                conn.execute("UPDATE vector_stores SET name = ? WHERE id = ?", (request.name, store_id))
            if "metadata" in changes:
                conn.execute("UPDATE vector_stores SET metadata = ? WHERE id = ?",
                             (json.dumps(request.metadata) if request.metadata is not None else None, store_id))
            if "expires_after" in changes:
                conn.execute("UPDATE vector_stores SET expires_after = ?, last_active_at = ? WHERE id = ?",
                             (request.expires_after.model_dump_json() if request.expires_after else None,
                              int(time.time()), store_id))
        return self.get_store(store_id)

    def delete_store(self, store_id: str) -> VectorStoreDeleted:
        """The rows first (a running ingestion then finds its store gone and stops), then the chunks."""
        row = store_row(self.store, store_id)
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM vector_stores WHERE id = ?", (store_id,))
        self.backend(row["backend"]).delete_store(store_id)
        return VectorStoreDeleted(id=store_id)

    # -- search -------------------------------------------------------------------------------------------
    async def search_store(self, store_id: str, request: SearchRequest) -> SearchPage:
        """`POST /v1/vector_stores/{id}/search`."""
        hits = await self.search([store_id], "\n".join(request.queries()), request.max_num_results,
                                 request.filter(), request.ranking_options.score_threshold,
                                 request.ranking_options.ranker)
        return SearchPage(search_query=request.queries(), data=[h.result() for h in hits])

    async def search(self, store_ids: list[str], query: str, max_num_results: int = 10,
                     filters: object = None, score_threshold: float = 0.0, ranker: str = "auto") -> list[Hit]:
        """The best chunks for `query` across `store_ids` (what `file_search` calls): hybrid (keyword and vector,
        fused by reciprocal rank; `ranker="none"`: vector only), `filters` on the files' attributes (a
        `filters.Filter` or its JSON), those scoring under `score_threshold` (cosine, 0 to 1) left out.

        Raises:
            VectorStoreNotFound (404), VectorStoreExpired (409), BadRequest (a bad filter), BackendUnavailable
            (503), or what `embed` raises when the embeddings deployment cannot answer.
        """
        from appliance.retrieval.searching import search_stores

        if not query.strip():
            raise BadRequest("the query is empty", param="query")
        return await search_stores(self, store_ids, query, max_num_results, filters, score_threshold, ranker)
