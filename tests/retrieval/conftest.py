"""Fixtures of the retrieval tests: a real daemon serving the MiniLM embeddings deployment (shared by the
end-to-end tests), a RetrievalService on its state directory whose jobs go through the daemon's API and whose
query embeddings go through its gateway, and a deterministic stand-in embedder for the fast tests."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.config import ApplianceConfig
from appliance.retrieval.service import RetrievalService
from appliance.testing.daemon import DaemonProcess, wait_deployment
from tests.deploytools import import_model, minilm_gguf

EMBEDDINGS = "minilm-embeddings"
DIMS = 64
# The shared daemon's upload limit: over /v1's 8 MiB body limit (uploads have their own), small enough that the
# 413 test sends little.
MAX_UPLOAD = 10 * 1024 * 1024


def bag_of_words(text: str, dims: int = DIMS) -> list[float]:
    """A deterministic stand-in embedding: hashed words, normalised (shared words → higher cosine)."""
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class ApiJobs:
    """The service's job queue through a daemon's control API."""

    def __init__(self, daemon: DaemonProcess) -> None:
        self.daemon = daemon

    def submit(self, params: dict[str, Any]) -> str:
        from appliance.jobs.kinds.vector_store_ingest import KIND

        response = httpx.post(f"{self.daemon.url}/api/v1/jobs", json={"type": KIND.name, "params": params},
                              headers=self.daemon.admin_headers(), timeout=30)
        assert response.status_code in (200, 201, 202), response.text
        return str(response.json()["id"])

    async def cancel(self, job_id: str) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await client.post(f"{self.daemon.url}/api/v1/jobs/{job_id}/cancel", headers=self.daemon.admin_headers())

    def wait(self, job_id: str, timeout: float = 300) -> dict[str, Any]:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.daemon.get(f"/api/v1/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return dict(job)
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} not done: {job}")


def gateway_embed(daemon: DaemonProcess) -> Any:
    async def embed(model: str, texts: list[str]) -> list[list[float]]:
        async with httpx.AsyncClient(timeout=120) as client:
            response = await client.post(f"{daemon.url}/v1/embeddings", json={"model": model, "input": texts},
                                         headers=daemon.admin_headers())
        response.raise_for_status()
        return [d["embedding"] for d in sorted(response.json()["data"], key=lambda d: d["index"])]

    return embed


def service_on(daemon: DaemonProcess, **config: Any) -> RetrievalService:
    return RetrievalService(_store(daemon), daemon.state_dir, ApplianceConfig(**config), ApiJobs(daemon),
                            gateway_embed(daemon))


def _store(daemon: DaemonProcess) -> Any:
    from appliance.state.store import StateStore

    return StateStore(daemon.state_dir / "state.db").open(check=False)


@pytest.fixture(scope="session")
def embeddings_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon for every end-to-end retrieval test: no starter model, MiniLM served as minilm-embeddings."""
    root = tmp_path_factory.mktemp("retrieval")
    daemon = start_embeddings_daemon(root / "state")
    yield daemon
    daemon.stop()


def start_embeddings_daemon(state_dir: Path) -> DaemonProcess:
    daemon = DaemonProcess(state_dir, env={"SLM_STARTER_MODEL": "false", "SLM_RATE_LIMIT_PER_MINUTE": "100000",
                                           "SLM_RETRIEVAL_MAX_FILE_BYTES": str(MAX_UPLOAD),
                                           # stores a test makes on Qdrant's local mode stay reachable over HTTP
                                           "SLM_RETRIEVAL_QDRANT_PATH": str(state_dir / "qdrant")})
    daemon.start()
    try:
        import_model(daemon, minilm_gguf(state_dir.parent / "all-minilm-l6-v2.f16.gguf"), "all-minilm-l6-v2")
        created = httpx.post(f"{daemon.url}/api/v1/deployments", headers=daemon.admin_headers(), timeout=60,
                             json={"model": "all-minilm-l6-v2", "name": EMBEDDINGS,
                                   "params": {"embeddings": True, "parallel_slots": 2, "context_length": 512}})
        assert created.status_code in (201, 409), created.text  # 409: the daemon deployed it itself
        wait_deployment(daemon, EMBEDDINGS)
    except BaseException:
        daemon.stop()
        raise
    return daemon
