"""The retrieval service as the daemon wires it: ingestion goes to the daemon's job runner as
`vector-store-ingest` jobs (checked by the kind's pre-flight like any job), and queries are embedded by the store's
embeddings deployment (default `minilm-embeddings`) through the backend client the gateway's health calls use,
straight to the ready process the routing table names."""

from __future__ import annotations

from typing import Any

import httpx

from appliance.core import Appliance
from appliance.deploy.service import Deployments
from appliance.errors import BadRequest, Unavailable
from appliance.jobs.kinds.vector_store_ingest import KIND
from appliance.jobs.runner import JobRunner
from appliance.retrieval.service import RetrievalService
from appliance.retrieval.wiring import Embed

EMBED_TIMEOUT_S = 60.0


class RunnerJobs:
    """`retrieval.wiring.JobQueue` over the daemon's job runner."""

    def __init__(self, appliance: Appliance, runner: JobRunner) -> None:
        self.appliance = appliance
        self.runner = runner

    def submit(self, params: dict[str, Any]) -> str:
        return self.runner.submit(KIND.name, KIND.check(self.appliance, params)).id

    async def cancel(self, job_id: str) -> None:
        await self.runner.cancel(job_id)


def deployment_embedder(deployments: Deployments) -> Embed:
    """Texts to vectors through the named embeddings deployment's ready process.

    Raises (from the returned coroutine):
        Unavailable (503): the deployment is not serving, or its backend failed.
        BadRequest: the name is a chat deployment.
    """

    async def embed(served: str, texts: list[str]) -> list[list[float]]:
        route = deployments.gateway_view.route(served)
        if route is None:
            raise Unavailable(f"the embeddings deployment {served!r} is not serving (see slm-appliance deploy list; "
                              "retrieval_embeddings names it)", code="embeddings_unavailable")
        if not route.process.spec.embeddings:
            raise BadRequest(f"{served!r} is a chat deployment; vector stores embed with a deployment created "
                             "with embeddings: true", code="unsupported_model")
        try:
            response = await route.process.client.post(
                f"{route.process.endpoint}/v1/embeddings",
                json={"model": served, "input": texts, **(route.selector or {})},
                headers=route.process.spec.auth_headers(), timeout=EMBED_TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the embeddings deployment {served!r} did not answer: {exc}",
                              code="embeddings_unavailable") from exc
        if response.status_code != 200:
            raise Unavailable(f"the embeddings deployment {served!r} answered {response.status_code}: "
                              f"{response.text[:200]}", code="embeddings_unavailable")
        data = sorted(response.json()["data"], key=lambda item: item["index"])
        return [list(item["embedding"]) for item in data]

    return embed


def retrieval_service(appliance: Appliance, deployments: Deployments, runner: JobRunner) -> RetrievalService:
    """The service the /v1/files and /v1/vector_stores routes and file_search call (close it at shutdown)."""
    return RetrievalService(appliance.store, appliance.state_dir, appliance.config, RunnerJobs(appliance, runner),
                            deployment_embedder(deployments))
