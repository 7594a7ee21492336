"""The capture writer on a real SQLite file: batches in one transaction each, a full queue drops and counts
without ever blocking submit(), failed batches retried then dropped and counted, stop() flushes."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from appliance.capture.rows import item_from_row
from appliance.capture.writer import CaptureWriter
from appliance.state import StateStore
from tests.capture.conftest import count, item


def _dropped(registry: CollectorRegistry, reason: str, deployment: str = "chat") -> float:
    return registry.get_sample_value("slm_capture_dropped_total",
                                     {"deployment": deployment, "reason": reason}) or 0.0


def _timed_submits(writer: CaptureWriter, ids: range) -> tuple[list[float], list[bool]]:
    items = [item(f"chatcmpl-{i}") for i in ids]  # built first: only submit() is timed
    took, results = [], []
    for one in items:
        start = time.perf_counter_ns()
        results.append(writer.submit(one))
        took.append((time.perf_counter_ns() - start) / 1000)
    return took, results


def _report(label: str, took: list[float]) -> str:
    ordered = sorted(took)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    line = (f"{label}: {len(took)} submits, median {statistics.median(took):.1f} µs, p99 {p99:.1f} µs, "
            f"max {max(took):.1f} µs")
    print(line)
    return line


def test_batches_of_at_most_max_batch_each_in_one_transaction(store: StateStore) -> None:
    commits: list[list[str]] = []

    async def scenario() -> CaptureWriter:
        writer = CaptureWriter(store, CollectorRegistry(), max_batch=50, flush_interval_s=0.2,
                               on_written=commits.append)
        writer.start()
        for i in range(5):  # a trickle: one batch after the linger, not five
            writer.submit(item(f"chatcmpl-t{i}"))
        await asyncio.sleep(0.5)
        assert [len(c) for c in commits] == [5]
        for i in range(430):  # a burst: batches of 50 without waiting for the linger
            writer.submit(item(f"chatcmpl-b{i}"))
        assert await writer.flush(timeout_s=10)
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    sizes = [len(c) for c in commits[1:]]
    assert sum(sizes) == 430 and max(sizes) == 50 and len(sizes) == 9
    assert count(store) == 435
    stats = writer.stats()
    assert (stats.accepted, stats.written, stats.batches, stats.dropped) == (435, 435, 10, {})


def test_a_full_queue_drops_and_counts_and_submit_never_waits(store: StateStore) -> None:
    registry = CollectorRegistry()
    writer = CaptureWriter(store, registry, max_queue=1000)  # not started: nothing drains the queue
    took, results = _timed_submits(writer, range(5000))
    line = _report("submit, queue filling then full", took)
    assert results.count(True) == 1000 and results.count(False) == 4000
    assert _dropped(registry, "queue_full") == 4000 and writer.stats().dropped == {"queue_full": 4000}
    assert registry.get_sample_value("slm_capture_queue_depth") == 1000
    assert statistics.median(took) < 50, line  # tens of microseconds at most; measured ~3 µs
    assert sorted(took)[int(len(took) * 0.99)] < 500, line

    async def drain() -> None:
        writer.start()
        await writer.stop()

    asyncio.run(drain())
    assert count(store) == 1000
    assert registry.get_sample_value("slm_capture_written_total", {"deployment": "chat"}) == 1000


def test_a_locked_store_never_slows_submit(store: StateStore, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the database: the writer's commit waits

    async def scenario() -> list[float]:
        writer = CaptureWriter(store, registry, max_queue=500, max_batch=100, flush_interval_s=0.01)
        writer.start()
        took: list[float] = []
        for round_ in range(10):
            more, _ = _timed_submits(writer, range(round_ * 200, round_ * 200 + 200))
            took += more
            await asyncio.sleep(0.05)  # the event loop stays free: the commit waits on the writer's thread
        other.execute("ROLLBACK")
        assert await writer.flush(timeout_s=30)
        await writer.stop()
        stats = writer.stats()
        assert stats.written + stats.dropped.get("queue_full", 0) == 2000 and stats.written >= 500
        assert count(store) == stats.written
        return took

    took = asyncio.run(scenario())
    line = _report("submit while the store is locked", took)
    assert statistics.median(took) < 50, line
    other.close()


def test_failed_batches_are_retried_then_dropped_and_counted(store: StateStore,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    with store.transaction() as conn:
        conn.execute("CREATE TRIGGER disk_full BEFORE INSERT ON captures "
                     "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")

    async def scenario() -> CaptureWriter:
        writer = CaptureWriter(store, registry, flush_interval_s=0.01, attempts=3, retry_delay_s=0.01)
        writer.start()
        for i in range(10):
            writer.submit(item(f"chatcmpl-lost{i}", deployment="a" if i < 4 else "b"))
        assert await writer.flush(timeout_s=5)
        with store.transaction() as conn:  # space is back
            conn.execute("DROP TRIGGER disk_full")
        for i in range(5):
            writer.submit(item(f"chatcmpl-kept{i}"))
        assert await writer.flush(timeout_s=5)
        await writer.stop()
        return writer

    with caplog.at_level(logging.WARNING, logger="appliance.capture.writer"):
        writer = asyncio.run(scenario())
    assert _dropped(registry, "write_failed", "a") == 4 and _dropped(registry, "write_failed", "b") == 6
    assert writer.stats().written == 5 and count(store) == 5
    retries = [r for r in caplog.records if r.getMessage() == "capture batch not written; retrying"]
    dropped = [r for r in caplog.records if r.getMessage() == "capture batch dropped"]
    assert len(retries) == 2 and len(dropped) == 1 and dropped[0].__dict__["why"] == "disk full"


def test_a_batch_that_fails_once_is_written_on_retry(store: StateStore, tmp_path: Path) -> None:
    with store.transaction() as conn:
        conn.execute("CREATE TRIGGER disk_full BEFORE INSERT ON captures "
                     "BEGIN SELECT RAISE(FAIL, 'database or disk is full'); END")

    async def scenario() -> CaptureWriter:
        writer = CaptureWriter(store, CollectorRegistry(), flush_interval_s=0.01, attempts=3, retry_delay_s=0.3)
        writer.start()
        writer.submit(item("chatcmpl-late"))
        await asyncio.sleep(0.1)  # the first attempt failed; the retry is 0.3 s later
        fixer = sqlite3.connect(store.path, isolation_level=None)
        fixer.execute("DROP TRIGGER disk_full")
        fixer.close()
        assert await writer.flush(timeout_s=5)
        await writer.stop()
        return writer

    writer = asyncio.run(scenario())
    assert writer.stats().written == 1 and writer.stats().dropped == {} and count(store) == 1


def test_stop_writes_what_is_queued_then_refuses(store: StateStore) -> None:
    registry = CollectorRegistry()

    async def scenario() -> CaptureWriter:
        writer = CaptureWriter(store, registry, max_batch=64, flush_interval_s=5.0)
        writer.start()
        for i in range(300):
            writer.submit(item(f"chatcmpl-{i}"))
        assert writer.pending("chatcmpl-299")
        started = time.monotonic()
        await writer.stop(timeout_s=10)
        assert time.monotonic() - started < 5  # no linger on the way out
        assert not writer.pending("chatcmpl-299")
        assert writer.submit(item("chatcmpl-late")) is False
        return writer

    writer = asyncio.run(scenario())
    assert count(store) == 300 and writer.stats().dropped == {"stopped": 1}
    assert _dropped(registry, "stopped") == 1


def test_stop_keeps_its_time_limit_on_a_locked_store(store: StateStore) -> None:
    registry = CollectorRegistry()
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def scenario() -> float:
        writer = CaptureWriter(store, registry, flush_interval_s=0.01)
        writer.start()
        for i in range(20):
            writer.submit(item(f"chatcmpl-{i}"))
        await asyncio.sleep(0.1)  # the batch is in the writer's thread, waiting for the lock
        started = time.monotonic()
        await writer.stop(timeout_s=0.5)
        return time.monotonic() - started

    took = asyncio.run(scenario())
    other.execute("ROLLBACK")
    other.close()
    assert took < 1.5
    assert _dropped(registry, "stopped") == 20  # counted, though the thread may still commit them


def test_a_repeated_response_id_is_stored_once(store: StateStore) -> None:
    async def scenario() -> CaptureWriter:
        writer = CaptureWriter(store, CollectorRegistry(), flush_interval_s=0.01)
        writer.start()
        writer.submit(item("chatcmpl-1", answer="first"))
        writer.submit(item("chatcmpl-1", answer="second"))
        await writer.stop()
        return writer

    stats = asyncio.run(scenario()).stats()
    assert (stats.written, stats.duplicates) == (1, 1)
    row = store.query_one("SELECT answer FROM captures")
    assert row is not None and row["answer"] == "first"


def test_redaction_runs_on_the_writer_thread_and_a_failure_never_stores_the_text(store: StateStore) -> None:
    registry = CollectorRegistry()
    threads: set[str] = set()

    def redact(text: str) -> str:
        threads.add(threading.current_thread().name)
        if "explode" in text:
            raise RuntimeError("scanner failed")
        return text.replace("alice@example.com", "[EMAIL]")

    async def scenario() -> None:
        writer = CaptureWriter(store, registry, flush_interval_s=0.01)
        writer.start()
        secret = item("chatcmpl-mail", question="mail alice@example.com", answer="sent to alice@example.com")
        assert writer.submit(secret, redact)
        assert writer.submit(item("chatcmpl-boom", question="explode"), redact)
        assert writer.submit(item("chatcmpl-plain"))  # no redaction asked: stored as given
        assert await writer.flush(timeout_s=5)
        await writer.stop()

    asyncio.run(scenario())
    assert threads and all(name.startswith("capture-writer") for name in threads)
    rows = {r["response_id"]: r for r in store.query("SELECT * FROM captures")}
    assert set(rows) == {"chatcmpl-mail", "chatcmpl-plain"}
    stored = item_from_row(rows["chatcmpl-mail"])
    assert stored.messages[1].content == "mail [EMAIL]" and stored.answer == "sent to [EMAIL]"
    assert "alice" not in str(dict(rows["chatcmpl-mail"]))
    assert stored.size_bytes == item("x", question="mail [EMAIL]", answer="sent to [EMAIL]").size_bytes
    assert _dropped(registry, "redaction_failed") == 1
