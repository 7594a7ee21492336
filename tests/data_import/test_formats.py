"""Dataset import: real JSONL/CSV/Parquet files in every shape, every defect named with its line or row (real
SQLite, the starter model's real tokenizer)."""

from __future__ import annotations

import csv
import json
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from appliance.datasets import DatasetError, DatasetInvalid
from tests.data_import.conftest import alpaca, jsonl, needs_starter, paragraph, template_length, write_lines


@needs_starter
def test_each_defect_named_with_its_line(env, tokenizer):
    datasets, imports = env
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
    lines = [
        json.dumps(alpaca(1)),                                                                 # 1 ok
        "",                                                                                    # 2 blank
        json.dumps({"instruction": "Name a colour.", "input": ""}),                            # 3
        json.dumps({"instruction": "   ", "output": "Blue."}),                                 # 4
        json.dumps({"messages": [{"role": "assistant", "content": "I speak first"},
                                 {"role": "user", "content": "ok"}]}),                        # 5
        json.dumps(chat),                                                                      # 6 ok
        '{"prompt": "Say hi" "completion": "hi"}',                                             # 7
        "[1, 2, 3]",                                                                           # 8
        json.dumps({"messages": [{"role": "wizard", "content": "abracadabra"},
                                 {"role": "assistant", "content": "poof"}]}),                  # 9
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                 {"role": "user", "content": "c"}]}),                          # 10
        json.dumps({"question": "?", "answer": "!"}),                                          # 11
        json.dumps({"prompt": "Say bye", "completion": "Bye."}),                               # 12 ok
        "   ",                                                                                 # 13 blank
        json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}),  # 14
        json.dumps({"instruction": "Count.", "output": 3}),                                    # 15
        json.dumps({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]}),  # 16
    ]
    record = datasets.import_dataset(write_lines(imports / "mixed.jsonl", lines), "mixed", tokenizer=tokenizer,
                                     max_seq_length=512)
    errors = {e.line: str(e) for e in record.report.errors}
    assert errors == {
        3: "line 3: missing field 'output'",
        4: "line 4: empty field 'instruction'",
        5: "line 5: wrong role order: 'assistant' before any 'user'",
        7: "line 7: invalid JSON: Expecting ',' delimiter (column 21)",
        8: "line 8: expected a JSON object, got array",
        9: "line 9: unknown role 'wizard' in message 1; expected one of system, user, assistant, tool",
        10: "line 10: wrong role order: ends with 'user'; the last message must be 'assistant'",
        11: "line 11: unrecognized record: expected 'messages', 'instruction' or 'prompt' fields "
            "(found: 'question', 'answer')",
        14: "line 14: wrong role order: 'user' after 'user' (message 2)",
        15: "line 15: field 'output' must be text, got number",
        16: "line 16: message 2: empty field 'content'",
    }
    report = record.report
    assert (report.records_read, report.records_valid, report.records_invalid, report.error_count) == (14, 3, 11, 11)
    assert report.numbering == "JSONL lines, 1-based"
    assert report.train_count + report.eval_count == 3 and report.eval_count == 1
    assert report.shapes == {"alpaca": 1, "messages": 1, "prompt_completion": 1}


def test_shapes_normalized_to_chat(env):
    datasets, imports = env
    records: list[dict[str, Any]] = [
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},     # Alpaca
        {"instruction": "Name a prime.", "input": "", "output": "7"},                            # Alpaca, no input
        {"instruction": "Who wrote it?", "context": "Hamlet is a play.", "response": "Shakespeare.",
         "category": "closed_qa"},                                                               # Dolly
        {"instruction": "Tell a joke.", "context": "", "response": "Knock knock."},              # Dolly, no context
        {"prompt": "2+2=", "completion": "4", "system": "Be terse."},                            # prompt/completion
        {"messages": [{"role": "system", "content": "You are a calculator."},
                      {"role": "user", "content": "What is 6*7?"},
                      {"role": "assistant", "content": "Let me compute."},
                      {"role": "tool", "content": "42"},
                      {"role": "assistant", "content": [{"type": "text", "text": "It is 42."}]}]},
    ]
    record = datasets.import_dataset(write_lines(imports / "shapes.jsonl", jsonl(*records)), "shapes",
                                     eval_fraction=0.0)
    assert record.report.shapes == {"alpaca": 2, "dolly": 2, "messages": 1, "prompt_completion": 1}
    assert record.report.error_count == 0 and record.eval_count == 0
    assert datasets.load_split(record, "train") == [
        [{"role": "user", "content": "Translate to French.\n\nGood morning"},
         {"role": "assistant", "content": "Bonjour"}],
        [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "7"}],
        [{"role": "user", "content": "Who wrote it?\n\nHamlet is a play."},
         {"role": "assistant", "content": "Shakespeare."}],
        [{"role": "user", "content": "Tell a joke."}, {"role": "assistant", "content": "Knock knock."}],
        [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2="},
         {"role": "assistant", "content": "4"}],
        [{"role": "system", "content": "You are a calculator."}, {"role": "user", "content": "What is 6*7?"},
         {"role": "assistant", "content": "Let me compute."}, {"role": "tool", "content": "42"},
         {"role": "assistant", "content": "It is 42."}],
    ]
    assert datasets.load_split(record, "eval") == []


