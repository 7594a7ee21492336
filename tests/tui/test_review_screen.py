"""The Review screen over recorded responses: the filters it sends, the requests its decisions, its edit dialog
and its export make (answered here as the daemon answers them), refusals as notifications; and the policy in
the Serving screen's detail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Checkbox, DataTable, Input, Select, Static, TextArea

from tests.tui import FIXTURE
from tui.app import ApplianceApp
from tui.replay import Replay, replay_app
from tui.tour import settle, show
from tui.widgets.modals import FormModal
from tui.widgets.review_edit import EditAnswerModal

Json = dict[str, Any]


class Daemonish(Replay):
    """Recorded answers; the review and export writes answered like the daemon's, every request kept."""

    def __init__(self) -> None:
        super().__init__(FIXTURE)
        self.sent: list[tuple[str, str, Any]] = []  # method, path with query, JSON body

    def handle(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.sent.append((request.method, str(request.url.copy_with(scheme=None, host=None, port=None)), body))
        path = request.url.path
        if request.method == "POST" and path.endswith("/review"):
            detail = self.responses[f"GET {path.removesuffix('/review')}"]["json"]
            return httpx.Response(200, json=detail)
        if request.method == "POST" and path == "/api/v1/captures/export":
            export = {"path": "/x.jsonl", "kind": body["kind"], "rows": 2, "items": 2,
                      "skipped": [{"response_id": "chatcmpl-x", "reason": "rated down"}]}
            return httpx.Response(202, json={"export": export, "job": {"id": "0a1b2c3d4e5f"}})
        return super().handle(request)

    def writes(self) -> list[tuple[str, str, Any]]:
        return [s for s in self.sent if s[0] != "GET"]


def run(replay: Replay, scenario: Callable[[ApplianceApp, Pilot[None]], Awaitable[None]], screen: str = "review",
        size: tuple[int, int] = (120, 40)) -> None:
    app = replay_app(replay)

    async def go() -> None:
        async with app.run_test(size=size) as pilot:
            await show(pilot, screen)
            await scenario(app, pilot)

    asyncio.run(go())


def table_ids(app: ApplianceApp) -> list[str]:
    return [str(k.value) for k in app.screen.query_one("#captures", DataTable).rows]


def test_filters_become_query_parameters() -> None:
    replay = Daemonish()

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        app.screen.query_one("#state", Select).value = "pending"
        app.screen.query_one("#rated", Select).value = "down"
        app.screen.query_one("#corrected", Checkbox).value = True
        await settle(pilot)
        assert app.screen.query_one("#deployment", Select).value == "all"
        app.screen.query_one("#deployment", Select).value = "smollm2-135m-instruct"
        await settle(pilot)

    run(replay, scenario)
    lists = [parse_qs(urlsplit(path).query) for _, path, _ in replay.sent if path.startswith("/api/v1/captures?")]
    assert lists[0] == {"limit": ["200"], "offset": ["0"]}
    assert lists[-1] == {"deployment": ["smollm2-135m-instruct"], "corrected": ["true"], "state": ["pending"],
                         "rated": ["down"], "limit": ["200"], "offset": ["0"]}


def test_decisions_post_to_the_highlighted_item() -> None:
    replay = Daemonish()
    ids: list[str] = []

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        ids.extend(table_ids(app))  # the tour left the cursor on the fourth (the edited one)
        for key in "aro":
            await pilot.press(key)
            await settle(pilot)
        assert [n.message for n in app._notifications][-3:] == [
            f"Accepted {ids[3]}", f"Rejected {ids[3]}", f"Reopened {ids[3]}"]

    run(replay, scenario)
    assert replay.writes() == [("POST", f"/api/v1/captures/{ids[3]}/review", {"action": a, "note": ""})
                               for a in ("accept", "reject", "reopen")]


def test_edit_dialog_answer_then_whole_conversation() -> None:
    replay = Daemonish()

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        await pilot.press("e")
        await settle(pilot)
        modal = app.screen
        assert isinstance(modal, EditAnswerModal)
        area = modal.query_one("#text", TextArea)
        assert area.text == "Two plus two is four."  # the reviewer's earlier edit, not the captured answer
        area.load_text("It is four.")
        modal.query_one("#as-json", Checkbox).value = True
        await pilot.pause()
        assert json.loads(area.text) == [{"role": "user", "content": "What is two plus two?"},
                                         {"role": "assistant", "content": "It is four."}]
        area.load_text("[not json")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is modal and any(n.title == "Not a conversation" for n in app._notifications)
        area.load_text(json.dumps([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, EditAnswerModal)

    run(replay, scenario)
    [(method, path, body)] = replay.writes()
    assert method == "POST"
    assert path.endswith("/review") and body == {"action": "edit", "note": "", "messages": [
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}


def test_export_asks_kind_and_dataset_then_notifies_the_job() -> None:
    replay = Daemonish()

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, FormModal)
        app.screen.query_one("#field-kind", Select).value = "preference"
        app.screen.query_one("#field-dataset", Input).value = "support"
        await pilot.click("#submit")
        await settle(pilot)
        [note] = [n for n in app._notifications if n.title == "Review export"]
        assert note.message == "2 preference rows from 2 items, 1 skipped: importing into support as job 0a1b2c3d4e5f"

    run(replay, scenario)
    assert replay.writes() == [("POST", "/api/v1/captures/export", {
        "kind": "preference", "dataset": "support", "base_model": None, "selection": {"deployment": None}})]


def test_refusals_are_notifications() -> None:
    """Through the plain replay every write is a 404, as a daemon without the route would answer."""
    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        await pilot.press("a")
        await settle(pilot)
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "404" in errors[0].title and app.is_running

    run(Replay(FIXTURE), scenario)


def test_serving_shows_the_policy_of_a_deployment_that_has_one() -> None:
    replay = Replay(FIXTURE)
    for deployment in replay.responses["GET /api/v1/deployments"]["json"]:
        deployment["policy_version"] = 1

    async def scenario(app: ApplianceApp, pilot: Pilot[None]) -> None:
        policy = app.screen.query_one("#policy", Static)
        assert policy.display
        text = Content.from_markup(str(policy.content)).plain
        assert text.startswith("Policy v1 by local-admin (review what the support app gets)")
        assert "deny     no-credentials (both, 2 keywords)" in text and "capture  on · sample 100% · keep 30" in text
        assert "redact   input — · output EMAIL · capture EMAIL, PHONE, IBAN" in text

    run(replay, scenario, screen="serving")
