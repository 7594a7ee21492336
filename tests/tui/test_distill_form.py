"""The distillation and the semantic-dedup import in the TUI's submit form, built from the registry as this
tree describes it (the recorded `GET /api/v1/job-kinds` answer replaced by `describe` of today's kinds): the
fields show, the capture filters are one input each, and the params it sends are typed."""

from __future__ import annotations

from typing import Any

from textual.widgets import Checkbox, Input, Select

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


def test_the_distill_form_sends_typed_params() -> None:
    replay = _live_kinds()

    async def scenario(app: ApplianceApp, pilot: Any, modal: SubmitJobModal) -> None:
        await _choose(pilot, modal, "distill")
        for name in ("rated", "deployment", "since", "limit"):
            assert modal.query_one(f"#ov-{name}", Input).value == ""  # the capture filters start empty
        _press_submit(pilot)
        await settle(pilot)
        assert isinstance(app.screen, SubmitJobModal)
        assert any("Teacher (served name)" in n.message for n in app._notifications)
        modal.query_one("#field-teacher", Input).value = "smollm2-135m-instruct"
        modal.query_one("#field-output_dataset", Input).value = "distilled"
        modal.query_one("#field-dataset", Select).value = "ops-faq"
        modal.query_one("#field-captured", Checkbox).value = True
        modal.query_one("#ov-rated", Input).value = "up"
        modal.query_one("#ov-limit", Input).value = "50"
        modal.query_one("#field-n", Input).value = "2"
        modal.query_one("#field-temperature", Input).value = "0.5"
        await _submitted(pilot, replay)

    _run(replay, scenario)
    assert replay.submitted == [{"type": "distill", "params": {
        "teacher": "smollm2-135m-instruct", "output_dataset": "distilled", "dataset": "ops-faq", "split": "both",
        "captured": True, "capture_filter": {"rated": "up", "limit": 50}, "temperature": 0.5, "n": 2,
        "keep_truncated": False}}]


def test_the_import_form_offers_semantic_dedup() -> None:
    replay = _live_kinds()

    async def scenario(app: ApplianceApp, pilot: Any, modal: SubmitJobModal) -> None:
        await _choose(pilot, modal, "dataset-import")
        modal.query_one("#field-path", Input).value = "/var/lib/slm-appliance/imports/faq.jsonl"
        modal.query_one("#field-name", Input).value = "faq"
        modal.query_one("#field-semantic_dedup", Checkbox).value = True
        assert modal.query_one("#field-embeddings_deployment", Input).placeholder == "default: minilm-embeddings"
        modal.query_one("#field-semantic_threshold", Input).value = "0.85"
        await _submitted(pilot, replay)

    _run(replay, scenario)
    (sent,) = replay.submitted
    assert {k: sent["params"].get(k) for k in ("semantic_dedup", "semantic_threshold")} == {
        "semantic_dedup": True, "semantic_threshold": 0.85}
