"""The Serving screen's trials over recorded responses: nothing of them without trials (the section hidden, the
keys not offered, a daemon answering 404 for trials taken as none), the recorded shadow, canary and verdict on
screen, the worst pairs' dialog, and the canary's abort asked for, then sent with its reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Input, Static

from tests.tui import FIXTURE, TRIALS
from tests.tui.record_trials import CANDIDATE
from tui.app import ApplianceApp
from tui.replay import Replay, replay_app
from tui.screens.serving import ServingScreen
from tui.tour import settle, show
from tui.widgets.modals import FormModal
from tui.widgets.trials import ShadowPairsModal

Json = dict[str, Any]
LIVE = "smollm2-135m-instruct"


class Daemonish(Replay):
    """The recordings; a canary's abort answered as the daemon answers it (the trials without the canary), every
    request kept."""

    def __init__(self, *overlays: Any) -> None:
        super().__init__(FIXTURE, *overlays)
        self.sent: list[tuple[str, str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        if request.method == "POST" and request.url.path == f"/api/v1/deployments/{LIVE}/canary/abort":
            view = self.responses[f"GET /api/v1/deployments/{LIVE}/trials"]["json"]
            return httpx.Response(200, json={**view, "canary": None})
        return super().handle(request)


def run(replay: Replay, scenario: Callable[[ApplianceApp, Pilot[None]], Awaitable[None]],
        size: tuple[int, int] = (120, 40)) -> None:
    app = replay_app(replay)

    async def go() -> None:
        async with app.run_test(size=size) as pilot:
            await show(pilot, "serving")
            await scenario(app, pilot)

    asyncio.run(go())


def plain(app: ApplianceApp, selector: str) -> str:
    return Content.from_markup(str(app.screen.query_one(selector, Static).content)).plain


def offered(app: ApplianceApp) -> set[str]:
    """The actions the screen's footer offers now."""
    return {binding.action for (_, binding, enabled, _) in app.screen.active_bindings.values() if enabled}


def test_without_trials_nothing_shows_and_no_key_is_offered() -> None:
    replay = Daemonish()

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        assert isinstance(app.screen, ServingScreen)
        assert f"GET /api/v1/deployments/{LIVE}/trials" in replay.requests  # asked: a 404 here, taken as none
        assert not app.screen.query_one("#trials", Static).display
        assert not {"shadow_pairs", "abort_canary"} & offered(app)
        await pilot.press("w", "a")
        await settle(pilot)
        assert isinstance(app.screen, ServingScreen) and not app._notifications  # nothing opened, nothing failed

    run(replay, scenario)


def test_recorded_shadow_canary_and_verdict_on_screen() -> None:
    replay = Daemonish(TRIALS)
    view = replay.responses[f"GET /api/v1/deployments/{LIVE}/trials"]["json"]
    summary, verdict = view["shadow_summary"], view["watch"]

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        text = plain(app, "#trials")
        assert f"shadow {CANDIDATE} · {100 * view['shadow']['sample_rate']:.0f}% sampled" in text
        assert f"{summary['pairs']} pairs · exact" in text and f"agreement {summary['agreement_mean']:.3f}  0 " in text
        assert f"canary {CANDIDATE} · 50% of keys" in text and "canary watch" in text
        assert f"requests    {verdict['candidate']['requests']:>9} {verdict['baseline']['requests']:>9}" in text
        assert ("canary watch: regressed" in text) == verdict["regressed"]
        assert all(reason in text.replace("\n", " ") for reason in verdict["reasons"])
        assert {"shadow_pairs", "abort_canary"} <= offered(app)
        await pilot.press("down")  # the candidate itself has no trials: the section goes
        await settle(pilot)
        assert not app.screen.query_one("#trials", Static).display and "abort_canary" not in offered(app)

    run(replay, scenario)


def test_worst_pairs_dialog() -> None:
    replay = Daemonish(TRIALS)
    pairs = replay.responses[f"GET /api/v1/deployments/{LIVE}/shadow/pairs"]["json"]

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        await pilot.press("w")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, ShadowPairsModal) and modal.candidate == CANDIDATE
        assert ("GET", f"/api/v1/deployments/{LIVE}/shadow/pairs", None) in replay.sent
        headings = [Content.from_markup(str(w.content)).plain for w in modal.query(".pair-heading").results(Static)]
        texts = [Content.from_markup(str(w.content)).plain for w in modal.query(".pair-text").results(Static)]
        assert len(headings) == len(pairs) and len(texts) == 3 * len(pairs)
        assert headings[0].startswith(f"#1 agreement {pairs[0]['figures']['agreement']:.3f} · chrF ")
        assert "Write to [EMAIL] that her order shipped." in texts  # masked, and shown as masked
        await pilot.press("escape")
        assert isinstance(app.screen, ServingScreen)

    run(replay, scenario)


def test_abort_canary_asks_then_sends_the_reason() -> None:
    replay = Daemonish(TRIALS)

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, FormModal) and "Abort the canary" in app.screen.form_title
        await pilot.press("escape")  # cancelled: nothing sent
        await settle(pilot)
        assert not [s for s in replay.sent if s[0] == "POST"]
        await pilot.press("a")
        await settle(pilot)
        app.screen.query_one("#field-reason", Input).value = "p95 too high"
        await pilot.press("enter")
        await settle(pilot)
        posts = [s for s in replay.sent if s[0] == "POST"]
        assert posts == [("POST", f"/api/v1/deployments/{LIVE}/canary/abort", {"reason": "p95 too high"})]
        assert any("aborted" in n.message for n in app._notifications)

    run(replay, scenario)
