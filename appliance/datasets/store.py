"""Dataset versions: content-addressed, immutable directories plus one SQLite row per (name, version).

A version's id is the sha256 of its canonical train/eval JSONL (split.content_id); its files live in
`<datasets_dir>/<id>/` (train.jsonl, eval.jsonl, report.json), written to a temp dir, fsynced and renamed in
while the row is inserted (`appliance.state.staged`, as the registry does), so a crash leaves either both or
neither (a `.tmp-*` or an unreferenced `<id>` folder at worst, which the startup sweep removes). The same
content under two names shares one directory; its report.json is the first import's, and each row keeps its own
report.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from appliance.datasets.errors import DatasetError, DatasetInvalid, DatasetNotFound, DatasetStorageFull
from appliance.datasets.formats import detect_format
from appliance.datasets.kinds import DEFAULT_KIND, Record
from appliance.datasets.paths import checked_source
from appliance.datasets.pipeline import Options, prepare
from appliance.datasets.report import ImportReport
from appliance.datasets.semantic import SemanticOptions
from appliance.datasets.split import Conversation, canonical_jsonl, content_id
from appliance.datasets.validate import ChatTokenizer
from appliance.names import NAME
from appliance.state.staged import Staging, staged_import
from appliance.state.store import StateStore

SPLITS = ("train", "eval")
Split = Literal["train", "eval"]


class DatasetRecord(BaseModel):
    id: str
    name: str
    version: int
    path: str
    source: str
    source_sha256: str
    format: str
    records_read: int
    records_valid: int
    records_invalid: int
    duplicates_removed: int
    train_count: int
    eval_count: int
    created_at: float
    report: ImportReport

    def split_file(self, split: Split) -> Path:
        return Path(self.path) / f"{split}.jsonl"


def _write_file(path: Path, data: bytes) -> None:
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    path.chmod(0o444)  # immutable: a version's files never change after import


def _read_source(real: Path) -> bytes:
    # O_NOFOLLOW + fstat: the checked path cannot be swapped for a symlink or a FIFO before we read it.
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise DatasetError(f"{real}: cannot read: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise DatasetError(f"{real}: not a regular file")
        return fh.read()


class DatasetStore:
    def __init__(self, store: StateStore, datasets_dir: Path, import_roots: list[Path]) -> None:
        self.store = store
        self.datasets_dir = datasets_dir
        self.import_roots = [r.resolve() for r in import_roots]

    # -- import -------------------------------------------------------------------------------------
    def import_dataset(self, source: Path, name: str, *, tokenizer: ChatTokenizer | None = None,
                       max_seq_length: int | None = None, eval_fraction: float = 0.1, seed: int = 0,
                       near_dup_threshold: float = 0.9, strict: bool = False,
                       file_format: str | None = None, kind: str = DEFAULT_KIND,
                       semantic: SemanticOptions | None = None) -> DatasetRecord:
        """Validate, deduplicate and split `source` and store it as a new version of `name` (or return the
        existing version of `name` with exactly this content). The operator's file is only read.

        Args:
            tokenizer: counts tokens through its chat template; None falls back to a whitespace estimate.
            max_seq_length: records longer than this (after the chat template) are rejected.
            strict: refuse the whole file on any defect instead of keeping the valid records.
            file_format: "jsonl", "csv" or "parquet"; None tells it from the suffix.
            kind: what a record holds: sft (conversations), preference or kto (appliance.datasets.kinds).
            semantic: also drop records an embeddings model finds too close in meaning (datasets.semantic).
        Raises:
            DatasetError: refused (bad name or path, unreadable file); DatasetInvalid: no valid record, or a
            defect in strict mode; the message names the first defects with their line or row numbers.
        """
        if not NAME.match(name):
            raise DatasetError(
                f"invalid dataset name {name!r}: 1-64 lowercase letters, digits, '.', '_' or '-', starting alnum"
            )
        real = checked_source(source, self.import_roots)
        fmt = detect_format(real, file_format)
        data = _read_source(real)
        options = Options(tokenizer=tokenizer, max_seq_length=max_seq_length, eval_fraction=eval_fraction,
                          seed=seed, near_dup_threshold=near_dup_threshold, kind=kind, semantic=semantic)
        prepared = prepare(data, fmt, options)
        report = prepared.report
        if report.records_read == 0:
            raise DatasetInvalid(f"{source}: no records (the file is empty)")
        if report.records_valid == 0:
            raise DatasetInvalid(f"{source}: no valid records; {report.error_count} defect(s): "
                                 f"{report.first_errors()}")
        if strict and report.error_count:
            raise DatasetInvalid(f"{source}: refused in strict mode; {report.error_count} defect(s): "
                                 f"{report.first_errors()}")
        train, evaluation = canonical_jsonl(prepared.train), canonical_jsonl(prepared.eval)
        version_id = content_id(train, evaluation)
        existing = self.store.query_one("SELECT * FROM datasets WHERE name = ? AND id = ?", (name, version_id))
        if existing is not None:
            return self._from_row(existing)
        return self._save(version_id, name, source, hashlib.sha256(data).hexdigest(), fmt, train, evaluation,
                          report)

    def _save(self, version_id: str, name: str, source: Path, source_sha: str, fmt: str, train: bytes,
              evaluation: bytes, report: ImportReport) -> DatasetRecord:
        target = self.datasets_dir / version_id
        with staged_import(target, source, DatasetError, full=DatasetStorageFull) as staging:
            _write_file(staging.path / "train.jsonl", train)
            _write_file(staging.path / "eval.jsonl", evaluation)
            _write_file(staging.path / "report.json", report.model_dump_json(indent=2).encode())
            staging.seal()
            with self.store.transaction() as conn:
                existing = conn.execute("SELECT * FROM datasets WHERE name = ? AND id = ?",
                                        (name, version_id)).fetchone()
                if existing is not None:  # an identical import won the race
                    return self._from_row(existing)
                row = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM datasets WHERE name = ?",
                                   (name,)).fetchone()
                record = DatasetRecord(
                    id=version_id, name=name, version=int(row[0]), path=str(target), source=str(source),
                    source_sha256=source_sha, format=fmt, records_read=report.records_read,
                    records_valid=report.records_valid, records_invalid=report.records_invalid,
                    duplicates_removed=report.duplicates_removed, train_count=report.train_count,
                    eval_count=report.eval_count, created_at=time.time(), report=report,
                )
                conn.execute(
                    "INSERT INTO datasets(id, name, version, source, source_sha256, format, records_read, "
                    "records_valid, records_invalid, duplicates_removed, train_count, eval_count, report, "
                    "created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (record.id, record.name, record.version, record.source, record.source_sha256, record.format,
                     record.records_read, record.records_valid, record.records_invalid,
                     record.duplicates_removed, record.train_count, record.eval_count,
                     report.model_dump_json(), record.created_at),
                )
                self._install(staging, version_id)
        return record

    def _install(self, staging: Staging, version_id: str) -> None:
        """Put the staged folder in place (inside the row's transaction), unless the same content is already
        there under another name: then the two rows share it."""
        target = staging.target
        if target.exists():
            if self._content_id(target) == version_id:
                return  # the same content is already stored (under another name): share it
            # Damaged (changed by hand): move it aside and put the good copy in its place.
            trash = target.with_name(f".trash-{uuid.uuid4().hex[:12]}")
            os.rename(target, trash)
            shutil.rmtree(trash, ignore_errors=True)
        staging.install()

    # -- queries ------------------------------------------------------------------------------------
    def _from_row(self, row: Any) -> DatasetRecord:
        fields = dict(row)
        report = ImportReport.model_validate_json(fields.pop("report"))
        return DatasetRecord(**fields, path=str(self.datasets_dir / row["id"]), report=report)

    def all(self) -> list[DatasetRecord]:
        return [self._from_row(r) for r in self.store.query("SELECT * FROM datasets ORDER BY name, version")]

    def versions(self, name: str) -> list[DatasetRecord]:
        rows = self.store.query("SELECT * FROM datasets WHERE name = ? ORDER BY version", (name,))
        return [self._from_row(r) for r in rows]

    def get(self, name_or_id: str, version: int | None = None) -> DatasetRecord:
        """A name's latest version (or `version`), or a version by its id."""
        if version is not None:
            row = self.store.query_one("SELECT * FROM datasets WHERE name = ? AND version = ?",
                                       (name_or_id, version))
            if row is None:
                raise DatasetNotFound(f"dataset {name_or_id!r} has no version {version}")
            return self._from_row(row)
        row = self.store.query_one(
            "SELECT * FROM datasets WHERE name = ? OR id = ? ORDER BY (name = ?) DESC, version DESC LIMIT 1",
            (name_or_id, name_or_id, name_or_id),
        )
        if row is None:
            raise DatasetNotFound(f"no dataset named {name_or_id!r}")
        return self._from_row(row)

    def get_ref(self, ref: str) -> DatasetRecord:
        """`name` (latest version) or `name@version`."""
        name, _, version = ref.partition("@")
        if version and not version.isdigit():
            raise DatasetNotFound(f"dataset reference {ref!r}: the version after '@' must be a number")
        return self.get(name, int(version) if version else None)

    def load_records(self, record: DatasetRecord, split: Split) -> list[Record]:
        """The records of a split as stored (their shape follows the version's kind)."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; use train or eval")
        path = record.split_file(split)
        try:
            lines = path.read_bytes().split(b"\n")
        except OSError as exc:
            raise DatasetError(f"dataset {record.name} v{record.version}: cannot read {path}: {exc.strerror}") from exc
        return [json.loads(line) for line in lines if line]

    def load_split(self, record: DatasetRecord, split: Split) -> list[Conversation]:
        """The conversations of an sft version's split."""
        if record.report.kind != DEFAULT_KIND:
            raise DatasetError(f"dataset {record.name} v{record.version} holds {record.report.kind} records, not "
                               "conversations")
        return [r["messages"] for r in self.load_records(record, split)]

    @staticmethod
    def _content_id(folder: Path) -> str | None:
        try:
            return content_id((folder / "train.jsonl").read_bytes(), (folder / "eval.jsonl").read_bytes())
        except OSError:
            return None

    def verify(self, record: DatasetRecord) -> bool:
        """True when the stored files still hash to the version id."""
        return self._content_id(Path(record.path)) == record.id
