"""The rows of vector stores, their files and batches in state.db (migration 15), as API objects. Counts and
statuses are derived from the file rows when read, so they never disagree with them; a file still
`in_progress` whose ingestion job has ended (failed, cancelled, or given up after crashes) reads as failed or
cancelled with the job's reason."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from appliance.retrieval.errors import VectorStoreNotFound
from appliance.retrieval.models import (
    ChunkingStrategy,
    ExpiresAfter,
    FileCounts,
    FileStatus,
    LastError,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileBatch,
)
from appliance.state.store import StateStore

ENDED_JOB = ("failed", "cancelled", "succeeded")
DAY_S = 86400


def _job_end(store: StateStore, job_id: str | None) -> tuple[str, str] | None:
    if not job_id:
        return None
    row = store.query_one("SELECT state, error FROM jobs WHERE id = ?", (job_id,))
    if row is None or row["state"] not in ENDED_JOB:
        return None
    return str(row["state"]), str(row["error"] or "")


def file_status(store: StateStore, row: sqlite3.Row) -> tuple[FileStatus, LastError | None]:
    status: FileStatus = row["status"]
    error = LastError.model_validate(json.loads(row["last_error"])) if row["last_error"] else None
    if status != "in_progress":
        return status, error
    ended = _job_end(store, row["job_id"])
    if ended is None:
        return status, error
    state, reason = ended
    if state == "cancelled":
        return "cancelled", None
    return "failed", LastError(code="server_error", message=f"ingestion job {row['job_id']} {state} before this "
                               f"file was done{': ' + reason if reason else ''}")


def store_file(store: StateStore, row: sqlite3.Row) -> VectorStoreFile:
    status, error = file_status(store, row)
    return VectorStoreFile(id=row["file_id"], vector_store_id=row["vector_store_id"], created_at=row["created_at"],
                           status=status, last_error=error, usage_bytes=row["usage_bytes"],
                           attributes=json.loads(row["attributes"]) if row["attributes"] else None,
                           chunking_strategy=ChunkingStrategy.model_validate(json.loads(row["chunking"])))


def counts(store: StateStore, rows: list[sqlite3.Row]) -> FileCounts:
    found = {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0}
    for row in rows:
        found[file_status(store, row)[0]] += 1
    return FileCounts(**found, total=len(rows))


def store_row(store: StateStore, store_id: str) -> sqlite3.Row:
    row = store.query_one("SELECT * FROM vector_stores WHERE id = ?", (store_id,))
    if row is None:
        raise VectorStoreNotFound(f"no vector store {store_id!r}", param="vector_store_id")
    return row


def expires_at(row: sqlite3.Row) -> int | None:
    if not row["expires_after"]:
        return None
    return int(row["last_active_at"]) + ExpiresAfter.model_validate_json(row["expires_after"]).days * DAY_S


def vector_store(store: StateStore, row: sqlite3.Row) -> VectorStore:
    files = store.query("SELECT * FROM vector_store_files WHERE vector_store_id = ?", (row["id"],))
    file_counts = counts(store, files)
    ends = expires_at(row)
    status = ("expired" if ends is not None and ends <= time.time()
              else "in_progress" if file_counts.in_progress else "completed")
    return VectorStore(id=row["id"], name=row["name"], created_at=row["created_at"], status=status,
                       file_counts=file_counts, usage_bytes=sum(int(f["usage_bytes"]) for f in files),
                       metadata=json.loads(row["metadata"]) if row["metadata"] else None,
                       expires_after=ExpiresAfter.model_validate_json(row["expires_after"])
                       if row["expires_after"] else None, expires_at=ends, last_active_at=row["last_active_at"])


def batch(store: StateStore, row: sqlite3.Row) -> VectorStoreFileBatch:
    files = store.query("SELECT * FROM vector_store_files WHERE batch_id = ?", (row["id"],))
    file_counts = counts(store, files)
    status: FileStatus = "completed"
    if file_counts.in_progress:
        status = "in_progress"
    elif row["cancelled"]:
        status = "cancelled"
    elif file_counts.total and file_counts.failed == file_counts.total:
        status = "failed"
    return VectorStoreFileBatch(id=row["id"], vector_store_id=row["vector_store_id"], created_at=row["created_at"],
                                status=status, file_counts=file_counts)


def page_rows(rows: list[Any], key: str, limit: int, after: str | None, before: str | None) -> tuple[list[Any], bool]:
    """A cursor page of rows already in list order: those after `after` / before `before`, at most `limit`;
    and whether more follow."""
    ids = [r[key] for r in rows]
    if after is not None and after in ids:
        rows = rows[ids.index(after) + 1:]
    if before is not None:
        ids = [r[key] for r in rows]
        rows = rows[:ids.index(before)] if before in ids else rows
        rows = rows[-limit:] if len(rows) > limit else rows
        return rows, False
    return rows[:limit], len(rows) > limit
