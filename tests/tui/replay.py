"""Recorded API responses (fixtures/api.json, see record_api.py) replayed through the client's transport seam.

The screens run unchanged; only the bytes come from the file. Writes answer 404 like an unknown route, so a
snapshot never depends on a change having happened. The clock is frozen at the recording's time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tui.app import ApplianceApp
from tui.client import ApiClient

FIXTURE = Path(__file__).parent / "fixtures" / "api.json"


class Replay:
    def __init__(self, path: Path = FIXTURE) -> None:
        data = json.loads(path.read_text())
        self.recorded_at: float = float(data["recorded_at"])
        self.responses: dict[str, dict[str, Any]] = data["responses"]
        self.requests: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        key = f"{request.method} {request.url.path}"
        self.requests.append(key)
        recorded = self.responses.get(key)
        if recorded is None:
            body = {"error": {"message": f"not recorded: {key}", "type": "not_found_error", "code": "not_found"}}
            return httpx.Response(404, json=body)
        if "json" in recorded:
            return httpx.Response(200, json=recorded["json"])
        if "sse" in recorded:
            return httpx.Response(200, text=recorded["sse"], headers={"content-type": "text/event-stream"})
        return httpx.Response(200, text=recorded["text"])

    def client(self) -> ApiClient:
        return ApiClient("http://127.0.0.1:8470", "recorded", transport=httpx.MockTransport(self.handle))


def replay_app(replay: Replay | None = None) -> ApplianceApp:
    """The control panel over recorded responses, polling off and the clock frozen: renders are repeatable."""
    replay = replay or Replay()
    return ApplianceApp(replay.client(), poll_s=None, clock=lambda: replay.recorded_at)
