"""The capture writer: the request path hands a captured item over and goes on; a background task stores it.

- `submit(item, redact)` never blocks and never raises: a bounded in-memory queue; when it is full the item is
  dropped and counted (`slm_capture_dropped_total{deployment,reason}`, `stats()`), with a warning at most every
  10 s. Given `redact` (the deployment's capture redaction), the writer's thread applies it to every message and
  the answer before anything is written, so the request path spends no time on it; an item it fails on is
  dropped (`redaction_failed`), never stored unredacted.
- One task drains the queue: after the first item it waits up to `flush_interval_s` for a batch to fill
  (`max_batch`), then writes the batch in ONE transaction on the writer's own thread, so the event loop never
  waits on SQLite. A failed batch (database locked, disk full) is retried `attempts` times with doubling
  pauses, then dropped, counted (`reason="write_failed"`) and logged; never fatal.
- `stop()` writes what is queued within a time limit; what is left then is dropped and counted (`stopped`).
A committed batch survives a kill -9 (SQLite WAL, one transaction per batch); items still queued at that moment
are lost with the process.
Call `submit` from the event loop's thread (the gateway's); `start`, `flush` and `stop` are coroutines of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel

from appliance.capture.models import CapturedItem
from appliance.capture.rows import INSERT_ITEM, item_params
from appliance.errors import is_disk_full
from appliance.state.store import StateStore

log = logging.getLogger(__name__)
Redact = Callable[[str], str]
TRANSIENT: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
WARN_EVERY_S = 10.0


class WriterStats(BaseModel):
    queued: int  # waiting now
    accepted: int  # taken by submit()
    written: int  # in the store
    duplicates: int  # written before under the same response id (ignored)
    dropped: dict[str, int]  # by reason: queue_full, write_failed, stopped, error
    batches: int


class CaptureWriter:
    """Batches captured items into the store. Construct cheaply; `start()` inside the running event loop."""

    def __init__(self, store: StateStore, registry: CollectorRegistry, *, max_queue: int = 10_000,
                 max_batch: int = 200, flush_interval_s: float = 0.2, attempts: int = 3,
                 retry_delay_s: float = 0.2, on_written: Callable[[list[str]], None] | None = None) -> None:
        """`on_written(ids)` is called on the writer's thread after each batch commits (a test's witness)."""
        self.store = store
        self.max_queue, self.max_batch, self.flush_interval_s = max_queue, max_batch, flush_interval_s
        self.attempts, self.retry_delay_s = attempts, retry_delay_s
        self._on_written = on_written
        self._queue: deque[tuple[CapturedItem, Redact | None]] = deque()
        self._in_flight: list[CapturedItem] = []
        self._pending: set[str] = set()
        self._wake, self._full, self._progress = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = self._closed = False
        self._accepted = self._processed = self._written = self._duplicates = self._batches = 0
        self._dropped: Tally[str] = Tally()
        self._unreported, self._last_warning = 0, 0.0
        self.dropped_total = Counter("slm_capture_dropped", "Captured items dropped, by reason",
                                     ["deployment", "reason"], registry=registry)
        self.written_total = Counter("slm_capture_written", "Captured items stored", ["deployment"],
                                     registry=registry)
        depth = Gauge("slm_capture_queue_depth", "Captured items waiting to be stored", registry=registry)
        depth.set_function(lambda: len(self._queue))

    # -- the request path ---------------------------------------------------------------------------------
    def submit(self, item: CapturedItem, redact: Redact | None = None) -> bool:
        """Queue `item` for storing (through `redact` first, on the writer's thread); False when it was dropped
        (counted). Never blocks, never raises."""
        try:
            if self._closed or len(self._queue) >= self.max_queue:
                self._drop([item], "stopped" if self._closed else "queue_full")
                return False
            self._queue.append((item, redact))
            self._pending.add(item.response_id)
            self._accepted += 1
            self._signal(full=len(self._queue) >= self.max_batch)
            return True
        except Exception:  # the request path must not fail because of capture
            log.exception("capture submit failed")
            with contextlib.suppress(Exception):
                self._drop([item], "error")
            return False

    def pending(self, response_id: str) -> bool:
        """True while an item with this id is queued or being written (feedback may wait for it: `flush`)."""
        return response_id in self._pending

    def stats(self) -> WriterStats:
        return WriterStats(queued=len(self._queue), accepted=self._accepted, written=self._written,
                           duplicates=self._duplicates, dropped=dict(self._dropped), batches=self._batches)

    def _signal(self, full: bool) -> None:
        if self._loop is not None and threading.get_ident() != self._loop_thread:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the item stays queued, counted at stop
                self._loop.call_soon_threadsafe(self._signal, full)
            return
        self._wake.set()
        if full:
            self._full.set()

    def _drop(self, items: list[CapturedItem], reason: str) -> None:
        for deployment, count in Tally(i.deployment for i in items).items():
            self.dropped_total.labels(deployment, reason).inc(count)
        self._dropped[reason] += len(items)
        self._unreported += len(items)
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            log.warning("capture items dropped", extra={"reason": reason, "count": self._unreported,
                                                         "dropped_total": sum(self._dropped.values())})
            self._unreported, self._last_warning = 0, now

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background task in the running event loop."""
        if self._task is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="capture-writer")
        self._task = asyncio.create_task(self._run(), name="capture-writer")
        if self._queue:
            self._wake.set()

    async def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait until everything queued before this call is written (or dropped); False on timeout."""
        target, deadline = self._accepted, time.monotonic() + timeout_s
        while True:
            self._progress.clear()
            if self._processed >= target:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._task is None:
                return False
            self._full.set()  # no lingering for a batch to fill: someone is waiting
            self._wake.set()
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                return False

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (at most `timeout_s`), then stop; what is left is dropped and counted."""
        self._closed = self._stopping = True
        self._wake.set()
        self._full.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        # In flight: the task was cancelled while the batch was being written (it may still commit).
        left = [*self._in_flight, *(item for item, _ in self._queue)]
        self._queue.clear()
        if left:
            self._finish(left)
            self._drop(left, "stopped")
        if self._executor is not None:
            # Not awaited: after a timeout the thread may still be inside a commit (a locked store); the close
            # runs when it is done, and stop() keeps its time limit.
            self._executor.submit(self.store.close)
            self._executor.shutdown(wait=False)
            self._executor = None

    # -- the background task ------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._queue and len(self._queue) < self.max_batch and not self._stopping:
                await self._linger()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                await self._write(batch)
            if self._stopping:
                return

    async def _linger(self) -> None:
        self._full.clear()
        if len(self._queue) >= self.max_batch:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._full.wait(), self.flush_interval_s)

    async def _write(self, queued: list[tuple[CapturedItem, Redact | None]]) -> None:
        loop = asyncio.get_running_loop()
        self._in_flight = [item for item, _ in queued]
        batch, refused = await loop.run_in_executor(self._executor, _redact, queued)
        if refused:
            self._finish(refused)
            self._drop(refused, "redaction_failed")
        self._in_flight = batch
        if not batch:
            return
        for attempt in range(1, self.attempts + 1):
            try:
                inserted = await loop.run_in_executor(self._executor, self._commit, batch)
            except TRANSIENT as exc:
                if attempt == self.attempts:
                    self._failed(batch, exc)
                    return
                log.warning("capture batch not written; retrying",
                            extra={"items": len(batch), "attempt": attempt, "error": str(exc)})
                await asyncio.sleep(self.retry_delay_s * 2 ** (attempt - 1))
            except Exception as exc:  # not a store error: retrying would fail the same way
                self._failed(batch, exc)
                return
            else:
                self._done(batch, inserted)
                return

    def _commit(self, batch: list[CapturedItem]) -> int:
        """On the writer's thread: the whole batch in one transaction."""
        params = [item_params(item) for item in batch]
        with self.store.transaction() as conn:
            inserted = conn.executemany(INSERT_ITEM, params).rowcount
        if self._on_written is not None:
            try:
                self._on_written([item.response_id for item in batch])
            except Exception:
                log.exception("capture on_written callback failed")
        return int(inserted)

    def _done(self, batch: list[CapturedItem], inserted: int) -> None:
        for deployment, count in Tally(i.deployment for i in batch).items():
            self.written_total.labels(deployment).inc(count)
        self._written += inserted
        self._duplicates += len(batch) - inserted
        self._batches += 1
        self._finish(batch)

    def _failed(self, batch: list[CapturedItem], exc: BaseException) -> None:
        why = "disk full" if is_disk_full(exc) else type(exc).__name__
        log.error("capture batch dropped", extra={"items": len(batch), "why": why, "error": str(exc),
                                                  "attempts": self.attempts})
        self._finish(batch)
        self._drop(batch, "write_failed")

    def _finish(self, batch: list[CapturedItem]) -> None:
        self._in_flight = []
        self._processed += len(batch)
        for item in batch:
            self._pending.discard(item.response_id)
        self._progress.set()


def _redact(queued: list[tuple[CapturedItem, Redact | None]]) -> tuple[list[CapturedItem], list[CapturedItem]]:
    """On the writer's thread: each item through its redaction; those it failed on, apart (never stored)."""
    done: list[CapturedItem] = []
    refused: list[CapturedItem] = []
    for item, redact in queued:
        try:
            done.append(item if redact is None else item.redacted(redact))
        except Exception:
            log.exception("capture redaction failed; item dropped", extra={"response_id": item.response_id})
            refused.append(item)
    return done, refused
