"""One file into one vector store, resumable: parse → chunk → embed (batched) → upsert, with a per-file cursor.

The file's row holds the cursor (`done`: chunks 0..done-1 are stored). Chunks are derived again on every run
(parsing and chunking are deterministic) and their ids come from (store, file, number), so a run that resumes
after a kill -9 re-embeds at most the one batch in flight and upserts it over itself: no chunk is stored twice.
A run starting at 0 first removes whatever the backend holds for the file (a file added again). The row going
away (the file or the store deleted meanwhile) stops the file, and the chunks written for it are removed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from appliance.errors import ApplianceError
from appliance.retrieval.backend import StoredChunk, VectorBackend
from appliance.retrieval.chunking import Chunk, chunk_text
from appliance.retrieval.errors import InvalidFile
from appliance.retrieval.files import FileStore
from appliance.retrieval.ids import chunk_id
from appliance.retrieval.models import ChunkingStrategy, ErrorCode, FileObject
from appliance.retrieval.parse import parse
from appliance.retrieval.tokens import TokenCounter
from appliance.state.store import StateStore

BATCH = 32  # chunks per embeddings request and per upsert
Outcome = Literal["completed", "failed", "skipped", "gone"]


class FileRefused(Exception):
    """This file cannot be ingested (the embeddings deployment refused its text): it fails, the job goes on."""


@dataclass
class Ingestion:
    """What one worker needs to ingest files: the state, where the bytes and chunks are, and how to embed."""

    store: StateStore
    files: FileStore
    backend_for: Callable[[str], VectorBackend]  # by the store's `backend` column
    embed: Callable[[str, list[str]], list[list[float]]]  # (served model, texts) -> vectors
    counter_for: Callable[[str], TokenCounter]  # by the store's embeddings model
    check_cancelled: Callable[[], None] = lambda: None
    progress: Callable[[str, int, int], None] = lambda file_id, done, total: None
    job_id: str = ""
    resumed: dict[str, int] = field(default_factory=dict)  # file -> the cursor it resumed from (when above 0)

    def _row(self, store_id: str, file_id: str) -> Any:
        return self.store.query_one("SELECT f.*, s.backend, s.embeddings, s.dims FROM vector_store_files f JOIN "
                                    "vector_stores s ON s.id = f.vector_store_id WHERE f.vector_store_id = ? AND "
                                    "f.file_id = ?", (store_id, file_id))

    def _finish(self, store_id: str, file_id: str, status: str, error: tuple[ErrorCode, str] | None = None,
                usage: int = 0) -> None:
        last_error = json.dumps({"code": error[0], "message": error[1][:1000]}) if error else None
        with self.store.transaction() as conn:
            conn.execute("UPDATE vector_store_files SET status = ?, last_error = ?, usage_bytes = ?, updated_at = ? "
                         "WHERE vector_store_id = ? AND file_id = ? AND status = 'in_progress'",
                         (status, last_error, usage, time.time(), store_id, file_id))

    def ingest(self, store_id: str, file_id: str) -> Outcome:
        """Ingest one file of one store (its row must be `in_progress` and this job's, or no job's yet)."""
        row = self._row(store_id, file_id)
        if row is None:
            return "gone"
        if row["status"] != "in_progress" or (row["job_id"] and self.job_id and row["job_id"] != self.job_id):
            return "skipped"
        try:
            chunks = self._chunks(row)
        except InvalidFile as exc:
            code: ErrorCode = "unsupported_file" if exc.code == "unsupported_file" else "invalid_file"
            self._finish(store_id, file_id, "failed", (code, exc.message))
            return "failed"
        try:
            return self._store_chunks(row, chunks)
        except FileRefused as exc:
            self._finish(store_id, file_id, "failed", ("server_error", str(exc)))
            return "failed"

    def _chunks(self, row: Any) -> list[Chunk]:
        file_id = row["file_id"]
        text = parse(self.files.content(file_id), self.files.media_type(file_id))
        strategy = ChunkingStrategy.model_validate_json(row["chunking"])
        chunks = chunk_text(text, strategy, self.counter_for(row["embeddings"]))
        if not chunks:
            raise InvalidFile("the file holds no text")
        return chunks

    def _store_chunks(self, row: Any, chunks: list[Chunk]) -> Outcome:
        store_id, file_id, done = row["vector_store_id"], row["file_id"], int(row["done"])
        backend = self.backend_for(row["backend"])
        meta: FileObject = self.files.get(file_id)
        attributes = json.loads(row["attributes"]) if row["attributes"] else {}
        if done == 0:
            backend.delete_file(store_id, file_id)
        else:
            self.resumed[file_id] = done
        self._set_cursor(store_id, file_id, len(chunks), done)
        self.progress(file_id, done, len(chunks))
        dims = row["dims"]
        while done < len(chunks):
            self.check_cancelled()
            part = chunks[done:done + BATCH]
            vectors = self.embed(row["embeddings"], [c.embed_text for c in part])
            dims = self._check_dims(store_id, dims, vectors)
            backend.upsert([StoredChunk(id=chunk_id(store_id, file_id, c.seq), store_id=store_id, file_id=file_id,
                                        filename=meta.filename, seq=c.seq, text=c.text, vector=v,
                                        attributes=attributes) for c, v in zip(part, vectors, strict=True)])
            done += len(part)
            if not self._set_cursor(store_id, file_id, len(chunks), done):
                backend.delete_file(store_id, file_id)  # removed while we wrote: leave nothing behind
                return "gone"
            self.progress(file_id, done, len(chunks))
        usage = sum(len(c.text.encode()) + 4 * int(dims or 0) for c in chunks)
        self._finish(store_id, file_id, "completed", usage=usage)
        return "completed"

    def _set_cursor(self, store_id: str, file_id: str, total: int, done: int) -> bool:
        """The cursor, durable; False when the row is gone or no longer in progress (cancelled)."""
        with self.store.transaction() as conn:
            changed = conn.execute("UPDATE vector_store_files SET chunks = ?, done = ?, updated_at = ? WHERE "
                                   "vector_store_id = ? AND file_id = ? AND status = 'in_progress'",
                                   (total, done, time.time(), store_id, file_id)).rowcount
        return bool(changed)

    def _check_dims(self, store_id: str, dims: int | None, vectors: list[list[float]]) -> int:
        found = {len(v) for v in vectors}
        if len(found) != 1 or (dims is not None and found != {dims}):
            raise ApplianceError(f"vector store {store_id}: embeddings of {sorted(found)} dimensions, the store's "
                                 f"are {dims} (was its embeddings deployment switched to another model?)")
        if dims is None:
            dims = found.pop()
            with self.store.transaction() as conn:
                conn.execute("UPDATE vector_stores SET dims = ? WHERE id = ? AND dims IS NULL", (dims, store_id))
        return int(dims)


def cancel_rest(store: StateStore, store_id: str, file_ids: list[str]) -> None:
    """A cancelled job's files not done yet become `cancelled`."""
    with store.transaction() as conn:
        conn.executemany("UPDATE vector_store_files SET status = 'cancelled', updated_at = ? WHERE "
                         "vector_store_id = ? AND file_id = ? AND status = 'in_progress'",
                         [(time.time(), store_id, f) for f in file_ids])
