"""Dataset import as a job: loading the model's tokenizer (transformers) belongs in a worker, not the daemon; so
does semantic dedup, which embeds every record through an embeddings deployment (the job's own gateway key)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.datasets.errors import DatasetError
from appliance.datasets.semantic import SemanticOptions
from appliance.datasets.store import DatasetStore
from appliance.jobs.events import Emitter, JobFailed
from appliance.jobs.handlers.gateway import GatewayRefused, WorkerGateway
from appliance.registry.registry import Registry, RegistryError
from appliance.state.store import StateStore

EMBED_BATCH = 32  # texts per /v1/embeddings request


def load_tokenizer(registry: Registry, name: str) -> Any:
    from transformers import AutoTokenizer

    model = registry.get(name)
    path = Path(model.path)
    if model.format == "gguf":
        # transformers rebuilds the tokenizer (and chat template) from the GGUF metadata, offline.
        return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    return AutoTokenizer.from_pretrained(str(path))


def _too_large(exc: Exception) -> bool:
    return "too large" in str(exc)  # llama-server: "input (N tokens) is too large to process"


def embed_batch(gateway: WorkerGateway, deployment: str, texts: list[str]) -> list[list[float]]:
    """The texts' vectors. A batch with a text longer than the model's context (a text of many tokens per
    character) goes again one text at a time, such a text by its first half, quarter ... until it fits."""
    try:
        return gateway.embed(deployment, texts, len(texts))
    except (GatewayRefused, JobFailed) as exc:
        if not _too_large(exc):
            raise JobFailed(f"semantic dedup: {deployment!r} refused the records: {exc}") from exc
    vectors = []
    for text in texts:
        while True:
            try:
                vectors += gateway.embed(deployment, [text], 1)
                break
            except (GatewayRefused, JobFailed) as exc:
                if not _too_large(exc) or len(text) < 2:
                    raise JobFailed(f"semantic dedup: {deployment!r} refused a record: {exc}") from exc
                text = text[:len(text) // 2]
    return vectors


@contextlib.contextmanager
def semantic_options(spec: dict[str, Any], store: StateStore, emitter: Emitter) -> Iterator[SemanticOptions | None]:
    """The semantic dedup of this import, embedding through the gateway with the job's key; None when not asked."""
    params = spec["params"]
    if not params.get("semantic_dedup"):
        yield None
        return
    deployment = str(params["embeddings_deployment"])

    def progress(done: int, total: int) -> None:
        emitter.check_cancelled()
        emitter.progress(phase="embedding", step=done, total=total, message=f"{done}/{total} records embedded")

    with WorkerGateway(spec, store, stop=lambda: emitter.cancel_requested) as gateway:
        def embed(texts: list[str]) -> list[list[float]]:
            vectors: list[list[float]] = []
            for start in range(0, len(texts), EMBED_BATCH):
                vectors += embed_batch(gateway, deployment, texts[start:start + EMBED_BATCH])
                progress(len(vectors), len(texts))
            return vectors

        yield SemanticOptions(embed=embed, threshold=float(params.get("semantic_threshold", 0.9)),
                              embedder=deployment)


def run_dataset_import(spec: dict[str, Any], emitter: Emitter) -> dict[str, Any]:
    params = spec["params"]
    state_dir = Path(spec["state_dir"])
    store = StateStore(state_dir / "state.db").open()
    roots = [Path(r) for r in spec["import_roots"]]
    tokenizer = None
    try:
        if params.get("base_model"):
            emitter.progress(phase="loading tokenizer", message=f"chat template of {params['base_model']}",
                             force=True)
            tokenizer = load_tokenizer(Registry(store, state_dir / "models", roots), params["base_model"])
        emitter.check_cancelled()
        emitter.progress(phase="validating", message=params["path"], force=True)
        with semantic_options(spec, store, emitter) as semantic:
            record = DatasetStore(store, state_dir / "datasets", roots).import_dataset(
                Path(params["path"]), params["name"], tokenizer=tokenizer,
                max_seq_length=params.get("max_seq_length") or spec["profile_max_seq_length"],
                eval_fraction=float(params.get("eval_fraction", 0.1)), seed=int(params.get("seed", 0)),
                strict=bool(params.get("strict", False)), kind=str(params.get("kind") or "sft"), semantic=semantic,
            )
    except (DatasetError, RegistryError) as exc:
        raise JobFailed(str(exc)) from exc
    finally:
        store.close()
    emitter.progress(phase="done", step=1, total=1, message=f"{record.name} v{record.version}", force=True)
    return {"dataset": record.name, "version": record.version, "id": record.id, "kind": record.report.kind,
            "train": record.train_count, "eval": record.eval_count, "invalid": record.records_invalid,
            "duplicates_removed": record.duplicates_removed,
            "semantic_duplicates": record.report.semantic_duplicates}
