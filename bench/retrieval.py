"""Retrieval figures, printed (not a timed test):
  - ingestion through the real path: a daemon serving all-MiniLM-L6-v2 (llama-server), the vector-store-ingest
    job (parse, chunk 800/400, embed through the gateway, upsert): chunks/s from store creation to `completed`
  - search latency p50/p99 on sqlite-vec at 10k and 100k chunks (hybrid: BM25 + brute-force KNN fused by RRF,
    10 results; and the KNN alone), and on Qdrant's local mode at 10k; synthetic 384-d vectors and texts (the
    sizes, not the embeddings, are what is measured; each query's vector is also synthetic)
  - up to what size brute-force KNN (k = 50, the candidate pool) stays under 100 ms per query here
Usage: python bench/retrieval.py [--skip-ingest] [--sizes 10000,100000] [--queries 200] [--qdrant-queries 50]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from appliance.retrieval.backend import BackendSettings, Query, StoredChunk, VectorBackend
from appliance.retrieval.ids import chunk_id
from appliance.retrieval.requests import CreateVectorStore
from appliance.retrieval.sqlitevec import KNN_MAX, SqliteVecBackend, _blob

DIMS = 384
WORDS = [f"w{i}" for i in range(20000)]


def synthetic(count: int, seed: int = 0, store: str = "vs_bench") -> list[StoredChunk]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pick = random.Random(seed)
    return [StoredChunk(id=chunk_id(store, f"file-{i // 50}", i), store_id=store, file_id=f"file-{i // 50}",
                        filename=f"doc{i // 50}.md", seq=i, text=" ".join(pick.choices(WORDS, k=120)),
                        vector=vectors[i].tolist(), attributes={"n": i % 7}) for i in range(count)]


def _offset(chunks: list[StoredChunk], start: int) -> list[StoredChunk]:
    return [StoredChunk(id=chunk_id(c.store_id, c.file_id, c.seq + start), store_id=c.store_id,
                        file_id=f"file-{(c.seq + start) // 50}", filename=c.filename, seq=c.seq + start, text=c.text,
                        vector=c.vector, attributes=c.attributes) for c in chunks]


def percentiles(run: Callable[[int], Any], queries: int) -> dict[str, float]:
    times = []
    for i in range(queries):
        started = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p99_ms": round(times[int(0.99 * (len(times) - 1))], 2),
            "mean_ms": round(statistics.fmean(times), 2)}


def queries(count: int) -> list[tuple[str, list[float]]]:
    rng = np.random.default_rng(99)
    pick = random.Random(99)
    vectors = rng.standard_normal((count, DIMS)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [(" ".join(pick.choices(WORDS, k=4)), v.tolist()) for v in vectors]


def search_figures(backend: VectorBackend, count: int) -> dict[str, Any]:
    asked = queries(count)
    hybrid = percentiles(lambda i: backend.search(Query(["vs_bench"], asked[i][0], asked[i][1], limit=10)), count)
    vector = percentiles(lambda i: backend.search(Query(["vs_bench"], asked[i][0], asked[i][1], limit=10,
                                                        hybrid=False)), count)
    return {"hybrid": hybrid, "vector_only": vector}


def knn_ms(backend: SqliteVecBackend, count: int) -> float:
    """p50 of the bare vec0 KNN (k = 50) over the store."""
    asked = queries(count)
    conn = backend._conn

    def one(i: int) -> None:
        conn.execute(f"SELECT rowid, distance FROM vec_{DIMS} WHERE embedding MATCH ? AND k = ? AND store_id = ?",
                     (_blob(asked[i][1]), min(50, KNN_MAX), "vs_bench")).fetchall()

    return percentiles(one, count)["p50_ms"]


def sqlite_sizes(sizes: list[int], count: int, root: Path) -> dict[str, Any]:
    backend = SqliteVecBackend(root / "vectors.db")
    out: dict[str, Any] = {}
    have = 0
    for size in sorted(sizes):
        rate = fill_range(backend, have, size)
        have = size
        out[str(size)] = {"insert_rows_per_s": round(rate), **search_figures(backend, count),
                          "knn_p50_ms": knn_ms(backend, count)}
        print(f"sqlite-vec {size}: {json.dumps(out[str(size)])}", flush=True)
    backend.close()
    return out


def fill_range(backend: VectorBackend, start: int, end: int) -> float:
    started = time.perf_counter()
    for at in range(start, end, 2000):
        backend.upsert(_offset(synthetic(min(2000, end - at), seed=at), at))
    return (end - start) / (time.perf_counter() - started)


def qdrant_local(size: int, count: int, root: Path) -> dict[str, Any]:
    from appliance.retrieval.qdrant import QdrantBackend

    backend = QdrantBackend(BackendSettings(kind="qdrant", qdrant_path=str(root / "qdrant")), hold=True)
    rate = fill_range(backend, 0, size)
    out = {"insert_rows_per_s": round(rate), **search_figures(backend, count)}
    backend.close()
    print(f"qdrant local {size}: {json.dumps(out)}", flush=True)
    return out


def brute_force_limit(sqlite: dict[str, Any]) -> dict[str, Any]:
    """Linear fit of the KNN time against the size: where it reaches 100 ms (and where the hybrid query does)."""
    sizes = sorted(int(s) for s in sqlite)
    out: dict[str, Any] = {}
    for name, value in (("knn", lambda f: f["knn_p50_ms"]), ("hybrid_p99", lambda f: f["hybrid"]["p99_ms"])):
        ys = [value(sqlite[str(s)]) for s in sizes]
        if len(sizes) < 2:
            out[name] = None
            continue
        slope = (ys[-1] - ys[0]) / (sizes[-1] - sizes[0])
        base = ys[0] - slope * sizes[0]
        out[f"{name}_under_100ms_up_to_chunks"] = int((100 - base) / slope) if slope > 0 else None
    return out


def ingest(seeds: int) -> dict[str, Any]:
    """The real path: a daemon with MiniLM, the service creating a store of generated manuals."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the generated manuals live in tests/
    from appliance.testing.daemon import DaemonProcess
    from tests.retrieval.conftest import service_on, start_embeddings_daemon
    from tests.retrieval.corpus import documents

    root = Path(tempfile.mkdtemp(prefix="bench-retrieval-"))
    daemon: DaemonProcess = start_embeddings_daemon(root / "state")
    try:
        service = service_on(daemon)
        files = [service.create_file(f"{s}-{d.filename}", d.data) for s in range(seeds)
                 for d in documents(seed=s, with_docx=True)]
        started = time.perf_counter()
        store = service.create_store(CreateVectorStore(name="bench", file_ids=[f.id for f in files]))
        while service.get_store(store.id).status == "in_progress":
            time.sleep(0.2)
        seconds = time.perf_counter() - started
        chunks = service.backend("sqlite-vec").count(store.id)
        asyncio.run(service.search([store.id], "clamp bolt torque"))
        service.close()
    finally:
        daemon.stop()
    return {"files": len(files), "chunks": chunks, "seconds": round(seconds, 2),
            "chunks_per_s": round(chunks / seconds, 2), "status": "completed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--ingest-seeds", type=int, default=3, help="sets of 4 generated manuals to ingest")
    parser.add_argument("--sizes", default="10000,25000,50000,100000")
    parser.add_argument("--qdrant-size", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--qdrant-queries", type=int, default=50, help="local mode scores in Python: slow")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-vectors-"))
    result: dict[str, Any] = {}
    if not args.skip_ingest:
        result["ingest"] = ingest(args.ingest_seeds)
        print(f"ingest: {json.dumps(result['ingest'])}", flush=True)
    result["sqlite_vec"] = sqlite_sizes([int(s) for s in args.sizes.split(",")], args.queries, root)
    result["brute_force"] = brute_force_limit(result["sqlite_vec"])
    print(f"brute force: {json.dumps(result['brute_force'])}", flush=True)
    if args.qdrant_size:
        result["qdrant_local"] = {str(args.qdrant_size): qdrant_local(args.qdrant_size, args.qdrant_queries, root)}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
