"""Hybrid search on the sqlite-vec backend: per store, the files its attributes filter lets through, KNN over
their vectors (vec0, partition = the store, `file_id IN` the allowed ones) and BM25 over their texts (FTS5), then
`backend.ranked` fuses the two lists by reciprocal rank."""

from __future__ import annotations

import json
from typing import Any

from appliance.retrieval.backend import Query, ranked, similarity
from appliance.retrieval.filters import matches
from appliance.retrieval.models import Hit
from appliance.retrieval.sqlitevec import KNN_MAX, _blob, fts_query


def _allowed(conn: Any, store_id: str, query: Query) -> list[str] | None:
    """The files of a store that pass the filters; None when there is no filter."""
    if query.filters is None:
        return None
    rows = conn.execute("SELECT file_id, attributes FROM files WHERE store_id = ?", (store_id,))
    return [r[0] for r in rows if matches(query.filters, json.loads(r[1]))]


def _knn(conn: Any, table: str, store_id: str, files: list[str] | None, query: Query) -> list[tuple[int, float]]:
    sql = f"SELECT rowid, distance FROM {table} WHERE embedding MATCH ? AND k = ? AND store_id = ?"
    args: list[Any] = [_blob(query.vector), min(query.candidates, KNN_MAX), store_id]
    if files is not None:
        sql += f" AND file_id IN ({','.join('?' * len(files))})"
        args += files
    return [(int(r[0]), float(r[1])) for r in conn.execute(sql, args)]


def _bm25(conn: Any, store_id: str, files: list[str] | None, query: Query) -> list[tuple[int, float]]:
    expression = fts_query(query.text)
    if not expression:
        return []
    # The FTS5 match first (materialized: else SQLite walks the store's chunks and probes FTS5 for each), then
    # the store and the files.
    sql = ("WITH m AS MATERIALIZED (SELECT rowid, rank FROM chunks_fts WHERE chunks_fts MATCH ?) "
           "SELECT m.rowid, m.rank FROM m JOIN chunks c ON c.rowid = m.rowid WHERE c.store_id = ?")
    args: list[Any] = [expression, store_id]
    if files is not None:
        sql += f" AND c.file_id IN ({','.join('?' * len(files))})"
        args += files
    sql += " ORDER BY m.rank LIMIT ?"
    return [(int(r[0]), float(r[1])) for r in conn.execute(sql, [*args, query.candidates])]


def _cosines(conn: Any, table: str, rowids: list[int], query: Query) -> dict[int, float]:
    """Cosine of chunks by rowid: one point lookup each (an `IN` list makes vec0 scan the whole table)."""
    blob, found = _blob(query.vector), {}
    for rowid in rowids:
        row = conn.execute(f"SELECT vec_distance_cosine(embedding, ?) FROM {table} WHERE rowid = ?",
                           (blob, rowid)).fetchone()
        if row is not None:
            found[rowid] = similarity(float(row[0]))
    return found


def _hits(conn: Any, rowids: list[int], cosine: dict[int, float]) -> list[Hit]:
    if not rowids:
        return []
    marks = ",".join("?" * len(rowids))
    rows = conn.execute(
        "SELECT c.rowid, c.id, c.store_id, c.file_id, c.seq, t.text, f.filename, f.attributes FROM chunks c "
        "JOIN chunks_fts t ON t.rowid = c.rowid LEFT JOIN files f ON f.store_id = c.store_id AND f.file_id = "
        f"c.file_id WHERE c.rowid IN ({marks})", rowids).fetchall()
    found = {int(r[0]): r for r in rows}
    return [Hit(vector_store_id=r[2], file_id=r[3], filename=r[6] or "", score=cosine.get(rowid, 0.0), text=r[5],
                attributes=json.loads(r[7] or "{}"), chunk_id=r[1], seq=int(r[4]))
            for rowid in rowids if (r := found.get(rowid)) is not None]


def search(conn: Any, tables: set[int], query: Query) -> list[Hit]:
    dims = len(query.vector)
    if dims not in tables:
        return []
    table = f"vec_{dims}"
    vector: list[tuple[int, float]] = []
    keyword: list[tuple[int, float]] = []
    for store_id in dict.fromkeys(query.store_ids):
        files = _allowed(conn, store_id, query)
        if files == []:
            continue
        vector += _knn(conn, table, store_id, files, query)
        if query.hybrid:
            keyword += _bm25(conn, store_id, files, query)
    vector = sorted(vector, key=lambda p: p[1])[:query.candidates]
    keyword = sorted(keyword, key=lambda p: p[1])[:query.candidates]  # FTS5 rank: lower is better
    cosine = {rowid: similarity(d) for rowid, d in vector}
    cosine.update(_cosines(conn, table, [r for r, _ in keyword if r not in cosine], query))
    order = ranked(query, [str(r) for r, _ in keyword], [str(r) for r, _ in vector],
                   {str(r): c for r, c in cosine.items()})
    return _hits(conn, [int(r) for r in order], cosine)
