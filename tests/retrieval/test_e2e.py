"""Retrieval end to end on a real daemon (its job runner, worker and gateway; MiniLM served by llama-server):
md, html, pdf and docx files ingested by the `vector-store-ingest` job, the store polled to `completed`, 20
held-out questions answered in the top 5 (recall@5 >= 0.9) on sqlite-vec and on Qdrant's local mode; a kill -9 of
the daemon mid-ingestion resumes after the restart with no chunk stored twice, and the store answers."""

from __future__ import annotations

import asyncio
import time

import pytest

from appliance.retrieval.models import StaticChunking
from appliance.retrieval.requests import CreateVectorStore, SearchRequest, StaticChunkingParam
from appliance.retrieval.service import RetrievalService
from appliance.testing.daemon import DaemonProcess
from tests.retrieval.conftest import ApiJobs, service_on
from tests.retrieval.corpus import answers, documents, questions

pytestmark = pytest.mark.slow


def wait_completed(service: RetrievalService, store_id: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = service.get_store(store_id)
        if store.status != "in_progress":
            assert store.status == "completed", store
            return
        time.sleep(0.5)
    raise TimeoutError(f"{store_id} still in progress: {service.get_store(store_id)}")


def recall_at_5(service: RetrievalService, store_id: str, docs: list) -> tuple[float, list[str]]:
    missed = []
    held_out = questions(docs)
    for question in held_out:
        page = asyncio.run(service.search_store(store_id, SearchRequest(query=question.text, max_num_results=5)))
        if not any(answers(question, part.text) for hit in page.data for part in hit.content):
            missed.append(f"{question.text} -> {[h.filename for h in page.data]}")
    return 1 - len(missed) / len(held_out), missed


@pytest.mark.parametrize("backend", ["sqlite-vec", "qdrant"])
def test_ingest_and_recall(embeddings_daemon: DaemonProcess, backend: str) -> None:
    service = service_on(embeddings_daemon, retrieval_backend=backend)
    docs = documents(with_docx=True)
    uploaded = [service.create_file(d.filename, d.data) for d in docs]
    store = service.create_store(CreateVectorStore(name=f"manuals-{backend}", file_ids=[f.id for f in uploaded]))
    assert store.status == "in_progress" and store.file_counts.total == 4
    wait_completed(service, store.id)
    done = service.get_store(store.id)
    assert done.file_counts.completed == 4 and done.usage_bytes > 0
    backend_impl = service.backend(backend)
    for file in uploaded:
        row = service.store.query_one("SELECT chunks, done FROM vector_store_files WHERE vector_store_id = ? AND "
                                      "file_id = ?", (store.id, file.id))
        ids = backend_impl.chunk_ids(store.id, file.id)
        assert len(ids) == len(set(ids)) == row["chunks"] == row["done"] > 1
    recall, missed = recall_at_5(service, store.id, docs)
    print(f"recall@5 on {backend}: {recall:.2f}; missed: {missed}")
    assert recall >= 0.9, missed
    service.close()


def assert_no_orphans(daemon: DaemonProcess) -> None:
    """Every FTS row and every vector belongs to one chunk row (an upsert replaced, never added)."""
    from appliance.retrieval.sqliteconn import connect

    conn = connect(daemon.state_dir / "vectors.db")
    chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0] == chunks
    assert conn.execute("SELECT count(*) FROM vec_384").fetchone()[0] == chunks
    conn.close()


def test_kill9_mid_ingestion_resumes(embeddings_daemon: DaemonProcess) -> None:
    """Last in this module: it kills the shared daemon (and starts it again)."""
    daemon = embeddings_daemon
    try:
        service = service_on(daemon)
        big = "\n\n".join(documents(seed=s)[0].data.decode() for s in range(8)).encode()
        file = service.create_file("big-manual.md", big)
        small = StaticChunkingParam(static=StaticChunking(max_chunk_size_tokens=250, chunk_overlap_tokens=50))
        store = service.create_store(CreateVectorStore(name="kill9", file_ids=[file.id], chunking_strategy=small))
        row_of = lambda: service.store.query_one(  # noqa: E731
            "SELECT done, chunks, job_id FROM vector_store_files WHERE vector_store_id = ?", (store.id,))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (row_of()["done"] > 0):
            time.sleep(0.05)
        before = row_of()
        assert 0 < before["done"] < before["chunks"], dict(before)
        daemon.kill9()
        daemon.start()
        job = ApiJobs(daemon).wait(before["job_id"])
        assert job["state"] == "succeeded", job
        assert 0 < job["result"]["resumed_from"][file.id] >= before["done"], job["result"]  # not from the start
        wait_completed(service, store.id)
        total = row_of()["chunks"]
        ids = service.backend("sqlite-vec").chunk_ids(store.id, file.id)
        assert len(ids) == len(set(ids)) == total
        assert_no_orphans(daemon)
        page = asyncio.run(service.search_store(store.id, SearchRequest(query="clamp bolt torque", max_num_results=3)))
        assert page.data and "torque" in page.data[0].content[0].text
        service.close()
    finally:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            daemon.start()  # the fixture stops it
