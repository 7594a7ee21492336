"""The daemon client package: what it (and the TUI) import, which key it picks, and how it reads answers and
failures from real HTTP servers on loopback (a small stand-in server, then the real daemon)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from appliance.client import (
    ADMIN_KEY_FILE,
    ApiError,
    AsyncDaemonClient,
    CredentialsError,
    DaemonClient,
    DaemonUnreachable,
    resolve_key,
)
from appliance.client.progress import bar, fraction, progress_line
from tests.helpers import REPO, DaemonProcess, free_port

TOKEN = "slm_test_token"
EVENTS = (": keep-alive\n\n"
          'data: {"event": "progress", "step": 1, "total": 2}\n\n'
          "data: not json\n\n"
          'data: {"event": "state", "state": "succeeded"}\n\n'
          "data: [DONE]\n\n"
          'data: {"event": "after the end"}\n\n')
# path -> (status, content type, body) the stand-in daemon answers with.
ROUTES: dict[str, tuple[int, str, str]] = {
    "/healthz": (200, "application/json", '{"status": "ok"}'),
    "/api/v1/models/nope": (404, "application/json",
                            '{"error": {"message": "no model named \'nope\'", "type": "not_found_error"}}'),
    "/api/v1/jobs/j1/logs": (500, "text/plain", "Internal Server Error\n"),
    "/api/v1/jobs/j1/events": (200, "text/event-stream", EVENTS),
    "/metrics": (200, "text/plain", "slm_requests_total 3\n"),
    "/openapi.json": (200, "application/json", json.dumps({"components": {"schemas": {"SubmitJob": {
        "properties": {"type": {"enum": ["dataset-import", "finetune"]}}}}}})),
}


def test_tui_and_client_import_nothing_of_the_daemon() -> None:
    code = ("import tui.app, tui.connect, tui.replay, tui.tour, appliance.client; import sys; "
            "print(sorted(m for m in sys.modules if m.startswith('appliance')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                         check=True).stdout
    modules = json.loads(out.replace("'", '"'))
    assert "appliance.client" in modules
    assert [m for m in modules if m != "appliance" and not m.startswith("appliance.client")] == []


def test_key_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--key, then --key-file, then SLM_API_KEY, then the state directory's admin.key."""
    monkeypatch.delenv("SLM_API_KEY", raising=False)
    with pytest.raises(CredentialsError, match=f"cannot read {tmp_path / ADMIN_KEY_FILE}"):
        resolve_key(state_dir=tmp_path)
    (tmp_path / ADMIN_KEY_FILE).write_text("from-state\n")
    (tmp_path / "other.key").write_text("from-file\n")
    assert resolve_key(state_dir=tmp_path) == "from-state"
    monkeypatch.setenv("SLM_API_KEY", "from-env")
    assert resolve_key(state_dir=tmp_path) == "from-env"
    assert resolve_key(key_file=tmp_path / "other.key", state_dir=tmp_path) == "from-file"
    assert resolve_key("flag", tmp_path / "other.key", tmp_path) == "flag"


@pytest.mark.parametrize(("source", "named"), [
    ("key", "--key"),  # an explicit empty --key is refused, not sent
    ("file", "empty.key"),  # a key file holding only a newline
    ("env", "$SLM_API_KEY"),  # SLM_API_KEY set to nothing
])
def test_empty_key_is_an_error_naming_its_source(source: str, named: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty.key").write_text("\n")
    monkeypatch.setenv("SLM_API_KEY", "" if source == "env" else "from-env")
    kwargs: dict[str, Any] = {"key": ""} if source == "key" else {}
    if source == "file":
        kwargs["key_file"] = tmp_path / "empty.key"
    with pytest.raises(CredentialsError, match="empty") as caught:
        resolve_key(state_dir=tmp_path, **kwargs)
    assert named in caught.value.message


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))  # a POST's body, unread otherwise
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            status, kind, body = 401, "application/json", '{"error": {"message": "invalid API key"}}'
        else:
            status, kind, body = ROUTES.get(self.path.split("?")[0], (404, "text/plain", ""))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


Use = Callable[[Any], Any]


