"""Exports of reviewed items in the three shapes, each row with its lineage, and their import through the real
dataset pipeline (validation, dedup, split; the lineage kept with each stored record)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest

from appliance.capture.export import ExportSelection, NothingToExport, write_export
from appliance.capture.feedback import record_feedback
from appliance.capture.models import ChatMessage, FeedbackBody, ReviewDecision
from appliance.capture.review import decide
from appliance.datasets import DatasetStore
from appliance.datasets.pipeline import Options, prepare
from appliance.errors import BadRequest
from appliance.security.keys import ApiKey
from appliance.state import StateStore
from tests.capture.conftest import T0, insert, item

SUM = "What is 2+2?"
CORRECTION = [{"role": "assistant", "content": "2+2 is 4."}]
EDIT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."}]


def _feedback(store: StateStore, key: ApiKey, response_id: str, **fields: Any) -> None:
    record_feedback(store, key, FeedbackBody.model_validate({"response_id": response_id, **fields}), now=T0 + 50)


def _decide(store: StateStore, response_id: str, action: str, messages: list[dict[str, str]] | None = None) -> None:
    decide(store, response_id, ReviewDecision.model_validate({"action": action, "messages": messages}), "ops",
           now=T0 + 100)


@pytest.fixture
def reviewed(store: StateStore, keys: dict[str, ApiKey]) -> StateStore:
    app = keys["app"]
    tool_turn = [ChatMessage(role="user", content="Weather?"), ChatMessage(role="assistant", content=None),
                 ChatMessage(role="tool", content='{"temp": 21}')]
    insert(store,
           item("chatcmpl-a", key=app, created_at=T0 + 1, question=SUM, answer="4."),              # up
           item("chatcmpl-b", key=app, created_at=T0 + 2, question="What is 3+3?", answer="7."),   # corrected
           item("chatcmpl-c", key=app, created_at=T0 + 3, question="Capital of France?", answer="Lyon."),  # edited
           item("chatcmpl-d", key=app, created_at=T0 + 4, question=SUM, answer="5."),              # down, pairs with a
           item("chatcmpl-e", key=app, created_at=T0 + 5),                                        # accepted, no rating
           item("chatcmpl-f", key=app, created_at=T0 + 6),                                        # rejected
           item("chatcmpl-g", key=app, created_at=T0 + 7),                                        # pending
           item("chatcmpl-h", key=app, created_at=T0 + 8),                                        # neutral (3)
           item("chatcmpl-i", key=app, created_at=T0 + 9, messages=tool_turn, answer="21 degrees."),  # tool turn
           item("chatcmpl-j", key=app, deployment="code", created_at=T0 + 10))                    # other deployment
    _feedback(store, app, "chatcmpl-a", rating="up", tags=["math"])
    _feedback(store, app, "chatcmpl-b", rating="down", correction=[{"role": "assistant", "content": "6."}])
    _feedback(store, app, "chatcmpl-c", rating=1, comment="wrong city")
    _feedback(store, app, "chatcmpl-d", rating="down")
    _feedback(store, app, "chatcmpl-f", rating="up")
    _feedback(store, app, "chatcmpl-h", rating=3)
    _feedback(store, app, "chatcmpl-i", rating="up")
    for accepted in "abdehij":
        _decide(store, f"chatcmpl-{accepted}", "accept")
    _decide(store, "chatcmpl-c", "edit", EDIT)
    _decide(store, "chatcmpl-f", "reject")
    return store


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _prompt(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": question}]


def _answer(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_sft_rows(reviewed: StateStore, tmp_path: Path) -> None:
    result = write_export(reviewed, "sft", tmp_path, "sft-rows", ExportSelection(deployment="chat"))
    rows = _rows(Path(result.path))
    assert [(r["metadata"]["capture_id"], r["metadata"]["answer_from"]) for r in rows] == [
        ("chatcmpl-a", "original"), ("chatcmpl-b", "correction"), ("chatcmpl-c", "edit"),
        ("chatcmpl-e", "original"), ("chatcmpl-h", "original")]
    assert rows[1]["messages"] == [*_prompt("What is 3+3?"), *_answer("6.")]
    assert rows[2]["messages"] == EDIT
    skipped = {s.response_id: s.reason for s in result.skipped}
    assert skipped["chatcmpl-d"].startswith("rated down with no correction or edit")
    assert "the dataset import would refuse it: message 2: empty field 'content'" in skipped["chatcmpl-i"]
    assert (result.kind, result.rows, result.items) == ("sft", 5, 5)
    lineage = rows[0]["metadata"]
    assert lineage == {
        "source": "capture", "capture_id": "chatcmpl-a", "deployment": "chat", "model_id": "m1",
        "model_name": "smollm2", "captured_at": T0 + 1, "answer_from": "original",
        "feedback": {"rating": "up", "score": 5, "label": True, "corrected": False, "comment": "", "tags": ["math"],
                     "at": T0 + 50},
        "review": {"state": "accepted", "reviewer": "ops", "note": "", "decided_at": T0 + 100},
    }


def test_preference_rows(reviewed: StateStore, tmp_path: Path) -> None:
    result = write_export(reviewed, "preference", tmp_path, "pairs")
    rows = {r["metadata"]["capture_id"]: r for r in _rows(Path(result.path))}
    assert set(rows) == {"chatcmpl-b", "chatcmpl-c", "chatcmpl-d"}
    assert rows["chatcmpl-b"]["chosen"] == _answer("6.") and rows["chatcmpl-b"]["rejected"] == _answer("7.")
    assert rows["chatcmpl-b"]["metadata"]["chosen_from"] == "correction"
    # the edited prompt, the edited answer against the original one
    assert rows["chatcmpl-c"]["prompt"] == EDIT[:2] and rows["chatcmpl-c"]["chosen"] == _answer("Paris.")
    assert rows["chatcmpl-c"]["rejected"] == _answer("Lyon.")
    assert rows["chatcmpl-c"]["metadata"]["chosen_from"] == "edit"
    # rated down with nothing better: paired with the up-rated answer to the same prompt
    assert rows["chatcmpl-d"]["prompt"] == _prompt(SUM)
    assert (rows["chatcmpl-d"]["chosen"], rows["chatcmpl-d"]["rejected"]) == (_answer("4."), _answer("5."))
    assert rows["chatcmpl-d"]["metadata"]["chosen_capture_id"] == "chatcmpl-a"
    skipped = {s.response_id for s in result.skipped}
    assert skipped == {"chatcmpl-e", "chatcmpl-h", "chatcmpl-i", "chatcmpl-j"}  # chatcmpl-a is used as chosen
    assert result.items == 4


def test_kto_rows(reviewed: StateStore, tmp_path: Path) -> None:
    result = write_export(reviewed, "kto", tmp_path, "thumbs", ExportSelection(until=T0 + 9.5))
    rows = [(r["metadata"]["capture_id"], r["completion"][0]["content"], r["label"], r["metadata"]["answer_from"])
            for r in _rows(Path(result.path))]
    assert rows == [
        ("chatcmpl-a", "4.", True, "original"),
        ("chatcmpl-b", "7.", False, "original"), ("chatcmpl-b", "6.", True, "correction"),
        ("chatcmpl-c", "Lyon.", False, "original"), ("chatcmpl-c", "Paris.", True, "edit"),
        ("chatcmpl-d", "5.", False, "original"),
    ]
    reasons = {s.response_id: s.reason for s in result.skipped}
    assert set(reasons) == {"chatcmpl-e", "chatcmpl-h", "chatcmpl-i"}
    assert reasons["chatcmpl-e"] == "no thumbs rating and no correction or edit: no KTO label"
    assert reasons["chatcmpl-i"] == ("the dataset import would refuse it: field 'prompt': message 2: "
                                     "empty field 'content'")  # a tool call: no text to learn from


def test_the_file_is_replaced_whole_and_nothing_is_refused_loudly(reviewed: StateStore, tmp_path: Path) -> None:
    out = tmp_path / "exports"
    out.mkdir()
    first = write_export(reviewed, "kto", out, "again")
    second = write_export(reviewed, "kto", out, "again", ExportSelection(response_ids=["chatcmpl-a"]))
    assert first.path == second.path and len(_rows(Path(second.path))) == 1
    assert sorted(p.name for p in out.iterdir()) == ["again.jsonl"]  # no temp file left
    with pytest.raises(NothingToExport, match="nothing to export as preference: chatcmpl-e: no rejected answer"):
        write_export(reviewed, "preference", tmp_path, "none", ExportSelection(response_ids=["chatcmpl-e"]))
    with pytest.raises(NothingToExport, match="no accepted items"):
        write_export(reviewed, "sft", tmp_path, "none", ExportSelection(deployment="nothing"))
    with pytest.raises(BadRequest, match="invalid export name"):
        write_export(reviewed, "sft", tmp_path, "../escape")


@pytest.mark.parametrize("kind", ["sft", "preference", "kto"])
def test_exports_pass_the_import_pipeline(reviewed: StateStore, tmp_path: Path, kind: Any) -> None:
    result = write_export(reviewed, kind, tmp_path, f"export-{kind}")
    data = Path(result.path).read_bytes()
    prepared = prepare(data, "jsonl", Options(kind=kind, eval_fraction=0.0))
    report = prepared.report
    assert (report.kind, report.records_read, report.records_valid, report.error_count) == (
        kind, result.rows, result.rows, 0)
    assert [r["metadata"] for r in prepared.train] == [json.loads(line)["metadata"] for line in data.splitlines()]


def test_an_sft_export_becomes_a_dataset_version_with_lineage(reviewed: StateStore, tmp_path: Path) -> None:
    imports = tmp_path / "imports"
    imports.mkdir()
    result = write_export(reviewed, "sft", imports, "reviewed")
    datasets = DatasetStore(reviewed, tmp_path / "datasets", [imports])
    record = datasets.import_dataset(Path(result.path), "reviewed", eval_fraction=0.2)
    assert record.records_valid == result.rows and record.report.kind == "sft"
    stored = [json.loads(line) for split in ("train", "eval")
              for line in record.split_file(split).read_text().splitlines()]
    assert sorted(r["metadata"]["capture_id"] for r in stored) == [
        "chatcmpl-a", "chatcmpl-b", "chatcmpl-c", "chatcmpl-e", "chatcmpl-h", "chatcmpl-j"]
    conversations = datasets.load_split(record, "train") + datasets.load_split(record, "eval")
    assert [*_prompt("What is 3+3?"), *_answer("6.")] in conversations  # what training reads: messages only


@pytest.mark.skipif("kind" not in inspect.signature(DatasetStore.import_dataset).parameters,
                    reason="DatasetStore.import_dataset takes no kind yet (the store.py change in the report)")
@pytest.mark.parametrize("kind", ["preference", "kto"])
def test_preference_and_kto_exports_become_dataset_versions(reviewed: StateStore, tmp_path: Path, kind: Any) -> None:
    imports = tmp_path / "imports"
    imports.mkdir()
    result = write_export(reviewed, kind, imports, f"reviewed-{kind}")
    datasets = DatasetStore(reviewed, tmp_path / "datasets", [imports])
    record = datasets.import_dataset(Path(result.path), f"reviewed-{kind}", kind=kind)  # type: ignore[call-arg]
    assert record.report.kind == kind and record.records_valid == result.rows
    again = DatasetStore(reviewed, tmp_path / "datasets", [imports]).get(f"reviewed-{kind}")
    assert again.report.kind == kind
