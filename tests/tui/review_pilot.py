"""The Review screen driven as a reviewer drives it, against a real daemon: reusable by any test that has
captured items (tests/tui/test_pilot_review.py, the end-to-end test of the production loop).

    reviewed = review_through_tui(daemon.url, daemon.admin_key(), accept=[a], edit={b: "Better answer."},
                                  reject=[c], export=("sft", "reviewed"))

Each decision is made with the screen's keys (a, e and the edit dialog, r; x and the export form), waited for on
screen, then read back through the API and checked there.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, TextArea

from appliance.client import AsyncDaemonClient
from tui.app import ApplianceApp
from tui.screens.review import ReviewScreen
from tui.tour import settle
from tui.widgets.modals import FormModal
from tui.widgets.review_edit import EditAnswerModal

Json = dict[str, Any]
EXPECTED = {"a": "accepted", "e": "edited", "r": "rejected"}


@dataclass
class Reviewed:
    items: dict[str, Json]  # response id -> the item as GET /api/v1/captures/{id} gives it after the review
    export_job: str | None  # the dataset-import job the export started (None: no export asked)


async def _until(pilot: Pilot[None], check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        await pilot.pause(0.2)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")


async def _decide(app: ApplianceApp, pilot: Pilot[None], response_id: str, key: str, answer: str | None,
                  timeout: float) -> None:
    screen = app.screen
    assert isinstance(screen, ReviewScreen), screen
    table = screen.query_one("#captures", DataTable)
    await _until(pilot, lambda: response_id in [str(k.value) for k in table.rows], timeout, f"{response_id} listed")
    table.move_cursor(row=table.get_row_index(response_id))
    await _until(pilot, lambda: (screen.detail or {}).get("item", {}).get("response_id") == response_id, timeout,
                 f"{response_id} opened")
    await pilot.press(key)
    if answer is not None:
        modal = await _until(pilot, lambda: isinstance(app.screen, EditAnswerModal) and app.screen, timeout,
                             "edit dialog")
        modal.query_one("#text", TextArea).load_text(answer)
        await pilot.press("ctrl+s")
    await _until(pilot, lambda: EXPECTED[key] in str(table.get_row(response_id)[1]), timeout,
                 f"{response_id} shown {EXPECTED[key]}")


async def _export(app: ApplianceApp, pilot: Pilot[None], kind: str, dataset: str, base_model: str | None,
                  timeout: float) -> str:
    await pilot.press("x")
    form = await _until(pilot, lambda: isinstance(app.screen, FormModal) and app.screen, timeout, "export form")
    await settle(pilot)
    form.query_one("#field-kind", Select).value = kind
    form.query_one("#field-dataset", Input).value = dataset
    if base_model is not None:
        form.query_one("#field-base_model", Select).value = base_model
    await pilot.click("#submit")
    note = await _until(pilot, lambda: next((n for n in app._notifications if n.title == "Review export"), None),
                        timeout, "export started")
    match = re.search(r"as job (\w+)$", note.message)
    assert match, note.message
    return match.group(1)


def review_through_tui(url: str, admin_key: str, *, accept: Sequence[str] = (), edit: Mapping[str, str] | None = None,
                       reject: Sequence[str] = (), export: tuple[str, str] | None = None,
                       base_model: str | None = None, size: tuple[int, int] = (120, 40),
                       timeout: float = 60.0) -> Reviewed:
    """Run the control panel against the daemon at `url` (admin key `admin_key`) and, on its Review screen,
    accept the items `accept` names, edit each of `edit` (response id -> the answer it should have given, typed
    into the edit dialog), reject those of `reject`; then, with `export` (kind, dataset), export the accepted and
    edited items into a new version of that dataset from the export form (`base_model` chosen in it when given).

    Returns the items as the API gives them afterwards, checked: each accepted, edited (its conversation ending
    with the new answer) or rejected. Raises TimeoutError naming the step the screen did not reach in `timeout`
    seconds, AssertionError when the API disagrees with the screen.
    """
    edits = dict(edit or {})
    steps = [(i, "a", None) for i in accept] + [(i, "e", a) for i, a in edits.items()] + [(i, "r", None)
                                                                                       for i in reject]
    app = ApplianceApp(AsyncDaemonClient(url, admin_key), poll_s=1.0, reconnect_s=0.5)
    job: list[str] = []

    async def scenario() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.press("9")
            await settle(pilot)
            for response_id, key, answer in steps:
                await _decide(app, pilot, response_id, key, answer, timeout)
            if export is not None:
                job.append(await _export(app, pilot, *export, base_model, timeout))
            assert not [n for n in app._notifications if n.severity == "error"], app._notifications

    asyncio.run(scenario())
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=30) as http:
        items = {i: http.get(f"/api/v1/captures/{i}").json() for i, _, _ in steps}
    for response_id, key, answer in steps:
        review = items[response_id]["review"]
        assert review["state"] == EXPECTED[key], (response_id, review)
        if answer is not None:
            assert review["messages"][-1] == {"role": "assistant", "content": answer}, review
    return Reviewed(items, job[0] if job else None)
