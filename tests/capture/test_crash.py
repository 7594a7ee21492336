"""kill -9 while a CaptureWriter commits batch after batch (a real child process, a real SQLite file): afterwards
the database passes integrity_check and every item the child saw committed is there, whole; a new writer goes
on writing to the same file."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from appliance.capture.rows import item_from_row
from appliance.state import StateStore
from tests.capture.writer_child import expected
from tests.helpers import REPO

ROUNDS = 3
BATCHES_BEFORE_KILL = 15


def _committed(witness: Path) -> list[str]:
    """Ids of the batches the child reported, complete lines only (a kill may cut the last one)."""
    if not witness.exists():
        return []
    text = witness.read_text(encoding="utf-8")
    lines = text.split("\n")[:-1]  # the part after the last newline is unfinished
    return [i for line in lines for i in line.split()]


def _wait_for_commits(proc: subprocess.Popen[bytes], witness: Path, lines: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the child died on its own: {proc.stderr.read().decode() if proc.stderr else ''}"
        if witness.exists() and witness.read_text(encoding="utf-8").count("\n") >= lines:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {lines} commits in 60 s")


def _check(db: Path, witness: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall()[0][0] == "ok"
        committed = _committed(witness)
        rows = {}
        for start in range(0, len(committed), 500):
            chunk = committed[start:start + 500]
            for row in conn.execute(f"SELECT * FROM captures WHERE response_id IN ({','.join('?' * len(chunk))})",
                                    chunk):
                rows[row["response_id"]] = row
        missing = [i for i in committed if i not in rows]
        assert not missing, f"{len(missing)} committed items missing, e.g. {missing[:3]}"
        for response_id in committed:  # whole: every field as the child built it
            assert item_from_row(rows[response_id]) == expected(int(response_id.split("-")[1]))
        total = conn.execute("SELECT COUNT(*) FROM captures").fetchone()[0]
        return len(committed), int(total)
    finally:
        conn.close()


def test_kill_9_during_capture_loses_no_committed_item_and_corrupts_nothing(tmp_path: Path) -> None:
    db, witness = tmp_path / "state.db", tmp_path / "committed.txt"
    StateStore(db).open().close()
    rng = random.Random(23)
    for round_ in range(ROUNDS):
        lines_before = witness.read_text(encoding="utf-8").count("\n") if witness.exists() else 0
        proc = subprocess.Popen([sys.executable, "-m", "tests.capture.writer_child", str(db), str(witness),
                                 str(round_ * 10_000_000)], cwd=REPO, stderr=subprocess.PIPE)
        try:
            _wait_for_commits(proc, witness, lines_before + BATCHES_BEFORE_KILL)
            time.sleep(rng.uniform(0.0, 0.1))  # somewhere in the middle of a batch, or between two
        finally:
            proc.kill()
            proc.wait(timeout=30)
        committed, stored = _check(db, witness)
        assert proc.returncode == -9 and stored >= committed > 0
        print(f"round {round_ + 1}: killed with {committed} items reported committed, {stored} stored")
    reopened = StateStore(db).open()  # quick_check at open: the daemon would start on this file
    reopened.close()
