"""The embedded backend: `state_dir/vectors.db`, one SQLite file beside state.db, nothing to run.

Tables: `chunks` (integer rowid from the chunk id, the id, store, file, number), `chunks_fts` (FTS5: the text,
same rowid; BM25), `vec_<dims>` (sqlite-vec `vec0`: the vector, same rowid; the store as partition key and the
file as a metadata column, so KNN is per store and filters narrow it exactly), `files` (name and attributes of
each file in each store). KNN is brute force over the store's vectors (no index): exact, and its cost grows
with the store (docs/retrieval.md has the figures). An upsert deletes the chunk's rows and inserts them again in
one transaction: the same chunk twice is one row.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from appliance.retrieval.backend import Query, StoredChunk
from appliance.retrieval.ids import chunk_rowid
from appliance.retrieval.models import Attributes, Hit
from appliance.retrieval.sqliteconn import Driver, connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (rowid INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, store_id TEXT NOT NULL,
                                   file_id TEXT NOT NULL, seq INTEGER NOT NULL, dims INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_file ON chunks(store_id, file_id, seq);
CREATE TABLE IF NOT EXISTS files (store_id TEXT NOT NULL, file_id TEXT NOT NULL, filename TEXT NOT NULL,
                                  attributes TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (store_id, file_id));
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(text, tokenize = 'unicode61 remove_diacritics 2');
"""
KNN_MAX = 4096  # vec0's largest k
_TERM = re.compile(r"\w+", re.UNICODE)


STOPWORDS = frozenset(str.split("""
a about above after again against all am an and any are as at be because been before being below between both
but by can could did do does doing down during each few for from further had has have having he her here hers
him his how i if in into is it its itself just me more most my no nor not now of off on once only or other our
ours out over own same she should so some such than that the their theirs them then there these they this
those through to too under until up very was we were what when where which while who whom why will with would
you your yours
"""))


def fts_query(text: str) -> str:
    """A free-text query as an FTS5 expression: every word quoted (no operators from the user), OR-ed; common
    English words left out (they match nearly every chunk and cost a BM25 score each) unless nothing else is."""
    terms = list(dict.fromkeys(t.lower() for t in _TERM.findall(text)))
    kept = [t for t in terms if t not in STOPWORDS] or terms
    return " OR ".join(f'"{t}"' for t in kept)


def _blob(vector: Sequence[float]) -> bytes:
    import sqlite_vec

    return bytes(sqlite_vec.serialize_float32(list(vector)))


class SqliteVecBackend:
    kind: Literal["sqlite-vec"] = "sqlite-vec"

    def __init__(self, path: Path, driver: Driver | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._conn = connect(path, driver)
        self._lock = threading.RLock()
        self._conn.executescript(SCHEMA)
        self._tables = self._vec_tables()

    def _vec_tables(self) -> set[int]:
        rows = self._conn.execute("SELECT name FROM sqlite_master WHERE name GLOB 'vec_[0-9]*' AND sql IS NOT NULL"
                                  ).fetchall()
        return {int(r[0].split("_")[1]) for r in rows if r[0].split("_")[1].isdigit()}

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _vec_table(self, dims: int) -> str:
        if dims not in self._tables:
            self._conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS vec_{int(dims)} USING vec0(store_id text "
                               f"partition key, file_id text, embedding float[{int(dims)}] distance_metric=cosine)")
            self._tables.add(dims)
        return f"vec_{int(dims)}"

    def _delete_rows(self, conn: Any, rowids: list[int]) -> None:
        for start in range(0, len(rowids), 500):
            part = rowids[start:start + 500]
            marks = ",".join("?" * len(part))
            conn.execute(f"DELETE FROM chunks WHERE rowid IN ({marks})", part)
            conn.execute(f"DELETE FROM chunks_fts WHERE rowid IN ({marks})", part)
            for dims in self._tables:
                conn.execute(f"DELETE FROM vec_{dims} WHERE rowid IN ({marks})", part)

    def upsert(self, chunks: Sequence[StoredChunk]) -> None:
        if not chunks:
            return
        with self._write() as conn:
            table = self._vec_table(len(chunks[0].vector))
            rows = [(chunk_rowid(c.id), c) for c in chunks]
            self._delete_rows(conn, [r for r, _ in rows])
            conn.executemany("INSERT INTO chunks(rowid, id, store_id, file_id, seq, dims) VALUES(?, ?, ?, ?, ?, ?)",
                             [(r, c.id, c.store_id, c.file_id, c.seq, len(c.vector)) for r, c in rows])
            conn.executemany("INSERT INTO chunks_fts(rowid, text) VALUES(?, ?)", [(r, c.text) for r, c in rows])
            conn.executemany(f"INSERT INTO {table}(rowid, store_id, file_id, embedding) VALUES(?, ?, ?, ?)",
                             [(r, c.store_id, c.file_id, _blob(c.vector)) for r, c in rows])
            for key in {(c.store_id, c.file_id): c for c in chunks}.values():
                conn.execute("INSERT INTO files(store_id, file_id, filename, attributes) VALUES(?, ?, ?, ?) "
                             "ON CONFLICT(store_id, file_id) DO UPDATE SET filename = excluded.filename, "
                             "attributes = excluded.attributes",
                             (key.store_id, key.file_id, key.filename, json.dumps(key.attributes)))

    def delete_file(self, store_id: str, file_id: str) -> int:
        with self._write() as conn:
            rowids = [r[0] for r in conn.execute("SELECT rowid FROM chunks WHERE store_id = ? AND file_id = ?",
                                                 (store_id, file_id))]
            self._delete_rows(conn, rowids)
            conn.execute("DELETE FROM files WHERE store_id = ? AND file_id = ?", (store_id, file_id))
        return len(rowids)

    def delete_store(self, store_id: str) -> None:
        with self._write() as conn:
            rowids = [r[0] for r in conn.execute("SELECT rowid FROM chunks WHERE store_id = ?", (store_id,))]
            self._delete_rows(conn, rowids)
            conn.execute("DELETE FROM files WHERE store_id = ?", (store_id,))

    def set_attributes(self, store_id: str, file_id: str, attributes: Attributes) -> None:
        with self._write() as conn:
            conn.execute("UPDATE files SET attributes = ? WHERE store_id = ? AND file_id = ?",
                         (json.dumps(attributes), store_id, file_id))

    def count(self, store_id: str, file_id: str | None = None) -> int:
        sql, args = "SELECT count(*) FROM chunks WHERE store_id = ?", [store_id]
        if file_id is not None:
            sql, args = sql + " AND file_id = ?", [*args, file_id]
        with self._lock:
            return int(self._conn.execute(sql, args).fetchone()[0])

    def chunk_ids(self, store_id: str, file_id: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT id FROM chunks WHERE store_id = ? AND file_id = ? ORDER BY seq", (store_id, file_id))]

    def file_texts(self, store_id: str, file_id: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT f.text FROM chunks c JOIN chunks_fts f ON f.rowid = c.rowid WHERE c.store_id = ? "
                "AND c.file_id = ? ORDER BY c.seq", (store_id, file_id))]

    def search(self, query: Query) -> list[Hit]:
        from appliance.retrieval.sqlitesearch import search

        with self._lock:
            return search(self._conn, self._tables, query)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
