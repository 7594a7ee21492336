"""The durable log of a distillation's answers: `answers.jsonl` in the job's folder, one JSON object per answer,
appended as answers arrive and fsynced per batch, so a job killed at any point keeps every answer written before
its last sync and a rerun asks only the rest. A line torn by the kill (no newline yet) is cut off on reopen."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, BinaryIO

SYNC_EVERY = 8  # answers
SYNC_AFTER_S = 2.0


class AnswerLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: dict[str, dict[str, Any]] = {}  # answer key -> its line
        self._fh: BinaryIO | None = None
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def open(self) -> AnswerLog:
        """Read what earlier attempts wrote (dropping a torn last line) and open for appending."""
        if self.path.exists():
            data = self.path.read_bytes()
            whole = data[:data.rfind(b"\n") + 1]
            if len(whole) != len(data):
                with self.path.open("r+b") as fh:
                    fh.truncate(len(whole))
                    os.fsync(fh.fileno())
            for line in whole.splitlines():
                entry = json.loads(line)
                self.done[entry["key"]] = entry
        self._fh = self.path.open("ab")
        return self

    def append(self, entry: dict[str, Any]) -> None:
        assert self._fh is not None, "AnswerLog.open() first"
        self._fh.write((json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode())
        self._fh.flush()  # in the kernel at once: a kill -9 loses nothing appended; a power cut, the unsynced batch
        self.done[entry["key"]] = entry
        self._unsynced += 1
        if self._unsynced >= SYNC_EVERY or time.monotonic() - self._synced_at >= SYNC_AFTER_S:
            self.sync()

    def sync(self) -> None:
        if self._fh is None or not self._unsynced:
            return
        os.fsync(self._fh.fileno())
        self._unsynced, self._synced_at = 0, time.monotonic()

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None
