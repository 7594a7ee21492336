"""The staged import the registry and the dataset store share: whole or nothing, with a real store and a real
file system (a COMMIT that fails is SQLite's own deferred foreign-key check)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from appliance.errors import ApplianceError, StorageFull
from appliance.state.staged import staged_import
from appliance.state.store import StateStore


class Refused(ApplianceError):
    pass


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore(tmp_path / "state.db").open()
    with store.transaction() as conn:
        conn.execute("CREATE TABLE parents(id TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE things(id TEXT PRIMARY KEY, parent TEXT REFERENCES parents(id) "
                     "DEFERRABLE INITIALLY DEFERRED)")
    return store


def _rows(store: StateStore) -> list[str]:
    return [r["id"] for r in store.query("SELECT id FROM things")]


def test_the_folder_and_its_row_land_together(tmp_path: Path, store: StateStore) -> None:
    target = tmp_path / "things" / "a1"
    with staged_import(target, "src.bin", Refused) as staging:
        assert staging.path.parent == target.parent and staging.path.name.startswith(".tmp-")
        (staging.path / "data").write_bytes(b"x")
        staging.seal()
        with store.transaction() as conn:
            conn.execute("INSERT INTO things(id) VALUES('a1')")
            staging.install()
    assert (target / "data").read_bytes() == b"x" and _rows(store) == ["a1"]
    assert [p.name for p in target.parent.iterdir()] == ["a1"]


def test_a_failed_commit_takes_the_renamed_folder_with_it(tmp_path: Path, store: StateStore) -> None:
    target = tmp_path / "things" / "a1"
    with pytest.raises(Refused, match=r"^src.bin: not imported: FOREIGN KEY constraint failed"), \
            staged_import(target, "src.bin", Refused) as staging:
        (staging.path / "data").write_bytes(b"x")
        with store.transaction() as conn:
            conn.execute("INSERT INTO things(id, parent) VALUES('a1', 'no-such-parent')")  # fails at COMMIT
            staging.install()
    assert list(target.parent.iterdir()) == [] and _rows(store) == []


@pytest.mark.parametrize(("err", "raised", "message"), [
    # a full disk: the one 507, saying where and how much
    (errno.ENOSPC, StorageFull, r"^src.bin: not imported, no space left in .*things \(5 MiB needed\); free space"),
    # a quota is a full disk too
    (errno.EDQUOT, StorageFull, r"no space left in"),
    # anything else: the caller's refusal with the system's words
    (errno.EIO, Refused, r"^src.bin: not imported: Input/output error$"),
])
def test_a_failed_write_leaves_nothing(tmp_path: Path, store: StateStore, err: int, raised: type[Exception],
                                       message: str) -> None:
    target = tmp_path / "things" / "a1"
    with pytest.raises(raised, match=message) as caught, \
            staged_import(target, "src.bin", Refused, needed="5 MiB") as staging:
        (staging.path / "part").write_bytes(b"partial")
        raise OSError(err, os.strerror(err), str(staging.path / "part"))
    assert caught.value.status == (507 if raised is StorageFull else 400)
    assert list(target.parent.iterdir()) == [] and _rows(store) == []


def test_a_refusal_inside_the_transaction_passes_through_and_cleans_up(tmp_path: Path, store: StateStore) -> None:
    class Conflict(ApplianceError):
        status = 409

    target = tmp_path / "things" / "a1"
    with pytest.raises(Conflict), staged_import(target, "src.bin", Refused) as staging, store.transaction():
        raise Conflict("taken")
    assert not staging.installed and list(target.parent.iterdir()) == []
