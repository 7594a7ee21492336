"""A job worker's way into the daemon's `/v1` gateway (distillation's teacher, semantic dedup's embeddings).

The worker is the daemon's child on the same box: the runner gives it the daemon's loopback URL in its spec.
Its credential is a key of its own: an `inference`-scope key the worker creates in the store as it starts
(named `job-<job id>-a<attempt>-<random>`), holds in memory only (never in a file, an argument, the environment
or a log line) and revokes when it ends. So the job's requests are metered and rate-limited apart from the
operator's (the usage report names the job), and the job cannot change anything through the API. A worker
killed before it could revoke its key leaves it active only until the next worker starts: only one job runs at
a time, so every other job key still active then is stale and is revoked (audited as such).
"""

from __future__ import annotations

import re
import secrets
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from appliance.errors import ApplianceError
from appliance.jobs.events import JobCancelled, JobFailed
from appliance.security.keys import KeyNotFound, create_key, list_keys, revoke_key
from appliance.state.store import StateStore

JOB_KEY = re.compile(r"^job-[0-9a-f]{12}-a\d+-[0-9a-f]{4}$")
RETRY_STATUSES = (429, 502, 503, 504)  # busy or restarting: wait and ask again
RETRY_FOR_S = 180.0  # how long one request keeps retrying before the job fails
REQUEST_TIMEOUT_S = 600.0


class GatewayRefused(Exception):
    """The gateway answered a request with a client error (4xx other than 429): this input, not the service."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


class WorkerGateway:
    """`with WorkerGateway(spec, store) as gateway:` posts to the gateway with the job's own key."""

    def __init__(self, spec: dict[str, Any], store: StateStore, actor: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, stop: Callable[[], bool] = lambda: False,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = str(spec.get("daemon_url") or "")
        if not self.url:
            raise JobFailed("this job calls a deployment through the gateway, and the daemon gave its worker no URL")
        self.job_id, self.attempt = str(spec["id"]), int(spec.get("attempt", 1))
        self.store = store
        self.actor = actor or f"job:{self.job_id}"
        self.key_name = f"job-{self.job_id}-a{self.attempt}-{secrets.token_hex(2)}"
        self._sleep = sleep
        self._stop = stop  # true once the job is asked to stop: a request waiting to retry gives up at once
        self._transport = transport  # tests answer without a daemon
        self._client: httpx.Client | None = None

    def __enter__(self) -> WorkerGateway:
        for key in list_keys(self.store):
            if key.revoked_at is None and JOB_KEY.match(key.name):
                revoke_key(self.store, key.id)
                self.store.audit(self.actor, "key.revoke", key.name, {"reason": "stale job key"})
        created = create_key(self.store, self.key_name, "inference")
        self.store.audit(self.actor, "key.create", self.key_name, {"scope": "inference", "for": "gateway calls"})
        self._client = httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S, trust_env=False,
                                    headers={"Authorization": f"Bearer {created.token}"},
                                    limits=httpx.Limits(max_connections=32, max_keepalive_connections=32),
                                    transport=self._transport)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        try:
            revoke_key(self.store, self.key_name)
            self.store.audit(self.actor, "key.revoke", self.key_name, {"reason": "job ended"})
        except KeyNotFound:
            pass  # revoked already (by the operator)
        except ApplianceError as exc:  # the next worker revokes it as stale; the job's own outcome stands
            print(f"job key {self.key_name} not revoked: {exc}", file=sys.stderr)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON answer. Retries while the gateway is busy or the deployment restarts (for RETRY_FOR_S).

        Raises:
            GatewayRefused: a 4xx for this request (too long a prompt, an unknown model, ...).
            JobFailed: the deployment stayed unavailable, or the daemon could not be reached.
        """
        assert self._client is not None, "use WorkerGateway in a with block"
        deadline, wait = time.monotonic() + RETRY_FOR_S, 0.5
        while True:
            try:
                response = self._client.post(path, json=body)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    answer: dict[str, Any] = response.json()
                    return answer
                problem = f"{response.status_code} {_message(response)}"
                if response.status_code not in RETRY_STATUSES:
                    if response.status_code < 500:
                        raise GatewayRefused(response.status_code, _message(response))
                    raise JobFailed(f"{path} on {body.get('model')!r}: {problem}")
                wait = max(wait, float(response.headers.get("Retry-After") or 0))
            if self._stop():
                raise JobCancelled()
            if time.monotonic() + wait > deadline:
                raise JobFailed(f"{path} on {body.get('model')!r} unavailable for {RETRY_FOR_S:.0f} s: {problem}")
            self._sleep(wait)
            wait = min(wait * 2, 10.0)

    def embed(self, model: str, texts: list[str], batch: int = 32,
              progress: Callable[[int, int], None] | None = None) -> list[list[float]]:
        """One vector per text, in order, `batch` texts per request (sent one after another: deterministic)."""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), batch):
            answer = self.post("/v1/embeddings", {"model": model, "input": texts[start:start + batch]})
            data = sorted(answer.get("data", []), key=lambda d: int(d["index"]))
            if len(data) != len(texts[start:start + batch]):
                raise JobFailed(f"/v1/embeddings on {model!r}: {len(data)} vectors for "
                                f"{len(texts[start:start + batch])} texts")
            vectors.extend([float(x) for x in d["embedding"]] for d in data)
            if progress is not None:
                progress(len(vectors), len(texts))
        return vectors
