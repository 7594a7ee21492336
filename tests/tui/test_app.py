"""The panel without a daemon: replayed responses, a daemon that goes away and comes back, errors as
notifications, and the small pure pieces (metrics parsing, formatting)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tests.tui import FIXTURE
from tui import format as fmt
from tui.metrics import parse_metrics
from tui.replay import Replay, replay_app
from tui.tour import settle
from tui.widgets.chrome import ConnectionBanner
from tui.widgets.modals import FormModal


async def wait_until(pilot: Pilot[None], check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met")
        await pilot.pause(0.05)


class FlakyReplay(Replay):
    """Recorded answers, except while `down`: then every request fails as a stopped daemon's would."""

    down = True

    def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("Connection refused", request=request)
        return super().handle(request)


def test_daemon_down_shows_banner_then_reconnects() -> None:
    replay = FlakyReplay(FIXTURE)
    app = replay_app(replay)
    app.reconnect_s = 0.1

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            def banner() -> ConnectionBanner:
                return app.screen.query_one(ConnectionBanner)

            await wait_until(pilot, lambda: banner().has_class("down"))
            assert "reconnecting" in str(banner().content)
            replay.down = False
            await wait_until(pilot, lambda: not banner().has_class("down"))
            await settle(pilot)
            assert any(n.title == "Reconnected" for n in app._notifications)
            assert app.screen.query_one("#deployments", DataTable).row_count == 1  # reloaded after reconnecting

    asyncio.run(scenario())


def test_missing_route_is_a_notification_not_a_traceback() -> None:
    """Rollback arrives with issue 6: until then the daemon's 404 must reach the operator as a notification."""
    app = replay_app(Replay(FIXTURE))

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("5")
            await settle(pilot)
            await pilot.press("b", "y")
            await settle(pilot)
            errors = [n for n in app._notifications if n.severity == "error"]
            assert errors and "404" in errors[0].title, errors
            assert app.is_running

    asyncio.run(scenario())


def test_screens_request_only_recorded_routes() -> None:
    """Each screen's GETs are in the recording, so snapshots show data rather than errors."""
    replay = Replay(FIXTURE)
    app = replay_app(replay)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            for key in "123456789":
                await pilot.press(key)
                await settle(pilot)
            assert not [n for n in app._notifications if n.severity == "error"]

    asyncio.run(scenario())
    assert {"GET /api/v1/hardware", "GET /api/v1/models", "GET /api/v1/datasets", "GET /api/v1/jobs",
            "GET /metrics", "GET /api/v1/keys", "GET /api/v1/audit"} <= set(replay.requests)


def test_parse_metrics_groups_by_deployment() -> None:
    text = Replay(FIXTURE).responses["GET /metrics"]["text"]
    metrics = parse_metrics(text)["smollm2-135m-instruct"]
    assert metrics.requests == {"ok": 1.0}
    assert metrics.tokens == {"in": 35.0, "out": 48.0}
    assert metrics.latency.count == 1 and metrics.latency.quantile(0.5) is not None


@pytest.mark.parametrize(("progress", "expected"), [
    # training: every field the worker reports, in reading order
    ({"phase": "training", "step": 3, "total": 30, "loss": 2.5, "tokens_per_s": 88.0, "eta_s": 75},
     "training · 3/30 · loss 2.5000 · 88 tok/s · ETA 1m15s"),
    # an import reports a phase and a message only
    ({"phase": "validating", "message": "line 200"}, "validating · line 200"),
])
def test_progress_line(progress: dict[str, object], expected: str) -> None:
    assert fmt.progress_line(progress) == expected


def test_human_units() -> None:
    assert fmt.size(98362432) == "93.8 MiB"
    assert fmt.params(134515008) == "135M"
    assert fmt.duration(3725) == "1h02m"
    assert fmt.ago(None, 0) == "never"


def test_command_palette_switches_screens() -> None:
    app = replay_app(Replay(FIXTURE))

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+p")
            await pilot.pause()
            await pilot.press(*"Go to Keys")
            await pilot.pause(0.5)
            await pilot.press("enter")
            await settle(pilot)
            assert app.current_mode == "keys"

    asyncio.run(scenario())


def test_import_form_opens_with_its_optional_base_model_unset() -> None:
    """An optional select starts with no value (Select.NULL; Textual 8's Select.BLANK is a widget flag and
    crashed the form) and reads back as None."""
    app = replay_app(Replay(FIXTURE))

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("3")
            await settle(pilot)
            await pilot.press("i")
            await settle(pilot)
            form = app.screen
            assert isinstance(form, FormModal)
            form.query_one("#field-path", Input).value = "/var/lib/slm-appliance/imports/faq.jsonl"
            form.query_one("#field-name", Input).value = "faq"
            assert form.values() == {"path": "/var/lib/slm-appliance/imports/faq.jsonl", "name": "faq",
                                     "base_model": None, "strict": False}

    asyncio.run(scenario())
