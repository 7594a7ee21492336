"""Recorded API responses (tests/tui/fixtures/api.json, made by tests/tui/record_api.py) replayed through the
client's transport seam, for the snapshot tests and the README's screenshots.

The screens run unchanged; only the bytes come from the file. Writes answer 404 like an unknown route, so a
snapshot never depends on a change having happened. The clock is frozen at the recording's time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from appliance.client import AsyncDaemonClient
from tui.app import ApplianceApp


class Replay:
    def __init__(self, path: Path, *overlays: Path) -> None:
        """`overlays`: recordings laid over `path`'s responses, in order (on its clock: their times were moved to
        it when they were recorded), e.g. a deployment's trials over the base recording."""
        data = json.loads(path.read_text())
        self.recorded_at: float = float(data["recorded_at"])
        self.responses: dict[str, dict[str, Any]] = data["responses"]
        for overlay in overlays:
            self.responses.update(json.loads(overlay.read_text())["responses"])
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

    def client(self) -> AsyncDaemonClient:
        return AsyncDaemonClient("http://127.0.0.1:8470", "recorded", transport=httpx.MockTransport(self.handle))


def replay_app(replay: Replay) -> ApplianceApp:
    """The control panel over recorded responses, polling off and the clock frozen: renders are repeatable."""
    return ApplianceApp(replay.client(), poll_s=None, clock=lambda: replay.recorded_at)
