"""The daemon's REST API over async httpx: the TUI's only way to the appliance.

Every failure becomes an `ApiError` with a title and a message for a notification; a daemon that cannot be
reached at all is a `DaemonUnreachable`, which the app turns into the reconnecting banner. The transport is a
seam: tests replay recorded responses through it (`httpx.MockTransport`) instead of faking the screens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

Json = dict[str, Any]


class ApiError(Exception):
    """The daemon refused a request; `message` is its own words (OpenAI-shaped error body)."""

    def __init__(self, title: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
        self.status = status


class DaemonUnreachable(ApiError):
    """No answer at all: connection refused, reset or timed out."""


def _message(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return str(error["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:300] or response.reason_phrase


class ApiClient:
    """Named calls for every route the TUI uses. Constructing it does no I/O."""

    def __init__(self, base_url: str, token: str, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 15.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport, timeout=timeout,
                                       headers={"Authorization": f"Bearer {token}"})

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- plumbing ------------------------------------------------------------------------------------
    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            raise DaemonUnreachable("Daemon unreachable", f"{self.base_url}: {exc or type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise ApiError("Request failed", f"{method} {path}: {exc or type(exc).__name__}") from exc
        if response.status_code >= 400:
            raise ApiError(f"{method} {path} → {response.status_code}", _message(response), response.status_code)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError("Bad response", f"{method} {path}: not JSON") from exc

    async def stream_data(self, method: str, path: str, **kwargs: Any) -> AsyncIterator[Json]:
        """Server-sent events: yields each `data:` payload as JSON until the stream (or `[DONE]`) ends."""
        try:
            async with self._http.stream(method, path, timeout=httpx.Timeout(15.0, read=None), **kwargs) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise ApiError(f"{method} {path} → {resp.status_code}", _message(resp), resp.status_code)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # comments (keep-alives) and blank separators
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        return
                    try:
                        yield json.loads(payload)
                    except ValueError:
                        continue
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise DaemonUnreachable("Daemon unreachable", f"{self.base_url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise ApiError("Stream interrupted", f"{path}: {exc or type(exc).__name__}") from exc

    # -- health and system ---------------------------------------------------------------------------
    async def health(self) -> Json:
        result: Json = await self._json("GET", "/healthz")
        return result

    async def hardware(self) -> Json:
        result: Json = await self._json("GET", "/api/v1/hardware")
        return result

    async def profiles(self) -> Json:
        result: Json = await self._json("GET", "/api/v1/profiles")
        return result

    async def plan(self, params: str) -> Json:
        result: Json = await self._json("GET", "/api/v1/plan", params={"params": params})
        return result

    async def job_types(self) -> list[str]:
        """The job types this daemon accepts, read from its OpenAPI schema (the enum of SubmitJob.type)."""
        schema = await self._json("GET", "/openapi.json")
        try:
            prop = schema["components"]["schemas"]["SubmitJob"]["properties"]["type"]
        except (KeyError, TypeError):
            return ["dataset-import"]
        if "const" in prop:
            return [str(prop["const"])]
        return [str(t) for t in prop.get("enum", [])] or ["dataset-import"]

    async def metrics(self) -> str:
        return (await self._send("GET", "/metrics")).text

    async def daemon_log(self, lines: int = 200) -> str:
        return (await self._send("GET", "/api/v1/logs/daemon", params={"lines": lines})).text

    async def audit(self, limit: int = 200) -> list[Json]:
        result: list[Json] = await self._json("GET", "/api/v1/audit", params={"limit": limit})
        return result

    # -- registry ------------------------------------------------------------------------------------
    async def models(self) -> list[Json]:
        result: list[Json] = await self._json("GET", "/api/v1/models")
        return result

    async def model(self, name: str) -> Json:
        result: Json = await self._json("GET", f"/api/v1/models/{quote(name)}")
        return result

    async def import_model(self, path: str, name: str) -> Json:
        # Copying and hashing a multi-GB file takes a while: no read timeout.
        result: Json = await self._json("POST", "/api/v1/models", json={"path": path, "name": name},
                                        timeout=httpx.Timeout(15.0, read=None))
        return result

    async def delete_model(self, name: str) -> Json:
        result: Json = await self._json("DELETE", f"/api/v1/models/{quote(name)}")
        return result

    # -- datasets ------------------------------------------------------------------------------------
    async def datasets(self) -> list[Json]:
        result: list[Json] = await self._json("GET", "/api/v1/datasets")
        return result

    async def dataset(self, name: str, version: int | None = None) -> Json:
        params = {"version": version} if version else None
        result: Json = await self._json("GET", f"/api/v1/datasets/{quote(name)}", params=params)
        return result

    async def import_dataset(self, body: Json) -> Json:
        result: Json = await self._json("POST", "/api/v1/datasets", json=body)
        return result

    # -- jobs ----------------------------------------------------------------------------------------
    async def jobs(self, limit: int = 100) -> list[Json]:
        result: list[Json] = await self._json("GET", "/api/v1/jobs", params={"limit": limit})
        return result

    async def job(self, job_id: str) -> Json:
        result: Json = await self._json("GET", f"/api/v1/jobs/{quote(job_id)}")
        return result

    async def submit_job(self, job_type: str, params: Json) -> Json:
        result: Json = await self._json("POST", "/api/v1/jobs", json={"type": job_type, "params": params})
        return result

    async def cancel_job(self, job_id: str) -> Json:
        result: Json = await self._json("POST", f"/api/v1/jobs/{quote(job_id)}/cancel")
        return result

    async def job_logs(self, job_id: str, lines: int = 200) -> str:
        return (await self._send("GET", f"/api/v1/jobs/{quote(job_id)}/logs", params={"lines": lines})).text

    def job_events(self, job_id: str) -> AsyncIterator[Json]:
        return self.stream_data("GET", f"/api/v1/jobs/{quote(job_id)}/events")

    # -- serving -------------------------------------------------------------------------------------
    async def deployments(self) -> list[Json]:
        result: list[Json] = await self._json("GET", "/api/v1/deployments")
        return result

    async def create_deployment(self, body: Json) -> Json:
        result: Json = await self._json("POST", "/api/v1/deployments", json=body)
        return result

    async def deployment_action(self, name: str, action: str, body: Json | None = None) -> Json:
        """start, stop, rollback or adapters (the last two arrive with issue 6; a 404 until then)."""
        result: Json = await self._json("POST", f"/api/v1/deployments/{quote(name)}/{action}", json=body)
        return result

    async def delete_deployment(self, name: str) -> Json:
        result: Json = await self._json("DELETE", f"/api/v1/deployments/{quote(name)}")
        return result

    async def deployment_logs(self, name: str, lines: int = 200) -> str:
        return (await self._send("GET", f"/api/v1/deployments/{quote(name)}/logs", params={"lines": lines})).text

    def chat(self, model: str, messages: list[Json], max_tokens: int = 256) -> AsyncIterator[Json]:
        body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": True}
        return self.stream_data("POST", "/v1/chat/completions", json=body)

    # -- keys ----------------------------------------------------------------------------------------
    async def keys(self) -> list[Json]:
        result: list[Json] = await self._json("GET", "/api/v1/keys")
        return result

    async def create_key(self, name: str, scope: str) -> Json:
        result: Json = await self._json("POST", "/api/v1/keys", json={"name": name, "scope": scope})
        return result

    async def revoke_key(self, name: str) -> Json:
        result: Json = await self._json("DELETE", f"/api/v1/keys/{quote(name)}")
        return result
