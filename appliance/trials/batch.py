"""A batched store writer off the event loop, the capture writer's pattern for any rows: `submit` queues (never
blocks; a full queue loses the item, reported through `on_lost`), one task drains the queue in batches of up to
`max_batch` (lingering `flush_interval_s` for one to fill), each batch prepared (redacted) and committed in ONE
transaction on the writer's own thread, retried `attempts` times with doubling pauses, then lost and reported.

Call `submit` from the event loop's thread; `start`, `run`, `flush` and `stop` are coroutines of it (`start` is
plain, like the capture writer's)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

from appliance.errors import is_disk_full
from appliance.state.store import StateStore

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
TRANSIENT: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
Commit = Callable[[sqlite3.Connection, list[Any]], Any]
Prepare = Callable[[list[Any]], tuple[list[Any], list[Any]]]  # (ready, refused)
Lost = Callable[[list[Any], str], None]


class BatchWriter(Generic[T]):
    """Construct cheaply; `start()` inside the running event loop."""

    def __init__(self, store: StateStore, commit: Commit, on_lost: Lost, *, prepare: Prepare | None = None,
                 name: str = "batch-writer", max_queue: int = 10_000, max_batch: int = 100,
                 flush_interval_s: float = 0.2, attempts: int = 3, retry_delay_s: float = 0.2) -> None:
        self.store, self.name = store, name
        self._commit, self._on_lost, self._prepare = commit, on_lost, prepare
        self.max_queue, self.max_batch, self.flush_interval_s = max_queue, max_batch, flush_interval_s
        self.attempts, self.retry_delay_s = attempts, retry_delay_s
        self._queue: deque[T] = deque()
        self._wake, self._full, self._progress = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = self._closed = False
        self._accepted = self._processed = 0
        self.written = self.batches = 0

    def submit(self, item: T) -> bool:
        """Queue one item; False when it was lost (queue full, or stopped). Never blocks."""
        if self._closed or len(self._queue) >= self.max_queue:
            self._on_lost([item], "stopped" if self._closed else "queue_full")
            return False
        self._queue.append(item)
        self._accepted += 1
        self._wake.set()
        if len(self._queue) >= self.max_batch:
            self._full.set()
        return True

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        if self._task is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """`fn(*args)` on the writer's thread (a store read that must not run on the loop)."""
        if self._executor is None:
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait until everything queued before this call is written (or lost); False on timeout."""
        target, deadline = self._accepted, time.monotonic() + timeout_s
        while self._processed < target:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._task is None:
                return False
            self._progress.clear()
            self._full.set()  # no lingering: someone is waiting
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), remaining)
        return True

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (at most `timeout_s`), then stop; what is left is lost (`stopped`)."""
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
        if self._queue:
            left = list(self._queue)
            self._queue.clear()
            self._done(left)
            self._on_lost(left, "stopped")
        if self._executor is not None:
            self._executor.submit(self.store.close)  # this thread's connection; not awaited (a locked store)
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._queue and len(self._queue) < self.max_batch and not self._stopping:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.flush_interval_s)
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                try:
                    await self._write(batch)
                finally:
                    self._done(batch)
            if self._stopping:
                return

    async def _write(self, batch: list[T]) -> None:
        loop = asyncio.get_running_loop()
        if self._prepare is not None:
            batch, refused = await loop.run_in_executor(self._executor, self._prepare, batch)
            if refused:
                self._on_lost(refused, "prepare_failed")
        for attempt in range(1, self.attempts + 1):
            if not batch:
                return
            try:
                await loop.run_in_executor(self._executor, self._transaction, batch)
            except TRANSIENT as exc:
                if attempt < self.attempts:
                    await asyncio.sleep(self.retry_delay_s * 2 ** (attempt - 1))
                    continue
                self._failed(batch, exc)
            except Exception as exc:  # not a store error: retrying would fail the same way
                self._failed(batch, exc)
            else:
                self.written += len(batch)
                self.batches += 1
            return

    def _transaction(self, batch: list[T]) -> None:
        with self.store.transaction() as conn:
            self._commit(conn, batch)

    def _failed(self, batch: list[T], exc: BaseException) -> None:
        why = "disk full" if is_disk_full(exc) else type(exc).__name__
        log.error("batch not written; dropped", extra={"writer": self.name, "items": len(batch), "why": why,
                                                       "error": str(exc), "attempts": self.attempts})
        self._on_lost(batch, "write_failed")

    def _done(self, batch: list[T]) -> None:
        self._processed += len(batch)
        self._progress.set()
