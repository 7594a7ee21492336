"""What the retrieval service is given by the daemon: the job queue it submits ingestion to, the way it embeds a
query, and the backend settings from the configuration."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from appliance.config import ApplianceConfig
from appliance.retrieval.backend import BackendSettings

# (served name of an embeddings deployment, texts) -> one vector per text, in order
Embed = Callable[[str, list[str]], Awaitable[list[list[float]]]]


class JobQueue(Protocol):
    """The daemon's job runner as the service needs it: ingestion jobs are of the kind declared in
    `appliance/jobs/kinds/vector_store_ingest.py` (the daemon passes `runner.submit(KIND.name, params)`)."""

    def submit(self, params: dict[str, Any]) -> str:
        """Queue an ingestion job with these params (`vector_store_id`, `file_ids`); its id."""

    async def cancel(self, job_id: str) -> None:
        """Ask a queued or running job to stop (a no-op for one that has ended)."""


def backend_settings(config: ApplianceConfig, state_dir: Path) -> BackendSettings:
    """The backend new stores go to, and where each backend is, from the configuration. Qdrant's local mode is
    there when Qdrant is the backend without a URL, or when its folder is configured by name (stores made there
    stay reachable while new ones go to sqlite-vec)."""
    key = config.retrieval_qdrant_api_key
    qdrant_path = None
    if config.retrieval_qdrant_url is None and (config.retrieval_backend == "qdrant"
                                                or config.retrieval_qdrant_path is not None):
        qdrant_path = str(config.retrieval_qdrant_path or state_dir / "qdrant")
    return BackendSettings(kind=config.retrieval_backend, sqlite_path=str(state_dir / "vectors.db"),
                           qdrant_url=config.retrieval_qdrant_url,
                           qdrant_api_key=key.get_secret_value() if key is not None else None,
                           qdrant_path=qdrant_path,
                           shards=config.retrieval_qdrant_shards, replicas=config.retrieval_qdrant_replicas)
