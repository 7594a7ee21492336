"""Read a dataset file's bytes into raw records, each tagged with its place in the file.

JSONL counts physical lines (1-based) and skips blank ones; CSV counts data rows (1-based, header excluded,
blank rows skipped but counted, so the numbers match a spreadsheet's minus one); Parquet counts rows 1-based.
A record that cannot even be parsed comes back with `error` set, so the caller reports it and goes on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.datasets.errors import DatasetError

FORMATS = ("jsonl", "csv", "parquet")
SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
UNITS = {"jsonl": "line", "csv": "row", "parquet": "row"}
NUMBERING = {
    "jsonl": "JSONL lines, 1-based",
    "csv": "CSV data rows, 1-based, header excluded",
    "parquet": "Parquet rows, 1-based",
}
JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class RawRecord:
    line: int
    fields: dict[str, Any]
    error: str | None = None


def json_type(value: Any) -> str:
    return "null" if value is None else JSON_TYPES.get(type(value), type(value).__name__)


def detect_format(path: Path, declared: str | None = None) -> str:
    if declared is not None:
        if declared not in FORMATS:
            raise DatasetError(f"unknown dataset format {declared!r}; use one of {', '.join(FORMATS)}")
        return declared
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise DatasetError(f"{path.name}: cannot tell the format from the suffix; use .jsonl, .csv or .parquet")
    return fmt


def read_records(data: bytes, fmt: str) -> Iterator[RawRecord]:
    if fmt == "jsonl":
        return _read_jsonl(data)
    if fmt == "csv":
        return _read_csv(data)
    return _read_parquet(data)


def _read_jsonl(data: bytes) -> Iterator[RawRecord]:
    # Split on b"\n" only: str.splitlines would also break on \x0b, \u2028... and shift the line numbers.
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield RawRecord(number, {}, f"not valid UTF-8 (byte {exc.start + 1} of the line)")
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield RawRecord(number, {}, f"invalid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield RawRecord(number, {}, f"expected a JSON object, got {json_type(value)}")
            continue
        yield RawRecord(number, value)


def _read_csv(data: bytes) -> Iterator[RawRecord]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"not valid UTF-8 text (byte {exc.start + 1}); save the CSV as UTF-8") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    number = 0
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        if len(set(header)) != len(header):
            raise DatasetError(f"CSV header has repeated column names: {', '.join(header)}")
        for number, row in enumerate(reader, start=1):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield RawRecord(number, {}, f"{len(row)} values for {len(header)} columns")
                continue
            yield RawRecord(number, dict(zip(header, row, strict=True)))
    except csv.Error as exc:
        # The reader cannot resync after a malformed row, so this ends the file.
        raise DatasetError(f"row {number + 1}: unreadable CSV: {exc}") from exc


def _read_parquet(data: bytes) -> Iterator[RawRecord]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(f"not a readable Parquet file: {exc}") from exc
    for number, row in enumerate(table.to_pylist(), start=1):
        yield RawRecord(number, row)
