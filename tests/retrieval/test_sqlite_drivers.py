"""The sqlite-vec backend through both drivers this box has: pysqlite3 (the venv's pyenv-built Python has no
`enable_load_extension`) and Python's own sqlite3 under Debian's /usr/bin/python3 (what the .deb's venv uses),
run as a subprocess on the same code and the same vectors.db: the same answers either way."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.retrieval.backend import Query
from appliance.retrieval.sqliteconn import available_drivers, connect, driver_of
from appliance.retrieval.sqlitevec import SqliteVecBackend
from tests.helpers import REPO
from tests.retrieval.conftest import bag_of_words
from tests.retrieval.test_backends import chunks

DEBIAN_PYTHON = Path("/usr/bin/python3")
SCRIPT = """
import json, sys
from pathlib import Path
from appliance.retrieval.backend import Query
from appliance.retrieval.sqliteconn import available_drivers
from appliance.retrieval.sqlitevec import SqliteVecBackend
from tests.retrieval.conftest import bag_of_words
from tests.retrieval.test_backends import chunks
backend = SqliteVecBackend(Path(sys.argv[1]), driver="sqlite3")
if sys.argv[2] == "write":
    backend.upsert(chunks())
hits = backend.search(Query(["vs_test"], "conveyor belt", bag_of_words("conveyor belt"), limit=4))
print(json.dumps({"drivers": available_drivers(), "hits": [[h.chunk_id, round(h.score, 5)] for h in hits]}))
"""


def _hits(backend: SqliteVecBackend) -> list[list[object]]:
    hits = backend.search(Query(["vs_test"], "conveyor belt", bag_of_words("conveyor belt"), limit=4))
    return [[h.chunk_id, round(h.score, 5)] for h in hits]


def test_the_venv_loads_sqlite_vec_through_pysqlite3(tmp_path: Path) -> None:
    drivers = available_drivers()
    assert drivers, "no driver can load sqlite-vec"
    conn = connect(tmp_path / "v.db")
    assert driver_of(conn) == drivers[0]
    assert conn.execute("SELECT vec_version()").fetchone()[0].startswith("v0.1")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(x)")  # FTS5 is there too
    conn.close()
    if not hasattr(__import__("sqlite3").Connection, "enable_load_extension"):
        assert drivers == ["pysqlite3"]


def _debian(db: Path, mode: str) -> dict[str, object]:
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    done = subprocess.run([str(DEBIAN_PYTHON), "-c", SCRIPT, str(db), mode], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env={"PYTHONPATH": f"{REPO}:{site}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_debian_python_uses_its_own_sqlite3_on_the_same_file(tmp_path: Path) -> None:
    if not DEBIAN_PYTHON.is_file():
        pytest.skip("no /usr/bin/python3 here")
    probe = subprocess.run([str(DEBIAN_PYTHON), "-c", "import sqlite3; print(hasattr(sqlite3.Connection, "
                            "'enable_load_extension'))"], capture_output=True, text=True, timeout=30)
    if probe.stdout.strip() != "True":
        pytest.skip("this /usr/bin/python3 cannot load extensions either")
    written = _debian(tmp_path / "a.db", "write")  # written and read by Debian's sqlite3
    assert written["drivers"][0] == "sqlite3"  # type: ignore[index]
    mine = SqliteVecBackend(tmp_path / "b.db")
    mine.upsert(chunks())
    assert _hits(mine) == written["hits"]
    mine.close()
    assert _debian(tmp_path / "b.db", "read")["hits"] == written["hits"]  # the venv's file, read by Debian's
    other = SqliteVecBackend(tmp_path / "a.db")  # Debian's file, read by the venv's driver
    assert _hits(other) == written["hits"]
    other.close()
