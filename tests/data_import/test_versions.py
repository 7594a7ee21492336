"""Dataset import: duplicates, the seeded split, content-addressed versions, import roots and names (real
files, real SQLite)."""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest

from appliance.datasets import DatasetError, DatasetNotFound, content_id
from tests.data_import.conftest import alpaca, jsonl, paragraph, write_lines


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