def test_csv_rows_numbered_without_header(env):
    datasets, imports = env
    path = imports / "data.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["instruction", "input", "output"])
        writer.writerow(["Summarize.", "Line one\nline two", "Two lines."])   # row 1, a quoted multi-line cell
        writer.writerow([])                                                   # row 2, blank: skipped
        writer.writerow(["Name a fruit.", "", ""])                            # row 3
        writer.writerow(["Name a tree.", "", "Oak."])                         # row 4
        writer.writerow(["Too", "many", "values", "here"])                    # row 5
    record = datasets.import_dataset(path, "csvdata")
    assert [str(e) for e in record.report.errors] == ["row 3: empty field 'output'", "row 5: 4 values for 3 columns"]
    assert record.format == "csv" and record.report.numbering == "CSV data rows, 1-based, header excluded"
    conversations = datasets.load_split(record, "train") + datasets.load_split(record, "eval")
    assert [{"role": "user", "content": "Summarize.\n\nLine one\nline two"},
            {"role": "assistant", "content": "Two lines."}] in conversations
    assert len(conversations) == 2


def test_csv_with_messages_column(env):
    datasets, imports = env
    path = imports / "chat.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["messages"])
        writer.writerow([json.dumps([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}])])
        writer.writerow(['[{"role": "user", "content": "Hi"'])
    record = datasets.import_dataset(path, "csvchat")
    assert [str(e) for e in record.report.errors] == [
        "row 2: field 'messages' is not valid JSON: Expecting ',' delimiter (column 34)"]
    assert record.records_valid == 1


def test_parquet_import(env):
    datasets, imports = env
    table = pa.table({"messages": [
        [{"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome."}],
        [{"role": "user", "content": "Spell cat."}, {"role": "wizard", "content": "C-A-T"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Peru?"},
         {"role": "assistant", "content": "Lima."}],
    ]})
    pq.write_table(table, imports / "chat.parquet")
    record = datasets.import_dataset(imports / "chat.parquet", "pq")
    assert record.format == "parquet" and record.report.numbering == "Parquet rows, 1-based"
    assert [str(e) for e in record.report.errors] == [
        "row 2: unknown role 'wizard' in message 2; expected one of system, user, assistant, tool"]
    assert (record.records_read, record.records_valid, record.train_count + record.eval_count) == (3, 2, 2)

    garbage = imports / "broken.parquet"
    garbage.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        datasets.import_dataset(garbage, "broken")


@needs_starter
def test_over_length_record_rejected_with_token_count(env, tokenizer):
    datasets, imports = env
    short = {"instruction": "Say yes.", "output": "Yes."}
    long = {"instruction": "Repeat this. " + paragraph(7, words=500), "output": "Done."}
    path = write_lines(imports / "long.jsonl", jsonl(short, long, alpaca(3)))
    record = datasets.import_dataset(path, "long", tokenizer=tokenizer, max_seq_length=512)
    tokens = template_length(tokenizer, [{"role": "user", "content": long["instruction"]},
                                         {"role": "assistant", "content": "Done."}])
    assert tokens > 512
    assert [str(e) for e in record.report.errors] == [
        f"line 2: {tokens} tokens after the chat template, over the profile's max_seq_length 512"]
    # The starter's template adds its default system prompt; the counts include it.
    short_tokens = template_length(tokenizer, [{"role": "user", "content": "Say yes."},
                                               {"role": "assistant", "content": "Yes."}])
    assert short_tokens > 20
    stats = record.report.token_lengths
    assert stats is not None and stats.max == max(short_tokens, template_length(tokenizer, [
        {"role": "user", "content": alpaca(3)["instruction"]}, {"role": "assistant", "content": "It is 6."}]))
    assert record.report.token_counter == "chat template of the given tokenizer"


def test_without_tokenizer_lengths_are_estimated(env):
    datasets, imports = env
    path = write_lines(imports / "est.jsonl", jsonl(alpaca(1), {"instruction": paragraph(4, 600), "output": "."}))
    record = datasets.import_dataset(path, "est", max_seq_length=512)
    assert record.report.token_counter.startswith("whitespace estimate (no tokenizer given)")
    assert [str(e) for e in record.report.errors] == [
        "line 2: 810 tokens (whitespace estimate), over the profile's max_seq_length 512"]  # 601 words × 4/3 + 8
    assert record.report.token_lengths is not None and record.report.token_lengths.max == 22


def test_strict_mode_refuses_any_defect(env):
    datasets, imports = env
    path = write_lines(imports / "s.jsonl", [json.dumps(alpaca(1)), "{oops", json.dumps(alpaca(2)),
                                             json.dumps({"instruction": "x"})])
    with pytest.raises(DatasetInvalid, match=r"strict mode; 2 defect\(s\): line 2: invalid JSON: .*; "
                                             r"line 4: missing field 'output'"):
        datasets.import_dataset(path, "strict", strict=True)
    assert datasets.all() == [] and not list(datasets.datasets_dir.glob("*"))
    assert datasets.import_dataset(path, "lenient").records_valid == 2


def test_empty_and_all_invalid_files_refused(env):
    datasets, imports = env
    (imports / "empty.jsonl").write_bytes(b"")
    with pytest.raises(DatasetInvalid, match="no records"):
        datasets.import_dataset(imports / "empty.jsonl", "empty")
    write_lines(imports / "blank.jsonl", ["", "   ", ""])
    with pytest.raises(DatasetInvalid, match="no records"):
        datasets.import_dataset(imports / "blank.jsonl", "blank")
    (imports / "header.csv").write_text("instruction,input,output\n")
    with pytest.raises(DatasetInvalid, match="no records"):
        datasets.import_dataset(imports / "header.csv", "header")
    write_lines(imports / "bad.jsonl", ["nope", json.dumps({"prompt": "p"})])
    with pytest.raises(DatasetInvalid, match=r"no valid records; 2 defect\(s\): line 1: invalid JSON: "
                                             r".*; line 2: missing field 'completion'"):
        datasets.import_dataset(imports / "bad.jsonl", "bad")
    assert datasets.all() == []
