"""The submit form over recorded responses: built per kind from `GET /api/v1/job-kinds`, a fine-tune's overrides
prefilled from the profile, the planner asked about the chosen base model, and the params it sends."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, Select, Static

from tests.tui import FIXTURE
from tui.app import ApplianceApp
from tui.replay import Replay, replay_app
from tui.tour import settle
from tui.widgets.submit import SubmitJobModal


class Recording(Replay):
    """Recorded answers, and the bodies of the jobs the form submits."""

    def __init__(self) -> None:
        super().__init__(FIXTURE)
        self.submitted: list[dict[str, Any]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/api/v1/jobs":
            self.submitted.append(json.loads(request.content))
        return super().handle(request)


def _run(replay: Replay, scenario: Callable[[ApplianceApp, Pilot[None], SubmitJobModal], Awaitable[None]]) -> None:
    app = replay_app(replay)

    async def run() -> None:
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("4")
            await settle(pilot)
            await pilot.press("n")
            await settle(pilot)
            assert isinstance(app.screen, SubmitJobModal)
            await scenario(app, pilot, app.screen)

    asyncio.run(run())


def _press_submit(pilot: Pilot[None]) -> None:
    # Pressed, not clicked: the warnings' toasts stack over the form's bottom-right corner, where Submit is.
    pilot.app.screen.query_one("#submit", Button).press()


async def _submitted(pilot: Pilot[None], replay: Recording) -> None:
    """Submit, then wait for the POST: the screen sends it from a worker after the form closes."""
    _press_submit(pilot)
    for _ in range(200):
        if replay.submitted:
            return
        await pilot.pause(0.05)


async def _choose(pilot: Pilot[None], modal: SubmitJobModal, kind: str) -> None:
    modal.query_one("#type", Select).value = kind
    await settle(pilot)


def test_finetune_form_starts_from_the_profile_and_asks_the_planner() -> None:
    replay = Recording()

    async def scenario(app: ApplianceApp, pilot: Pilot[None], modal: SubmitJobModal) -> None:
        assert modal.query_one("#type", Select).value == "finetune"  # the registry's first kind
        training = {"learning_rate": "0.0002", "batch_size": "2", "lora_r": "16", "max_seq_length": "2048",
                    "max_steps": "", "epochs": ""}  # the recorded consumer-gpu profile's table
        assert {k: modal.query_one(f"#ov-{k}", Input).value for k in training} == training
        assert not modal.query("#field-golden")  # the CLI takes it; the form keeps its look
        modal.query_one("#field-base_model", Select).value = "smollm2-135m-instruct"
        await settle(pilot)
        assert "GET /api/v1/plan" in replay.requests  # not recorded: the verdict says so
        assert "planner:" in str(modal.query_one("#verdict", Static).content)
        modal.query_one("#field-dataset", Select).value = "ops-faq"
        modal.query_one("#ov-max_steps", Input).value = "5"
        modal.query_one("#field-adapter_name", Input).value = "faq-lora"
        await _submitted(pilot, replay)

    _run(replay, scenario)
    assert replay.submitted == [{"type": "finetune", "params": {
        "base_model": "smollm2-135m-instruct", "dataset": "ops-faq", "adapter_name": "faq-lora",
        "overrides": {"max_steps": 5, "learning_rate": 0.0002, "batch_size": 2, "lora_r": 16, "max_seq_length": 2048}}}]


def test_every_kind_gets_a_form_that_sends_typed_params() -> None:
    replay = Recording()
    kinds = replay.responses["GET /api/v1/job-kinds"]["json"]

    async def scenario(app: ApplianceApp, pilot: Pilot[None], modal: SubmitJobModal) -> None:
        for kind in kinds:
            await _choose(pilot, modal, kind["name"])
            for field in kind["fields"]:
                if field["in_form"] and not field["entries"]:
                    assert modal.query_one(f"#field-{field['name']}")
            _press_submit(pilot)  # required fields empty: a warning, the form stays
            await settle(pilot)
            assert isinstance(app.screen, SubmitJobModal)
        await _choose(pilot, modal, "export")
        modal.query_one("#field-adapter", Select).value = "ops-faq-06136032"  # the only adapter offered
        modal.query_one("#field-variants", Input).value = "Q8_0, Q4_K_M"
        modal.query_one("#field-max_new_tokens", Input).value = "many"
        _press_submit(pilot)
        await settle(pilot)
        assert "Max new tokens: 'many' is not a number" in [n.message for n in app._notifications]
        modal.query_one("#field-max_new_tokens", Input).value = "12"
        await _submitted(pilot, replay)

    _run(replay, scenario)
    assert replay.submitted == [{"type": "export", "params": {
        "adapter": "ops-faq-06136032", "variants": ["Q8_0", "Q4_K_M"], "max_new_tokens": 12}}]


def test_a_checkbox_and_the_import_form() -> None:
    replay = Recording()

    async def scenario(app: ApplianceApp, pilot: Pilot[None], modal: SubmitJobModal) -> None:
        await _choose(pilot, modal, "dataset-import")
        modal.query_one("#field-path", Input).value = "/var/lib/slm-appliance/imports/faq.jsonl"
        _press_submit(pilot)
        await settle(pilot)
        assert [n.message for n in app._notifications] == ["required: Dataset name"]
        modal.query_one("#field-name", Input).value = "faq"
        modal.query_one("#field-strict", Checkbox).value = True
        await _submitted(pilot, replay)

    _run(replay, scenario)
    (sent,) = replay.submitted
    assert sent["type"] == "dataset-import" and None not in sent["params"].values()  # empty fields are left out
    assert {k: sent["params"][k] for k in ("path", "name", "strict")} == {
        "path": "/var/lib/slm-appliance/imports/faq.jsonl", "name": "faq", "strict": True}
