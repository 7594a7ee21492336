"""The SQLite state store: versioned schema, WAL journal, one connection per thread.

The store holds intent (what the operator asked for) and state (what the supervisors observed); a daemon
restart replays it. Writes go through `transaction()` so a crash never leaves half a change behind.
WAL with synchronous=NORMAL: a power cut may lose the last commits, never corrupt the file (SQLite's
documented guarantee); `open()` runs `PRAGMA quick_check` so a damaged file is refused by name at start.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.errors import ApplianceError
from appliance.state.migrations import MIGRATIONS

RESTORE_HINT = "stop the daemon, move the file aside (with its -wal and -shm files) and restore a backup"


class StoreError(ApplianceError):
    """The store cannot be opened or is newer than this code."""

    status, code = 500, "store_error"


class StateStore:
    """Access to `state.db`. Construct cheaply; `open()` creates the file and applies migrations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._lock = threading.RLock()

    def open(self, check: bool = True) -> StateStore:
        """Create or open the file, check it (`check`) and apply migrations.

        Raises:
            StoreError: the file is not a database, is damaged, or is newer than this code; the message names it.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            if check:
                self._quick_check()
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.path}: the state database cannot be used ({exc}); "
                             f"{RESTORE_HINT}") from exc
        return self

    def _quick_check(self) -> None:
        rows = [str(r[0]) for r in self._connect().execute("PRAGMA quick_check").fetchall()]
        if rows != ["ok"]:
            self.close()
            found = " ".join(" ".join(rows[:3]).split())  # one line for the log
            raise StoreError(f"{self.path}: the state database is damaged (quick_check: {found}); {RESTORE_HINT}")

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: a power cut may undo the last commits, never corrupt
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        conn = self._connect()
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                self._rollback(conn)
                raise
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                # A COMMIT that failed (disk full, locked) can leave the transaction open: end it, or every later
                # BEGIN on this connection fails with "cannot start a transaction within a transaction".
                self._rollback(conn)
                raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def query(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return list(self._connect().execute(sql, params).fetchall())

    def query_one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._connect().execute(sql, params).fetchone()
        return row

    def schema_version(self) -> int:
        row = self._connect().execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        latest = MIGRATIONS[-1][0]
        current = self.schema_version()
        if current > latest:
            raise StoreError(
                f"{self.path}: schema version {current} is newer than this slm-appliance ({latest}); upgrade it"
            )
        for version, _title, sql in MIGRATIONS:
            if version <= current:
                continue
            with self.transaction() as conn:
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(version)}")

    # -- small shared tables --------------------------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        row = self.query_one("SELECT value FROM settings WHERE key = ?", (key,))
        return None if row is None else str(row["value"])

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings(key, value) VALUES(?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def audit(self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
        """Record an admin action (who, what, on what). Never pass secrets in `detail`."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO audit_log(ts, actor, action, target, detail) VALUES(?, ?, ?, ?, ?)",
                (time.time(), actor, action, target, json.dumps(detail or {})),
            )

    def audit_entries(self, limit: int = 100) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def close(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
