"""Dataset record kinds besides SFT conversations: preference pairs and KTO rows, with the same line-numbered
validation, dedup and seeded split; per-record metadata (lineage) kept with the record and out of dedup and the
split's ranking. Through the real pipeline (`prepare`) and, for SFT with metadata, the real dataset store."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from appliance.datasets import DatasetError
from appliance.datasets.pipeline import Options, prepare
from appliance.datasets.split import canonical_jsonl
from tests.data_import.conftest import jsonl, paragraph, write_lines

USER = [{"role": "user", "content": "Capital of France?"}]


def _prepare(kind: str, records: list[Any], **options: Any) -> Any:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return prepare(("\n".join(lines) + "\n").encode(), "jsonl", Options(kind=kind, **options))


def _pair(i: int, **fields: Any) -> dict[str, Any]:
    return {"prompt": f"Question {i}: what is {i} plus {i}?", "chosen": f"It is {2 * i}.",
            "rejected": f"It is {2 * i + 1}.", **fields}


def test_preference_defects_named_with_their_line() -> None:
    lines = [
        _pair(1),                                                                                   # 1 ok
        {"prompt": "Hi", "chosen": "Hello"},                                                        # 2
        {"prompt": [*USER, {"role": "assistant", "content": "Paris"}], "chosen": "a", "rejected": "b"},  # 3
        {"prompt": USER, "chosen": [{"role": "user", "content": "x"}], "rejected": "b"},           # 4
        {"prompt": "Same?", "chosen": "Yes.", "rejected": "Yes."},                                  # 5
        {"prompt": USER, "chosen": "Paris.", "rejected": 7},                                        # 6
        {"prompt": USER, "chosen": [{"role": "assistant"}], "rejected": "Lyon."},                  # 7
        {**_pair(8), "metadata": "not an object"},                                                  # 8
        {"prompt": "  ", "chosen": "a", "rejected": "b"},                                           # 9
        {"prompt": USER, "chosen": [{"role": "assistant", "content": "call"}, {"role": "tool", "content": "1"}],
         "rejected": "b"},                                                                          # 10
        {"prompt": USER, "chosen": [{"role": "assistant", "content": "Paris."}], "rejected": "Lyon."},  # 11 ok
    ]
    report = _prepare("preference", lines).report
    assert {e.line: e.message for e in report.errors} == {
        2: "missing field 'rejected'",
        3: "field 'prompt' must end with a 'user' message (it ends with 'assistant')",
        4: "field 'chosen': message 1 is 'user'; an answer holds only 'assistant' (and 'tool') messages",
        5: "'chosen' and 'rejected' are the same answer",
        6: "field 'rejected' must be text or a list of messages, got number",
        7: "field 'chosen': message 1: missing field 'content'",
        8: "field 'metadata' must be an object, got string",
        9: "empty field 'prompt'",
        10: "prompt + chosen: wrong role order: ends with 'tool'; the last message must be 'assistant'",
    }
    assert (report.kind, report.records_valid, report.shapes) == (
        "preference", 2, {"preference_messages": 1, "preference_text": 1})


def test_preference_records_stored_as_message_lists_and_deduplicated() -> None:
    as_text = _pair(1)
    as_messages = {"prompt": [{"role": "user", "content": as_text["prompt"]}],
                   "chosen": [{"role": "assistant", "content": as_text["chosen"]}],
                   "rejected": [{"role": "assistant", "content": as_text["rejected"]}]}
    other_rejected = {**as_text, "rejected": "No idea."}  # same prompt and chosen: another pair, kept
    prepared = _prepare("preference", [as_text, as_messages, other_rejected], eval_fraction=0.0)
    assert [(d.line, d.kind, d.duplicate_of) for d in prepared.report.duplicates] == [(2, "exact", 1)]
    assert prepared.train == [as_messages, {**as_messages, "rejected": [{"role": "assistant",
                                                                          "content": "No idea."}]}]


def test_kto_rows_and_labels() -> None:
    lines = [
        {"prompt": "Say hi.", "completion": "Hi!", "label": True},         # 1 ok
        {"prompt": "Say hi.", "completion": "Go away.", "label": False},   # 2 ok: the other label
        {"prompt": "Say hi.", "completion": "Hi!", "label": "yes"},        # 3
        {"prompt": "Say hi.", "completion": "Hi!"},                        # 4
        {"prompt": "Say hi.", "completion": "Hi!", "label": 1},            # 5
        {"prompt": "Say hi.", "completion": "Hi!", "label": True},         # 6 duplicate of 1
        {"prompt": "Say hi.", "completion": "Hi!", "label": False},        # 7 contradicts 1: kept, not a duplicate
    ]
    prepared = _prepare("kto", lines, eval_fraction=0.0)
    report = prepared.report
    assert {e.line: e.message for e in report.errors} == {
        3: "field 'label' must be true or false, got string",
        4: "missing field 'label'",
        5: "field 'label' must be true or false, got number",
    }
    assert [(d.line, d.duplicate_of) for d in report.duplicates] == [(6, 1)]
    assert [r["label"] for r in prepared.train] == [True, False, False]
    assert prepared.train[0] == {"prompt": [{"role": "user", "content": "Say hi."}],
                                 "completion": [{"role": "assistant", "content": "Hi!"}], "label": True}


def test_csv_cells_hold_text_json_messages_and_labels() -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["prompt", "completion", "label", "metadata"])
    writer.writerow(["Say hi.", "Hi!", "true", '{"capture_id": "chatcmpl-1"}'])
    writer.writerow([json.dumps(USER), "Paris.", "FALSE", ""])
    writer.writerow(["Say bye.", "Bye.", "maybe", ""])
    prepared = prepare(out.getvalue().encode(), "csv", Options(kind="kto", eval_fraction=0.0))
    assert [str(e) for e in prepared.report.errors] == ["row 3: field 'label' must be true or false, got string"]
    assert prepared.train[0]["metadata"] == {"capture_id": "chatcmpl-1"} and prepared.train[0]["label"] is True
    assert prepared.train[1]["prompt"] == USER and prepared.train[1]["label"] is False
    assert prepared.report.shapes == {"kto_messages": 1, "kto_text": 1}


def test_the_longer_answer_of_a_pair_is_checked_against_max_seq_length() -> None:
    long = {"prompt": "Summarize.", "chosen": "Short.", "rejected": paragraph(9, 600)}
    report = _prepare("preference", [_pair(1), long], max_seq_length=512).report
    assert [str(e) for e in report.errors] == [  # 601 words × 4/3 + 2 messages × 4
        "line 2: 810 tokens (whitespace estimate), over the profile's max_seq_length 512"]


def test_metadata_kept_but_outside_dedup_and_the_split() -> None:
    plain = [_pair(i) for i in range(30)]
    traced = [{**r, "metadata": {"capture_id": f"chatcmpl-{i}"}} for i, r in enumerate(plain)]
    without, with_ = _prepare("preference", plain), _prepare("preference", traced)
    strip = [{k: v for k, v in r.items() if k != "metadata"} for r in with_.eval]
    assert strip == without.eval and len(without.eval) == 3  # the same members, whatever the lineage
    assert [r["metadata"]["capture_id"] for r in with_.eval] == [f"chatcmpl-{i}" for i in (
        int(r["prompt"][0]["content"].split()[1].rstrip(":")) for r in with_.eval)]
    again = _prepare("preference", [*traced[:2], {**plain[0], "metadata": {"capture_id": "another"}}])
    assert [(d.line, d.duplicate_of) for d in again.report.duplicates] == [(3, 1)]  # lineage is not content


def test_sft_lines_unchanged_and_metadata_stored_with_the_version(env: Any) -> None:
    datasets, imports = env
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    plain = _prepare("sft", [{"messages": chat}], eval_fraction=0.0)
    assert canonical_jsonl(plain.train) == canonical_jsonl([chat])  # the bytes that name a version: as before
    path = write_lines(imports / "traced.jsonl", jsonl({"messages": chat, "metadata": {"capture_id": "chatcmpl-9"}},
                                                       {"prompt": "2+2=", "completion": "4"}))
    record = datasets.import_dataset(path, "traced", eval_fraction=0.0)
    stored = [json.loads(line) for line in record.split_file("train").read_text().splitlines()]
    assert stored[0] == {"messages": chat, "metadata": {"capture_id": "chatcmpl-9"}} and "metadata" not in stored[1]
    assert datasets.load_split(record, "train")[0] == chat and record.report.kind == "sft"


def test_unknown_kind_refused() -> None:
    with pytest.raises(DatasetError, match="unknown dataset kind 'dpo'; use one of sft, preference, kto"):
        _prepare("dpo", [_pair(1)])
