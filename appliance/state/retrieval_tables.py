"""The retrieval tables (migration 15; `appliance.retrieval` reads and writes them).

- `retrieval_files`: one row per uploaded file (`/v1/files`); the bytes live in `state_dir/files/<id>`.
- `vector_stores`: one row per store; `chunking` (JSON, the store's default strategy), `backend` (`sqlite-vec`
  or `qdrant`: where its chunks live), `embeddings` (the served name its vectors come from) and `dims` (set by the
  first ingestion).
- `vector_store_files`: a file in a store: `status`, `last_error` (JSON), `attributes` (JSON), `chunking`
  (JSON), the `batch_id` and `job_id` that added it, and the per-file cursor: `chunks` (how many the file makes)
  and `done` (chunks 0..done-1 are stored), so a resumed job goes on from `done`.
- `vector_store_file_batches`: a batch (`cancelled` once asked); its counts come from its files' rows.

The chunks themselves are not in state.db: `state_dir/vectors.db` (sqlite-vec) or Qdrant holds them.
"""

from __future__ import annotations

MIGRATION_TITLE = "retrieval: files, vector stores, their files and batches (appliance.retrieval)"
MIGRATION_SQL = """
CREATE TABLE retrieval_files (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
CREATE TABLE vector_stores (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    description TEXT,
    created_at INTEGER NOT NULL,
    last_active_at INTEGER NOT NULL,
    metadata TEXT,
    expires_after TEXT,
    chunking TEXT NOT NULL,
    backend TEXT NOT NULL CHECK (backend IN ('sqlite-vec', 'qdrant')),
    embeddings TEXT NOT NULL,
    dims INTEGER
);
CREATE TABLE vector_store_files (
    vector_store_id TEXT NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    file_id TEXT NOT NULL REFERENCES retrieval_files(id),
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_progress', 'completed', 'cancelled', 'failed')),
    last_error TEXT,
    attributes TEXT,
    chunking TEXT NOT NULL,
    batch_id TEXT,
    job_id TEXT,
    chunks INTEGER NOT NULL DEFAULT 0,
    done INTEGER NOT NULL DEFAULT 0,
    usage_bytes INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (vector_store_id, file_id)
);
CREATE INDEX vector_store_files_by_file ON vector_store_files(file_id);
CREATE INDEX vector_store_files_by_batch ON vector_store_files(batch_id);
CREATE TABLE vector_store_file_batches (
    id TEXT PRIMARY KEY,
    vector_store_id TEXT NOT NULL REFERENCES vector_stores(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    job_id TEXT,
    cancelled INTEGER NOT NULL DEFAULT 0
);
"""
