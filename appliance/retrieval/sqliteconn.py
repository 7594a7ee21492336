"""A SQLite connection with sqlite-vec loaded, from whichever driver can load extensions here.

Python's own `sqlite3` can, when its build has `enable_load_extension` (Debian's /usr/bin/python3, which the
.deb's virtual environment uses); a pyenv-built Python (this repository's development venv) lacks it, and then
`pysqlite3` (the `pysqlite3-binary` wheel: the same DB-API, with its own SQLite) does. Both have FTS5. Opened in
autocommit (`isolation_level=None`) so transactions are explicit (`BEGIN IMMEDIATE` ... `COMMIT`).
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from appliance.retrieval.errors import BackendUnavailable

Driver = Literal["sqlite3", "pysqlite3"]
DRIVERS: tuple[Driver, ...] = ("sqlite3", "pysqlite3")


def _module(driver: Driver) -> ModuleType | None:
    try:
        module = sqlite3 if driver == "sqlite3" else importlib.import_module("pysqlite3.dbapi2")
    except ImportError:
        return None
    return module if hasattr(module.Connection, "enable_load_extension") else None


def available_drivers() -> list[Driver]:
    """The drivers that can load extensions in this interpreter, preferred first."""
    return [d for d in DRIVERS if _module(d) is not None]


def connect(path: Path | str, driver: Driver | None = None) -> Any:
    """A connection to `path` with sqlite-vec loaded, WAL journal, a 30 s busy timeout.

    Raises:
        BackendUnavailable: no driver here can load extensions, or sqlite-vec is not installed.
    """
    names = [driver] if driver else available_drivers()
    module = _module(names[0]) if names else None
    if module is None:
        raise BackendUnavailable("no SQLite driver here can load sqlite-vec: this Python's sqlite3 has no "
                                 "enable_load_extension; install pysqlite3-binary")
    try:
        import sqlite_vec
    except ImportError as exc:
        raise BackendUnavailable("sqlite-vec is not installed (pip install sqlite-vec)") from exc
    conn = module.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.enable_load_extension(False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def driver_of(conn: Any) -> Driver:
    return "sqlite3" if isinstance(conn, sqlite3.Connection) else "pysqlite3"
