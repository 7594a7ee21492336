"""The Serving screen's trials against a real daemon serving the starter, with a second deployment of it as the
candidate: a shadow with its pairs and a canary made through the API show on screen; the worst pairs' dialog
lists the stored pairs (redacted); the canary is aborted from the screen with a reason, checked through the API
and its audit line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from textual.content import Content
from textual.widgets import Input, Static

from appliance.client import AsyncDaemonClient
from appliance.testing.daemon import DaemonProcess
from tests.trialtools import STARTER, admin, ask, daemon_with_candidate, trials, wait_pairs
from tests.tui.test_pilot_daemon import wait_until
from tui.app import ApplianceApp
from tui.tour import settle
from tui.widgets.modals import FormModal
from tui.widgets.trials import ShadowPairsModal

pytestmark = pytest.mark.slow
CANDIDATE = "smollm2-next"  # listed after the starter, which the screen selects first


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    yield from daemon_with_candidate(tmp_path_factory.mktemp("tui-trials"), CANDIDATE)


def test_shadow_pairs_and_abort_the_canary_on_screen(daemon: DaemonProcess) -> None:
    url, key = daemon.url, daemon.admin_key()
    with admin(url, key) as http:
        assert http.put(f"/api/v1/deployments/{STARTER}/policy",
                        json={"policy": {"guardrails": {"redact": {"capture": ["EMAIL"]}}}}).is_success
        assert http.put(f"/api/v1/deployments/{STARTER}/shadow",
                        json={"candidate": CANDIDATE, "sample_rate": 1.0}).is_success
        ask(url, key, STARTER, ["Mail the report to ops@example.com.", "Name a colour."])
        wait_pairs(url, key, STARTER, 2)
        assert http.post(f"/api/v1/deployments/{STARTER}/canary",
                         json={"candidate": CANDIDATE, "weight": 0.2}).status_code == 201
    app = ApplianceApp(AsyncDaemonClient(url, key), poll_s=1.0, reconnect_s=0.5)

    def shown() -> str:
        return Content.from_markup(str(app.screen.query_one("#trials", Static).content)).plain

    async def go() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("5")
            await wait_until(pilot, lambda: f"canary {CANDIDATE} · 20% of keys" in shown(), 30, "canary shown")
            assert f"shadow {CANDIDATE} · 100% sampled" in shown() and "2 pairs · exact" in shown()
            await pilot.press("w")
            modal = await wait_until(pilot, lambda: isinstance(app.screen, ShadowPairsModal) and app.screen, 30,
                                     "pairs dialog")
            listed = [Content.from_markup(str(w.content)).plain for w in modal.query(".pair-text").results(Static)]
            assert len(listed) == 6 and "Mail the report to [EMAIL]." in listed
            assert "ops@example.com" not in " ".join(listed)
            await pilot.press("escape")
            await pilot.press("a")
            form = await wait_until(pilot, lambda: isinstance(app.screen, FormModal) and app.screen, 30, "abort form")
            form.query_one("#field-reason", Input).value = "tried from the panel"
            await pilot.press("enter")
            await wait_until(pilot, lambda: "canary " + CANDIDATE not in shown(), 30, "canary gone from the screen")
            await settle(pilot)

    asyncio.run(go())
    assert trials(url, key, STARTER)["canary"] is None
    audit = httpx.get(f"{url}/api/v1/audit", params={"limit": 50}, headers=daemon.admin_headers()).json()
    line = next(a for a in audit if a["action"] == "deployment.canary.abort")
    assert line["actor"] == "local-admin" and line["detail"]["reason"] == "tried from the panel"
