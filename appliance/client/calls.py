"""Every daemon route the CLI and the TUI call, written once.

`Calls[R, S]` names the routes (`trial_calls.TrialCalls` continues it: shadow, canary, live watch); a
transport gives `_call` and `_stream`. The sync client returns values
(R = Any, S = Iterator[Json]), the async client awaitables and async iterators (R = Awaitable[Any],
S = AsyncIterator[Json]), so a route, its parameters and its timeout are spelled in one place.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar
from urllib.parse import quote

import httpx

Json = dict[str, Any]
Reader = Callable[[httpx.Response], Any]
Form = tuple[dict[str, tuple[str, bytes]], dict[str, str]]  # multipart: files {field: (name, bytes)}, fields
R = TypeVar("R")  # what a call gives: the decoded body, or an awaitable of it
S = TypeVar("S")  # what a stream gives: an iterator of event payloads, sync or async

# Importing copies and hashes a multi-GB file: no read timeout.
IMPORT_TIMEOUT: Final = httpx.Timeout(15.0, read=None)
# Switch, rollback, attach and detach start a backend and may run the eval gate before they answer.
CHANGE_TIMEOUT: Final = 900.0
STREAM_TIMEOUT: Final = httpx.Timeout(15.0, read=None)
# What a daemon too old to publish its SubmitJob schema accepts.
FALLBACK_JOB_TYPES: Final = ("dataset-import",)


def read_json(response: httpx.Response) -> Any:
    return response.json()


def read_text(response: httpx.Response) -> str:
    return response.text


def job_types(schema: Any) -> list[str]:
    """The job types a daemon accepts, from its OpenAPI schema (the enum of SubmitJob.type)."""
    try:
        prop = schema["components"]["schemas"]["SubmitJob"]["properties"]["type"]
    except (KeyError, TypeError):
        return list(FALLBACK_JOB_TYPES)
    if "const" in prop:
        return [str(prop["const"])]
    return [str(t) for t in prop.get("enum", [])] or list(FALLBACK_JOB_TYPES)


def _read_job_types(response: httpx.Response) -> list[str]:
    return job_types(response.json())


def shadow_gate(min_agreement: float | None, min_pairs: int | None) -> Json | None:
    """A switch request's `shadow_gate`: None when neither is given; one left out takes the daemon's default."""
    if min_agreement is None and min_pairs is None:
        return None
    return {k: v for k, v in (("min_agreement", min_agreement), ("min_pairs", min_pairs)) if v is not None}


def _q(name: str) -> str:
    return quote(name)


class Calls(ABC, Generic[R, S]):
    """Named calls; constructing a client does no I/O."""

    base_url: str

    @abstractmethod
    def _call(self, method: str, path: str, *, params: Json | None = None, json: Any = None,
              timeout: float | httpx.Timeout | None = None, read: Reader = read_json, form: Form | None = None) -> R:
        """One request; `timeout` None is the client's default; `read` decodes a successful response; `form`: a
        multipart body (files, fields) instead of `json`."""

    @abstractmethod
    def _stream(self, method: str, path: str, *, json: Any = None) -> S:
        """Server-sent events: each `data:` payload as JSON, until the stream or `[DONE]` ends it."""

    # -- health and system ---------------------------------------------------------------------------
    def health(self) -> R:
        return self._call("GET", "/healthz")

    def hardware(self) -> R:
        return self._call("GET", "/api/v1/hardware")

    def profiles(self) -> R:
        return self._call("GET", "/api/v1/profiles")

    def plan(self, params: str) -> R:
        return self._call("GET", "/api/v1/plan", params={"params": params})

    def openapi(self) -> R:
        return self._call("GET", "/openapi.json")

    def job_types(self) -> R:
        """list[str]: see `job_types`."""
        return self._call("GET", "/openapi.json", read=_read_job_types)

    def metrics(self) -> R:
        return self._call("GET", "/metrics", read=read_text)

    def daemon_log(self, lines: int = 200) -> R:
        return self._call("GET", "/api/v1/logs/daemon", params={"lines": lines}, read=read_text)

    def audit(self, limit: int = 200) -> R:
        return self._call("GET", "/api/v1/audit", params={"limit": limit})

    # -- registry ------------------------------------------------------------------------------------
    def models(self) -> R:
        return self._call("GET", "/api/v1/models")

    def model(self, name: str) -> R:
        return self._call("GET", f"/api/v1/models/{_q(name)}")

    def import_model(self, path: str, name: str) -> R:
        return self._call("POST", "/api/v1/models", json={"path": path, "name": name}, timeout=IMPORT_TIMEOUT)

    def delete_model(self, name: str) -> R:
        return self._call("DELETE", f"/api/v1/models/{_q(name)}")

    # -- datasets ------------------------------------------------------------------------------------
    def datasets(self) -> R:
        return self._call("GET", "/api/v1/datasets")

    def dataset(self, name: str, version: int | None = None) -> R:
        return self._call("GET", f"/api/v1/datasets/{_q(name)}", params={"version": version} if version else None)

    def import_dataset(self, body: Json) -> R:
        """Queues a dataset-import job; gives the job."""
        return self._call("POST", "/api/v1/datasets", json=body)

    # -- jobs ----------------------------------------------------------------------------------------
    def jobs(self, limit: int = 100) -> R:
        return self._call("GET", "/api/v1/jobs", params={"limit": limit})

    def job(self, job_id: str) -> R:
        return self._call("GET", f"/api/v1/jobs/{_q(job_id)}")

    def job_kinds(self) -> R:
        """Each kind of job the daemon runs: name, summary, params JSON schema and the fields a form shows."""
        return self._call("GET", "/api/v1/job-kinds")

    def submit_job(self, job_type: str, params: Json) -> R:
        return self._call("POST", "/api/v1/jobs", json={"type": job_type, "params": params})

    def cancel_job(self, job_id: str) -> R:
        return self._call("POST", f"/api/v1/jobs/{_q(job_id)}/cancel")

    def job_logs(self, job_id: str, lines: int = 200) -> R:
        return self._call("GET", f"/api/v1/jobs/{_q(job_id)}/logs", params={"lines": lines}, read=read_text)

    def job_events(self, job_id: str) -> S:
        """Progress, log and state events until the job ends."""
        return self._stream("GET", f"/api/v1/jobs/{_q(job_id)}/events")

    # -- deployments ---------------------------------------------------------------------------------
    def deployments(self) -> R:
        return self._call("GET", "/api/v1/deployments")

    def deployment(self, name: str) -> R:
        return self._call("GET", f"/api/v1/deployments/{_q(name)}")

    def create_deployment(self, body: Json) -> R:
        return self._call("POST", "/api/v1/deployments", json=body)

    def deployment_action(self, name: str, action: str) -> R:
        """`start` or `stop`."""
        return self._call("POST", f"/api/v1/deployments/{_q(name)}/{action}")

    def delete_deployment(self, name: str) -> R:
        return self._call("DELETE", f"/api/v1/deployments/{_q(name)}")

    def deployment_logs(self, name: str, lines: int = 200) -> R:
        return self._call("GET", f"/api/v1/deployments/{_q(name)}/logs", params={"lines": lines}, read=read_text)

    def switch(self, name: str, body: Json, *, min_agreement: float | None = None,
               min_pairs: int | None = None) -> R:
        """Blue/green to `body["model"]` behind the eval gate; gives the SwitchResult. `min_agreement` or
        `min_pairs` also puts it behind the shadow gate (the other takes the daemon's default): 409
        `shadow_gate_failed` with the numbers when the shadow serving that model agrees less or has fewer pairs."""
        if (gate := shadow_gate(min_agreement, min_pairs)) is not None:
            body = {**body, "shadow_gate": gate}
        return self._call("POST", f"/api/v1/deployments/{_q(name)}/switch", json=body, timeout=CHANGE_TIMEOUT)

    def rollback(self, name: str, body: Json | None = None) -> R:
        return self._call("POST", f"/api/v1/deployments/{_q(name)}/rollback", json=body, timeout=CHANGE_TIMEOUT)

    def history(self, name: str) -> R:
        return self._call("GET", f"/api/v1/deployments/{_q(name)}/history")

    def adapters(self, name: str) -> R:
        return self._call("GET", f"/api/v1/deployments/{_q(name)}/adapters")

    def attach_adapter(self, name: str, body: Json) -> R:
        return self._call("POST", f"/api/v1/deployments/{_q(name)}/adapters", json=body, timeout=CHANGE_TIMEOUT)

    def detach_adapter(self, name: str, served: str) -> R:
        return self._call("DELETE", f"/api/v1/deployments/{_q(name)}/adapters/{_q(served)}",
                          timeout=CHANGE_TIMEOUT)

    def chat(self, model: str, messages: list[Json], max_tokens: int = 256) -> S:
        """Streamed chat completion chunks (OpenAI-shaped) from the gateway."""
        body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True}
        return self._stream("POST", "/v1/chat/completions", json=body)

    # -- keys ----------------------------------------------------------------------------------------
    def keys(self) -> R:
        return self._call("GET", "/api/v1/keys")

    def create_key(self, name: str, scope: str, daily_token_quota: int | None = None) -> R:
        """The key and its token (shown once); `daily_token_quota` None: no quota."""
        body: Json = {"name": name, "scope": scope}
        if daily_token_quota is not None:
            body["daily_token_quota"] = daily_token_quota
        return self._call("POST", "/api/v1/keys", json=body)

    def revoke_key(self, name: str) -> R:
        return self._call("DELETE", f"/api/v1/keys/{_q(name)}")

    def usage(self, since: str | None = None, key: str | None = None, model: str | None = None) -> R:
        """Requests and tokens per key and model since `since` (default: today, UTC), and today's use per key."""
        params = {k: v for k, v in (("since", since), ("key", key), ("model", model)) if v is not None}
        return self._call("GET", "/api/v1/usage", params=params)

    def set_quota(self, name: str, daily_token_quota: int | None) -> R:
        return self._call("PUT", f"/api/v1/keys/{_q(name)}/quota", json={"daily_token_quota": daily_token_quota})

    # -- guardrails and capture ----------------------------------------------------------------------
    def policy(self, name: str) -> R:
        """The deployment's policy in force: a PolicyVersion (version 0: none was ever set)."""
        return self._call("GET", f"/api/v1/deployments/{_q(name)}/policy")

    def set_policy(self, name: str, policy: Json, reason: str | None = None) -> R:
        """A new version of the policy (guardrails and capture), in force for the next request."""
        return self._call("PUT", f"/api/v1/deployments/{_q(name)}/policy", json={"policy": policy, "reason": reason})

    def policy_versions(self, name: str, limit: int = 20) -> R:
        return self._call("GET", f"/api/v1/deployments/{_q(name)}/policy/versions", params={"limit": limit})

    def captures(self, *, deployment: str | None = None, key: str | None = None, since: float | None = None,
                 until: float | None = None, rated: str | None = None, corrected: bool | None = None,
                 sampled: bool | None = None, state: str | None = None, limit: int = 100, offset: int = 0) -> R:
        """The review queue, newest first: `{total, items}`; every filter given must hold (`rated` up or down,
        `sampled` true: items without feedback)."""
        filters = {"deployment": deployment, "key": key, "since": since, "until": until, "rated": rated,
                   "corrected": corrected, "sampled": sampled, "state": state}
        params: Json = {k: v for k, v in filters.items() if v is not None}
        return self._call("GET", "/api/v1/captures", params={**params, "limit": limit, "offset": offset})

    def capture(self, response_id: str) -> R:
        """One captured exchange (redacted) with its feedback and review."""
        return self._call("GET", f"/api/v1/captures/{_q(response_id)}")

    def review_capture(self, response_id: str, action: str, messages: list[Json] | None = None,
                       note: str = "") -> R:
        """`accept`, `edit` (with the whole conversation, ending with the answer), `reject` or `reopen`."""
        body: Json = {"action": action, "note": note}
        if messages is not None:
            body["messages"] = messages
        return self._call("POST", f"/api/v1/captures/{_q(response_id)}/review", json=body)

    def purge_captures(self, *, deployment: str | None = None, key: str | None = None,
                       older_than_s: float | None = None) -> R:
        """Delete the items the filters select (at least one; `older_than_s=0`: all): `{deleted}`."""
        filters = {"deployment": deployment, "key": key, "older_than_s": older_than_s}
        return self._call("DELETE", "/api/v1/captures", params={k: v for k, v in filters.items() if v is not None})

    def sweep_captures(self) -> R:
        """Apply every deployment's retention now: `{removed: {deployment: {reason: count}}}`."""
        return self._call("POST", "/api/v1/captures/sweep")

    def capture_stats(self) -> R:
        return self._call("GET", "/api/v1/captures/stats")

    def export_captures(self, body: Json) -> R:
        """Accepted and edited items into a new dataset version: `{export, job}` (a dataset-import job)."""
        return self._call("POST", "/api/v1/captures/export", json=body)

    def feedback(self, response_id: str, *, rating: str | int | None = None, correction: list[Json] | None = None,
                 comment: str = "", tags: list[str] | None = None) -> R:
        """An app's rating, correction, comment or tags on an answer it was given (inference scope, the key that
        asked)."""
        body: Json = {"response_id": response_id, "comment": comment, "tags": tags or []}
        if rating is not None:
            body["rating"] = rating
        if correction is not None:
            body["correction"] = correction
        return self._call("POST", "/v1/feedback", json=body)
