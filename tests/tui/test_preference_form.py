"""The preference kinds in the TUI's submit form, built from the registry as this tree describes it (the recorded
`GET /api/v1/job-kinds` answer replaced by `describe` of today's kinds): a DPO job's form starts its overrides
from the profile like a fine-tune's, offers the datasets, takes beta as a number, and sends typed params."""

from __future__ import annotations

from typing import Any

from textual.widgets import Input, Select

from appliance.jobs.kinds import KINDS
from appliance.jobs.kinds.form import describe
from tests.tui.test_submit_form import Recording, _choose, _press_submit, _run, _submitted
from tui.app import ApplianceApp
from tui.tour import settle
from tui.widgets.submit import SubmitJobModal


def _live_kinds() -> Recording:
    replay = Recording()
    replay.responses["GET /api/v1/job-kinds"]["json"] = [describe(k).model_dump(mode="json") for k in KINDS]
    return replay


def test_the_dpo_form_sends_typed_params() -> None:
    replay = _live_kinds()

    async def scenario(app: ApplianceApp, pilot: Any, modal: SubmitJobModal) -> None:
        await _choose(pilot, modal, "dpo")
        assert modal.query_one("#ov-learning_rate", Input).value == "0.0002"  # the recorded profile's table
        assert not modal.query("#field-precompute_ref_log_probs")  # the planner decides; the CLI may say
        modal.query_one("#field-base_model", Select).value = "smollm2-135m-instruct"
        modal.query_one("#field-dataset", Select).value = "ops-faq"
        modal.query_one("#field-beta", Input).value = "lots"
        _press_submit(pilot)
        await settle(pilot)
        assert isinstance(app.screen, SubmitJobModal)
        assert "Beta: 'lots' is not a number" in [n.message for n in app._notifications]
        modal.query_one("#field-beta", Input).value = "0.2"
        modal.query_one("#ov-max_steps", Input).value = "4"
        await _submitted(pilot, replay)

    _run(replay, scenario)
    (sent,) = replay.submitted
    assert sent["type"] == "dpo"
    assert {k: sent["params"][k] for k in ("base_model", "dataset", "beta")} == {
        "base_model": "smollm2-135m-instruct", "dataset": "ops-faq", "beta": 0.2}
    assert sent["params"]["overrides"]["max_steps"] == 4


def test_kto_and_orpo_get_their_forms() -> None:
    replay = _live_kinds()

    async def scenario(app: ApplianceApp, pilot: Any, modal: SubmitJobModal) -> None:
        for kind in ("kto", "orpo"):
            await _choose(pilot, modal, kind)
            assert modal.query_one("#field-dataset", Select) and modal.query_one("#field-beta", Input)
            _press_submit(pilot)  # required fields empty: a warning, the form stays
            await settle(pilot)
            assert isinstance(app.screen, SubmitJobModal)

    _run(replay, scenario)
