"""A key's `last_used_at`: written when a request's key is verified, at most once a minute, never failing the
request. A real store; a full disk is SQLite's own error, raised by a trigger on the write."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.security.keys import create_key, list_keys, verify_token
from appliance.security.last_use import LastUse
from appliance.state.store import StateStore


def _last_used(store: StateStore, name: str) -> float | None:
    return next(k.last_used_at for k in list_keys(store) if k.name == name)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.db").open()


def test_a_use_is_written_once_a_minute(store: StateStore) -> None:
    token = create_key(store, "app", "inference").token
    assert _last_used(store, "app") is None
    first = verify_token(store, token)
    assert first is not None and first.last_used_at is not None
    assert _last_used(store, "app") == first.last_used_at
    with store.transaction() as conn:  # mark the row: a second write would overwrite the mark
        conn.execute("UPDATE api_keys SET last_used_at = 1.0 WHERE name = 'app'")
    for _ in range(100):
        assert verify_token(store, token) is not None
    assert _last_used(store, "app") == 1.0


def test_a_recent_use_in_the_row_is_not_written_again_after_a_restart(tmp_path: Path, store: StateStore,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    token = create_key(store, "app", "inference").token
    written = verify_token(store, token)
    assert written is not None
    reopened = StateStore(tmp_path / "state.db").open()  # a new daemon: nothing in memory, the row says "just now"
    with reopened.transaction() as conn:
        conn.execute("CREATE TRIGGER no_writes BEFORE UPDATE OF last_used_at ON api_keys "
                     "BEGIN SELECT RAISE(FAIL, 'written again'); END")
    with caplog.at_level(logging.WARNING, logger="appliance.security.last_use"):
        key = verify_token(reopened, token)
    assert key is not None and key.last_used_at == written.last_used_at
    assert not caplog.records  # no write was tried


def test_a_full_disk_never_fails_the_request(store: StateStore, caplog: pytest.LogCaptureFixture) -> None:
    token = create_key(store, "app", "inference").token
    with store.transaction() as conn:
        conn.execute("CREATE TRIGGER disk_full BEFORE UPDATE OF last_used_at ON api_keys "
                     "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")
    with caplog.at_level(logging.WARNING, logger="appliance.security.last_use"):
        key = verify_token(store, token)
        assert key is not None and key.name == "app" and key.last_used_at is None
        assert verify_token(store, token) is not None  # within the minute: not tried again
    warnings = [r for r in caplog.records if r.getMessage() == "key use not recorded"]
    assert len(warnings) == 1 and "disk is full" in warnings[0].__dict__["error"]
    with store.transaction() as conn:  # space is back
        conn.execute("DROP TRIGGER disk_full")
    uses = LastUse(store, interval_s=0.0)  # the next interval has passed
    key_id = list_keys(store)[0].id
    assert uses.due(key_id, None, 1000.0) and uses.record(key_id, "app", 1000.0)
    assert _last_used(store, "app") == 1000.0
    assert not LastUse(store, interval_s=60.0).due(key_id, 1000.0, 1030.0)


def test_a_revoked_or_wrong_token_is_no_use(store: StateStore) -> None:
    created = create_key(store, "app", "inference")
    assert verify_token(store, created.token[:-2] + "xx") is None
    assert _last_used(store, "app") is None
