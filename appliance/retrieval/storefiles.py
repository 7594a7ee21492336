"""The files of a vector store and its batches: adding (rows `in_progress`, then one ingestion job for them),
reading, attributes, content, removing, cancelling a batch. Part of `RetrievalService` (a mixin: it uses the
service's store, files, jobs and backends)."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Literal

from appliance.errors import BadRequest, NotFound
from appliance.retrieval.files import FileStore
from appliance.retrieval.ids import new_batch_id
from appliance.retrieval.models import (
    Attributes,
    ChunkingStrategy,
    FileContentPage,
    FileContentPart,
    FileStatus,
    ListPage,
    VectorStoreFile,
    VectorStoreFileBatch,
    VectorStoreFileDeleted,
)
from appliance.retrieval.requests import AddFile, AddFileBatch, UpdateFileAttributes, resolve_chunking
from appliance.retrieval.rows import batch, file_status, page_rows, store_file, store_row
from appliance.retrieval.wiring import JobQueue
from appliance.state.store import StateStore

if TYPE_CHECKING:
    from appliance.retrieval.backend import VectorBackend

Entry = tuple[str, Attributes | None, ChunkingStrategy]  # file id, attributes, chunking


class StoreFiles:
    store: StateStore
    files: FileStore
    jobs: JobQueue

    def backend(self, kind: str) -> VectorBackend:
        raise NotImplementedError

    def queue_files(self, store_id: str, entries: list[Entry], batch_id: str | None) -> str:
        """Rows `in_progress` for these files (a file already there is ingested again, unless it is still in
        progress), then one ingestion job for them; the job's id."""
        now = time.time()
        with self.store.transaction() as conn:
            for file_id, attributes, chunking in entries:
                conn.execute(
                    "INSERT INTO vector_store_files(vector_store_id, file_id, created_at, status, attributes, "
                    "chunking, batch_id, updated_at) VALUES(?, ?, ?, 'in_progress', ?, ?, ?, ?) "
                    "ON CONFLICT(vector_store_id, file_id) DO UPDATE SET status = 'in_progress', last_error = NULL, "
                    "attributes = excluded.attributes, chunking = excluded.chunking, batch_id = excluded.batch_id, "
                    "job_id = NULL, chunks = 0, done = 0, usage_bytes = 0, updated_at = excluded.updated_at",
                    (store_id, file_id, int(now), json.dumps(attributes) if attributes is not None else None,
                     chunking.model_dump_json(), batch_id, now))
        job_id = self.jobs.submit({"vector_store_id": store_id, "file_ids": [e[0] for e in entries]})
        with self.store.transaction() as conn:
            conn.executemany("UPDATE vector_store_files SET job_id = ? WHERE vector_store_id = ? AND file_id = ? "
                             "AND job_id IS NULL", [(job_id, store_id, e[0]) for e in entries])
            if batch_id is not None:
                conn.execute("UPDATE vector_store_file_batches SET job_id = ? WHERE id = ?", (job_id, batch_id))
        return job_id

    def _entries(self, store_id: str, adds: list[AddFile]) -> list[Entry]:
        default = ChunkingStrategy.model_validate_json(store_row(self.store, store_id)["chunking"])
        seen: set[str] = set()
        entries: list[Entry] = []
        for add in adds:
            self.files.get(add.file_id)
            if add.file_id in seen:
                raise BadRequest(f"file {add.file_id!r} is listed twice", param="file_ids")
            seen.add(add.file_id)
            entries.append((add.file_id, add.attributes, resolve_chunking(add.chunking_strategy, default)))
        return entries

    def add_file(self, store_id: str, request: AddFile) -> VectorStoreFile:
        current = self.store.query_one("SELECT * FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?",
                                       (store_id, request.file_id))
        if current is not None and file_status(self.store, current)[0] == "in_progress":
            return store_file(self.store, current)
        self.queue_files(store_id, self._entries(store_id, [request]), None)
        return self.get_store_file(store_id, request.file_id)

    def add_batch(self, store_id: str, request: AddFileBatch) -> VectorStoreFileBatch:
        try:
            adds = request.entries()
        except ValueError as exc:
            raise BadRequest(str(exc), param="file_ids") from exc
        entries = self._entries(store_id, adds)
        batch_id = new_batch_id()
        with self.store.transaction() as conn:
            conn.execute("INSERT INTO vector_store_file_batches(id, vector_store_id, created_at) VALUES(?, ?, ?)",
                         (batch_id, store_id, int(time.time())))
        self.queue_files(store_id, entries, batch_id)
        return self.get_batch(store_id, batch_id)

    def get_batch(self, store_id: str, batch_id: str) -> VectorStoreFileBatch:
        row = self.store.query_one("SELECT * FROM vector_store_file_batches WHERE id = ? AND vector_store_id = ?",
                                   (batch_id, store_id))
        if row is None:
            raise NotFound(f"no file batch {batch_id!r} in vector store {store_id!r}", param="batch_id")
        return batch(self.store, row)

    async def cancel_batch(self, store_id: str, batch_id: str) -> VectorStoreFileBatch:
        """Files not done yet become `cancelled` at once; the job is asked to stop (it skips cancelled files)."""
        found = self.get_batch(store_id, batch_id)
        with self.store.transaction() as conn:
            conn.execute("UPDATE vector_store_file_batches SET cancelled = 1 WHERE id = ?", (batch_id,))
            conn.execute("UPDATE vector_store_files SET status = 'cancelled', updated_at = ? WHERE batch_id = ? "
                         "AND status = 'in_progress'", (time.time(), batch_id))
        row = self.store.query_one("SELECT job_id FROM vector_store_file_batches WHERE id = ?", (found.id,))
        if row is not None and row["job_id"]:
            await self.jobs.cancel(row["job_id"])
        return self.get_batch(store_id, batch_id)

    def list_store_files(self, store_id: str, limit: int = 20, order: Literal["asc", "desc"] = "desc",
                         after: str | None = None, before: str | None = None, status: FileStatus | None = None,
                         batch_id: str | None = None) -> ListPage[VectorStoreFile]:
        """`GET /v1/vector_stores/{id}/files` (and a batch's files with `batch_id`), `filter` as `status`."""
        store_row(self.store, store_id)
        if batch_id is not None:
            self.get_batch(store_id, batch_id)
        direction = "DESC" if order == "desc" else "ASC"
        rows = self.store.query("SELECT * FROM vector_store_files WHERE vector_store_id = ? AND (? IS NULL OR "
                                f"batch_id = ?) ORDER BY created_at {direction}, rowid {direction}",
                                (store_id, batch_id, batch_id))
        found = [store_file(self.store, r) for r in rows]
        found = [f for f in found if status is None or f.status == status]
        items, more = page_rows([f.model_dump() for f in found], "id", limit, after, before)
        data = [VectorStoreFile.model_validate(i) for i in items]
        return ListPage[VectorStoreFile](data=data, first_id=data[0].id if data else None,
                                         last_id=data[-1].id if data else None, has_more=more)

    def get_store_file(self, store_id: str, file_id: str) -> VectorStoreFile:
        store_row(self.store, store_id)
        row = self.store.query_one("SELECT * FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?",
                                   (store_id, file_id))
        if row is None:
            raise NotFound(f"file {file_id!r} is not in vector store {store_id!r}", param="file_id")
        return store_file(self.store, row)

    def update_store_file(self, store_id: str, file_id: str, request: UpdateFileAttributes) -> VectorStoreFile:
        """New attributes, in the row and on the file's stored chunks (filters see them at once)."""
        self.get_store_file(store_id, file_id)
        attributes = request.attributes
        with self.store.transaction() as conn:
            conn.execute("UPDATE vector_store_files SET attributes = ?, updated_at = ? WHERE vector_store_id = ? "
                         "AND file_id = ?", (json.dumps(attributes) if attributes is not None else None,
                                             time.time(), store_id, file_id))
        self.backend(store_row(self.store, store_id)["backend"]).set_attributes(store_id, file_id, attributes or {})
        return self.get_store_file(store_id, file_id)

    def store_file_content(self, store_id: str, file_id: str) -> FileContentPage:
        """The file's chunks as stored, in order (they overlap as the chunking strategy says)."""
        self.get_store_file(store_id, file_id)
        texts = self.backend(store_row(self.store, store_id)["backend"]).file_texts(store_id, file_id)
        return FileContentPage(data=[FileContentPart(text=t) for t in texts])

    def remove_from_store(self, store_id: str, file_id: str) -> None:
        row = store_row(self.store, store_id)
        with self.store.transaction() as conn:
            conn.execute("DELETE FROM vector_store_files WHERE vector_store_id = ? AND file_id = ?",
                         (store_id, file_id))
        self.backend(row["backend"]).delete_file(store_id, file_id)

    def delete_store_file(self, store_id: str, file_id: str) -> VectorStoreFileDeleted:
        """The file leaves the store (its chunks too); the file itself stays in /v1/files."""
        self.get_store_file(store_id, file_id)
        self.remove_from_store(store_id, file_id)
        return VectorStoreFileDeleted(id=file_id)