def sync_use(url: str, token: str, use: Use) -> Any:
    with DaemonClient(url, token) as client:
        result = use(client)
        return list(result) if isinstance(result, Iterator) else result


def async_use(url: str, token: str, use: Use) -> Any:
    async def run() -> Any:
        client = AsyncDaemonClient(url, token)
        try:
            result = use(client)
            return [e async for e in result] if hasattr(result, "__aiter__") else await result
        finally:
            await client.aclose()

    return asyncio.run(run())


# The same named call over both transports must give the same value or the same error.
TRANSPORTS = pytest.mark.parametrize("through", [sync_use, async_use], ids=["sync", "async"])


@TRANSPORTS
def test_answers_are_decoded(through: Callable[[str, str, Use], Any], server: str) -> None:
    assert through(server, TOKEN, lambda c: c.health()) == {"status": "ok"}
    assert through(server, TOKEN, lambda c: c.metrics()) == "slm_requests_total 3\n"
    assert through(server, TOKEN, lambda c: c.job_types()) == ["dataset-import", "finetune"]


@TRANSPORTS
def test_events_stop_at_done_and_skip_comments(through: Callable[[str, str, Use], Any], server: str) -> None:
    events = through(server, TOKEN, lambda c: c.job_events("j1"))
    assert events == [{"event": "progress", "step": 1, "total": 2}, {"event": "state", "state": "succeeded"}]


@TRANSPORTS
@pytest.mark.parametrize(("use", "status", "message"), [
    # an OpenAI-shaped error body gives the daemon's own words
    (lambda c: c.model("nope"), 404, "no model named 'nope'"),
    # any other body gives its text
    (lambda c: c.job_logs("j1"), 500, "Internal Server Error"),
    # an error before a stream starts is raised, not streamed
    (lambda c: c.chat("m", []), 404, "Not Found"),
], ids=["openai-body", "text-body", "stream"])
def test_errors_carry_status_and_message(through: Callable[[str, str, Use], Any], server: str, use: Use,
                                         status: int, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        through(server, TOKEN, use)
    assert (caught.value.status, caught.value.message) == (status, message)
    assert str(status) in caught.value.title


@TRANSPORTS
def test_wrong_key_is_a_401(through: Callable[[str, str, Use], Any], server: str) -> None:
    with pytest.raises(ApiError, match="invalid API key") as caught:
        through(server, "wrong", lambda c: c.models())
    assert caught.value.status == 401 and not isinstance(caught.value, DaemonUnreachable)


@TRANSPORTS
def test_nothing_listening_is_unreachable(through: Callable[[str, str, Use], Any]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for use in (lambda c: c.health(), lambda c: c.job_events("j1")):
        with pytest.raises(DaemonUnreachable) as caught:
            through(url, TOKEN, use)
        assert caught.value.message.startswith(url) and caught.value.status is None


def test_real_daemon_with_the_local_admin_key(daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLM_API_KEY", raising=False)
    token = resolve_key(state_dir=daemon.state_dir)
    assert sync_use(daemon.url, token, lambda c: c.health())["status"] == "ok"
    assert "dataset-import" in async_use(daemon.url, token, lambda c: c.job_types())
    with pytest.raises(ApiError) as caught:
        sync_use(daemon.url, token, lambda c: c.deployment("nope"))
    assert caught.value.status == 404 and "nope" in caught.value.message


@pytest.mark.parametrize(("progress", "line", "share"), [
    # training: every field the worker reports, in reading order
    ({"phase": "training", "step": 3, "total": 30, "loss": 2.5, "tokens_per_s": 88.0, "eta_s": 75},
     "training · 3/30 · loss 2.5000 · 88 tok/s · ETA 1m15s", 0.1),
    # an import reports a phase and a message only: no share, no bar
    ({"phase": "validating", "message": "line 200"}, "validating · line 200", None),
])
def test_progress_line_and_share(progress: dict[str, Any], line: str, share: float | None) -> None:
    assert progress_line(progress) == line
    assert fraction(progress) == share


def test_bar_fills_its_share() -> None:
    assert bar(0.5, 10) == "█████░░░░░"
    assert bar(1 / 3, 6, "#", "-") == "##----"
