"""Retention by days, rows and bytes per deployment, the periodic sweeper, and the operator's purge; feedback and
reviews go with their items (real SQLite file)."""

from __future__ import annotations

import asyncio

import pytest

from appliance.capture.feedback import record_feedback
from appliance.capture.models import CaptureSettings, FeedbackBody, ReviewDecision
from appliance.capture.review import decide
from appliance.capture.sweep import DAY_S, RetentionSweeper, purge, sweep_retention
from appliance.errors import BadRequest
from appliance.security.keys import ApiKey
from appliance.state import StateStore
from tests.capture.conftest import T0, count, insert, item


def _ids(store: StateStore, deployment: str | None = None) -> set[str]:
    rows = store.query("SELECT response_id FROM captures" + (" WHERE deployment = ?" if deployment else ""),
                       (deployment,) if deployment else ())
    return {str(r["response_id"]) for r in rows}


def test_items_past_the_retention_days_are_gone_after_the_sweep(store: StateStore, keys: dict[str, ApiKey]) -> None:
    app = keys["app"]
    insert(store, *(item(f"chatcmpl-old{i}", key=app, created_at=T0 - 8 * DAY_S - i) for i in range(3)),
           *(item(f"chatcmpl-new{i}", key=app, created_at=T0 - 6 * DAY_S + i) for i in range(3)),
           item("chatcmpl-other", key=app, deployment="other", created_at=T0 - 8 * DAY_S))
    record_feedback(store, app, FeedbackBody(response_id="chatcmpl-old0", rating="down"))
    decide(store, "chatcmpl-old0", ReviewDecision(action="reject"), "ops")
    settings = {"chat": CaptureSettings(enabled=True, retention_days=7), "other": CaptureSettings(retention_days=30)}
    result = sweep_retention(store, settings, now=T0)
    assert result.removed == {"chat": {"age": 3, "rows": 0, "bytes": 0}} and result.total == 3
    assert _ids(store) == {"chatcmpl-new0", "chatcmpl-new1", "chatcmpl-new2", "chatcmpl-other"}
    assert count(store, "capture_feedback") == 0 and count(store, "capture_reviews") == 0  # went with the item
    assert sweep_retention(store, settings, now=T0).total == 0  # nothing more to do


@pytest.mark.parametrize(("limits", "kept"), [
    # max_rows 4: the four newest stay
    ({"max_rows": 4}, {6, 7, 8, 9}),
    # each item is 1,000 bytes: 3,500 bytes keep the three newest (a fourth would make 4,000)
    ({"max_bytes": 3500}, {7, 8, 9}),
    # both: the stricter one wins
    ({"max_rows": 2, "max_bytes": 3500}, {8, 9}),
    # limits above what is stored: nothing goes
    ({"max_rows": 100, "max_bytes": 10**9}, set(range(10))),
])
def test_rows_and_bytes_limits_keep_the_newest(store: StateStore, limits: dict[str, int], kept: set[int]) -> None:
    insert(store, *(item(f"chatcmpl-{i}", created_at=T0 - 100 + i, size_bytes=1000) for i in range(10)),
           *(item(f"chatcmpl-x{i}", deployment="other", created_at=T0 - 100 + i, size_bytes=1000)
             for i in range(10)))
    sweep_retention(store, {"chat": CaptureSettings(**limits)}, default=CaptureSettings(), now=T0)
    assert _ids(store, "chat") == {f"chatcmpl-{i}" for i in kept}
    assert len(_ids(store, "other")) == 10  # the default limits hold all of the other deployment's items


def test_a_deployment_without_settings_follows_the_default(store: StateStore) -> None:
    insert(store, item("chatcmpl-gone", deployment="deleted", created_at=T0 - 2 * DAY_S),
           item("chatcmpl-kept", deployment="deleted", created_at=T0 - 0.5 * DAY_S))
    sweep_retention(store, {}, default=CaptureSettings(retention_days=1), now=T0)
    assert _ids(store) == {"chatcmpl-kept"}


def test_large_sweeps_delete_in_chunks(store: StateStore) -> None:
    insert(store, *(item(f"chatcmpl-{i:05d}", created_at=T0 - 1000 + i * 0.01) for i in range(1800)))
    result = sweep_retention(store, {"chat": CaptureSettings(max_rows=250)}, now=T0)
    assert result.removed["chat"]["rows"] == 1550 and count(store) == 250
    assert min(_ids(store)) == "chatcmpl-01550"


def test_the_sweeper_runs_in_the_background(store: StateStore) -> None:
    insert(store, item("chatcmpl-ancient", created_at=1.0), item("chatcmpl-now", created_at=T0 * 2))
    settings = {"chat": CaptureSettings(enabled=True, retention_days=1)}

    async def scenario() -> None:
        sweeper = RetentionSweeper(store, lambda: settings, interval_s=0.05)
        sweeper.start()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if sweeper.last is not None:
                break
        await sweeper.stop()
        assert sweeper.last is not None and sweeper.last.removed == {"chat": {"age": 1, "rows": 0, "bytes": 0}}

    asyncio.run(scenario())
    assert _ids(store) == {"chatcmpl-now"}


def test_a_failed_round_is_logged_and_the_next_one_runs(store: StateStore) -> None:
    calls = []

    def settings() -> dict[str, CaptureSettings]:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("policy document unreadable")
        return {}

    async def scenario() -> None:
        sweeper = RetentionSweeper(store, settings)
        assert await sweeper.run_once() is None
        assert await sweeper.run_once() is not None

    asyncio.run(scenario())


def test_purge_by_deployment_key_and_age(store: StateStore, keys: dict[str, ApiKey]) -> None:
    app, other = keys["app"], keys["other"]
    insert(store,
           item("chatcmpl-1", key=app, deployment="chat", created_at=T0 - 10 * DAY_S),
           item("chatcmpl-2", key=app, deployment="chat", created_at=T0 - 1 * DAY_S),
           item("chatcmpl-3", key=other, deployment="chat", created_at=T0 - 10 * DAY_S),
           item("chatcmpl-4", key=other, deployment="code", created_at=T0 - 1 * DAY_S),
           item("chatcmpl-5", key=app, deployment="code", created_at=T0 - 10 * DAY_S))
    record_feedback(store, other, FeedbackBody(response_id="chatcmpl-3", rating=2, comment="meh"))
    with pytest.raises(BadRequest, match="needs a deployment, a key or an age"):
        purge(store)
    assert purge(store, deployment="chat", key="other", now=T0) == 1  # both filters must hold
    assert count(store, "capture_feedback") == 0
    assert purge(store, older_than=5 * DAY_S, now=T0) == 2  # 1 and 5
    assert _ids(store) == {"chatcmpl-2", "chatcmpl-4"}
    assert purge(store, key="app") == 1
    assert purge(store, deployment="nothing-here") == 0
    assert purge(store, older_than=0) == 1 and count(store) == 0
