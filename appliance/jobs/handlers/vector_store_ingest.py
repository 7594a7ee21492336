"""The `vector-store-ingest` job: each of its files through `retrieval.ingest.Ingestion` (parse, chunk, embed
through the gateway with the job's own key, upsert, cursor), one after another.

A file the embeddings deployment refuses (a 4xx for its text) fails alone; the deployment unavailable for
minutes fails the job (its files read as failed; added again, they start over). On a cancel (SIGTERM), the
batch in flight is finished and its cursor written; then, if the operator asked for the cancel (the job's row
says so), the files not done become `cancelled`; if the daemon is only stopping, they stay `in_progress` and the
job resumes from their cursors at the next start.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from appliance.jobs.events import Emitter, JobCancelled
from appliance.jobs.handlers.gateway import GatewayRefused, WorkerGateway
from appliance.retrieval.backend import BackendSettings, VectorBackend, open_backend
from appliance.retrieval.files import FileStore
from appliance.retrieval.ingest import FileRefused, Ingestion, cancel_rest
from appliance.retrieval.tokens import ESTIMATE, TokenCounter
from appliance.state.store import StateStore

MAX_FILE_BYTES = 1 << 62  # uploads were checked at upload time


def _counter(store: StateStore, served: str) -> TokenCounter:
    """The embeddings model's tokenizer, from its GGUF; the estimate when it cannot be read."""
    row = store.query_one("SELECT m.path FROM deployments d JOIN models m ON m.id = d.model_id WHERE d.name = ?",
                          (served,))
    path = Path(row["path"]) if row is not None else None
    if path is not None and path.is_dir():
        path = next(iter(sorted(path.glob("*.gguf"))), None)
    if path is None or not path.is_file() or path.suffix != ".gguf":
        return ESTIMATE
    try:
        return TokenCounter.from_gguf(path)
    except (OSError, ValueError, KeyError):
        return ESTIMATE


def _embedder(gateway: WorkerGateway) -> Any:
    def embed(model: str, texts: list[str]) -> list[list[float]]:
        try:
            return gateway.embed(model, texts, batch=len(texts))
        except GatewayRefused as exc:
            raise FileRefused(f"the embeddings deployment {model!r} refused: {exc.message}") from exc

    return embed


def _cancel_asked(store: StateStore, job_id: str) -> bool:
    row = store.query_one("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
    return bool(row is not None and row["cancel_requested"])


def run_ingest(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    params, state_dir = spec["params"], Path(spec["state_dir"])
    store_id, file_ids = params["vector_store_id"], list(params["file_ids"])
    store = StateStore(state_dir / "state.db").open(check=False)
    settings = BackendSettings.load(state_dir)
    backends: dict[str, VectorBackend] = {}
    outcomes: dict[str, str] = {}

    def backend_for(kind: str) -> VectorBackend:
        if kind not in backends:
            backends[kind] = open_backend("qdrant" if kind == "qdrant" else "sqlite-vec", settings)
        return backends[kind]

    def progress(file_id: str, done: int, total: int) -> None:
        emitter.progress(phase="ingesting", step=len(outcomes), total=len(file_ids), force=done == total,
                         message=f"{file_id}: {done}/{total} chunks ({len(outcomes)}/{len(file_ids)} files done)")

    try:
        with WorkerGateway(spec, store, stop=lambda: emitter.cancel_requested) as gateway:
            ingestion = Ingestion(store=store, files=FileStore(store, state_dir / "files", MAX_FILE_BYTES),
                                  backend_for=backend_for, embed=_embedder(gateway),
                                  counter_for=cache(lambda served: _counter(store, served)),
                                  check_cancelled=emitter.check_cancelled, progress=progress, job_id=spec["id"])
            for file_id in file_ids:
                outcomes[file_id] = ingestion.ingest(store_id, file_id)
    except JobCancelled:
        if _cancel_asked(store, spec["id"]):
            cancel_rest(store, store_id, [f for f in file_ids if f not in outcomes])
        raise
    finally:
        for backend in backends.values():
            backend.close()
        store.close()
    counts = {k: sum(1 for v in outcomes.values() if v == k) for k in ("completed", "failed", "skipped", "gone")}
    emitter.progress(phase="done", step=len(file_ids), total=len(file_ids), force=True,
                     message=", ".join(f"{n} {k}" for k, n in counts.items() if n))
    return {"vector_store_id": store_id, "files": outcomes, "resumed_from": ingestion.resumed, **counts}
