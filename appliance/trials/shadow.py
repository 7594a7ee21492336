"""Shadow traffic: a sample of a live deployment's requests is also answered by a candidate, in the background;
the candidate's answer is compared with the live one and never returned.

- `offer(request)` never blocks and never raises: a bounded queue; full (or stopping) → dropped and counted
  (`slm_shadow_dropped_total{deployment,candidate}`, the summary's `dropped`). Offer only answered requests.
- `workers` tasks (default 1: the candidate shares the cores with the live backend on this box) send each
  request to the candidate through the injected `send(body) -> Answer` (body `model` = the candidate, `stream`
  off), compare (`compare.compare`, on a worker thread), fetch both answers' embeddings through the injected
  `embed(texts)` when there is one (a failure leaves the cosine None and is counted), then update the shadow's
  window (the aggregates), the metrics, and hand the pair to a batched writer that redacts it (the request's
  `redact`) on its own thread and stores it (`shadow_pairs`), keeping each shadow's newest `keep` pairs.
- With `busy`, a shadow whose candidate shares the live side's CPU cores asks it only at quiet moments and
  withdraws the request when a live one arrives (`yielding.py`; counted as `withdrawn`).
- Persistence: the aggregates are over each shadow's newest `keep` pairs, exactly the rows the store keeps;
  `start()` recomputes them from those rows, so a restart gives the same summary. The counts since start
  (offered, dropped, withdrawn, embed failures, unstored) and the Prometheus counters begin again at 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from appliance.state.store import StateStore
from appliance.trials.aggregate import Window
from appliance.trials.batch import BatchWriter
from appliance.trials.compare import Answer, PairFigures, compare, cosine
from appliance.trials.metrics import ShadowMetrics
from appliance.trials.models import ShadowPair, ShadowRequest, ShadowSummary, conversation
from appliance.trials.pairs import delete_shadow, figures_of, insert_pairs, newest_figures, worst_pairs
from appliance.trials.yielding import Busy, ask_when_quiet

log = logging.getLogger(__name__)
Send = Callable[[dict[str, Any]], Awaitable[Answer]]
Embed = Callable[[list[str]], Awaitable[list[list[float]]]]
Shadow = tuple[str, str]  # (live, candidate)
ERROR_STATUS = 599  # the candidate's send raised (the exception is logged): counted as an error refusal


@dataclass(frozen=True)
class Compared:
    request: ShadowRequest
    candidate: Answer
    figures: PairFigures


class ShadowRunner:
    """Construct cheaply; `await start()` inside the running event loop (it reads the kept pairs first)."""

    def __init__(self, store: StateStore, registry: CollectorRegistry, send: Send, *, embed: Embed | None = None,
                 workers: int = 1, max_queue: int = 64, keep: int = 2000, send_timeout_s: float = 120.0,
                 embed_timeout_s: float = 10.0, writer_options: dict[str, Any] | None = None,
                 busy: Busy | None = None, quiet_s: float = 0.25) -> None:
        self.store, self.keep, self.workers = store, keep, workers
        self._busy, self.quiet_s = busy, quiet_s  # a shadow sharing the live side's cores gives way (yielding.py)
        self.send_timeout_s, self.embed_timeout_s = send_timeout_s, embed_timeout_s
        self._send, self._embed = send, embed
        self._queue: asyncio.Queue[ShadowRequest] = asyncio.Queue(max_queue)
        self._windows: dict[Shadow, Window] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = True  # until started: offers are dropped
        self.metrics = ShadowMetrics(registry, self._queue.qsize)
        self.writer: BatchWriter[Compared] = BatchWriter(store, self._commit, self._unstored, prepare=_prepare,
                                                         name="shadow-writer", **(writer_options or {}))

    @property
    def gives_way(self) -> bool:
        """Whether a candidate on the live side's CPU cores is asked only at quiet moments."""
        return self._busy is not None

    # -- the request path ---------------------------------------------------------------------------------
    def offer(self, request: ShadowRequest) -> bool:
        """Queue `request` for its candidate; False when it was dropped (counted). Never blocks, never raises."""
        try:
            window = self._window(request.live, request.candidate)
            window.offered += 1
            if self._closed:
                return self._dropped(window)
            try:
                self._queue.put_nowait(request)
            except asyncio.QueueFull:
                return self._dropped(window)
            return True
        except Exception:  # the live request must not fail because of its shadow
            log.exception("shadow offer failed")
            return False

    def _withdrawn(self, window: Window) -> None:
        window.withdrawn += 1
        self.metrics.withdrawn.labels(window.live, window.candidate).inc()

    def _dropped(self, window: Window) -> bool:
        window.dropped += 1
        self.metrics.dropped.labels(window.live, window.candidate).inc()
        return False

    # -- reading ------------------------------------------------------------------------------------------
    def summary(self, live: str, candidate: str) -> ShadowSummary:
        """A shadow's aggregates (0 pairs for one never seen)."""
        window = self._windows.get((live, candidate))
        return (Window(live, candidate, self.keep) if window is None else window).summary()

    def summaries(self) -> list[ShadowSummary]:
        return [self._windows[k].summary() for k in sorted(self._windows)]

    def worst(self, live: str, candidate: str, limit: int = 20) -> list[ShadowPair]:
        """The stored pairs with the lowest agreement, redacted. A store read: call it off the loop."""
        return worst_pairs(self.store, live, candidate, limit)

    async def forget(self, live: str, candidate: str, *, delete: bool = False) -> int:
        """A shadow detached: its aggregates and series go; with `delete` its stored pairs too (returns how many)."""
        self._windows.pop((live, candidate), None)
        self.metrics.forget(live, candidate)
        if not delete:
            return 0
        await self.writer.flush()
        return await self.writer.run(delete_shadow, self.store, live, candidate)

    # -- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Recompute the aggregates from the kept pairs, then start the writer and the workers."""
        if self._tasks:
            return
        rows = await asyncio.to_thread(newest_figures, self.store, self.keep)
        for row in rows:
            self._window(row["live"], row["candidate"]).add(figures_of(row), row["created_at"])
        for window in self._windows.values():
            self.metrics.update(window)
        self.writer.start()
        self._closed = False
        self._tasks = [asyncio.create_task(self._work(), name=f"shadow-worker-{i}") for i in range(self.workers)]

    async def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued request is compared and its pair written; False on timeout."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout_s)
        except TimeoutError:
            return False
        return await self.writer.flush(timeout_s)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the workers (a pair in progress is abandoned; queued requests are dropped and counted), then write
        what was compared (at most `timeout_s`)."""
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        while not self._queue.empty():
            request = self._queue.get_nowait()
            self._queue.task_done()
            self._dropped(self._window(request.live, request.candidate))
        await self.writer.stop(timeout_s)

    # -- the workers --------------------------------------------------------------------------------------
    async def _work(self) -> None:
        while True:
            request = await self._queue.get()
            try:
                if (request.live, request.candidate) in self._windows:  # else detached since it was offered
                    await self._one(request)
            except Exception:
                log.exception("shadow pair failed", extra={"deployment": request.live, "candidate": request.candidate})
            finally:
                self._queue.task_done()

    async def _one(self, request: ShadowRequest) -> None:
        answer = await self._ask(request)
        figures = await asyncio.to_thread(compare, request.live_answer, answer)
        window = self._windows.get((request.live, request.candidate))
        if window is None:  # the shadow was detached while its candidate answered
            return
        if self._embed is not None and figures.live_refusal is None and figures.candidate_refusal is None:
            similarity = await self._cosine(request.live_answer.text, answer.text)
            if similarity is None:
                window.embed_failures += 1
                self.metrics.embed_failures.labels(request.live, request.candidate).inc()
            figures = figures.model_copy(update={"cosine": similarity})
        if self._windows.get((request.live, request.candidate)) is not window:
            return
        window.add(figures, request.created_at)
        self.metrics.pairs.labels(request.live, request.candidate).inc()
        self.metrics.agreement.labels(request.live, request.candidate).observe(figures.agreement)
        self.metrics.update(window)
        self.writer.submit(Compared(request, answer, figures))

    async def _ask(self, request: ShadowRequest) -> Answer:
        body = {k: v for k, v in request.body.items() if k != "stream_options"}
        body.update(model=request.candidate, stream=False)
        started = time.perf_counter()
        try:
            if self._busy is None:
                return await asyncio.wait_for(self._send(body), self.send_timeout_s)
            window = self._window(request.live, request.candidate)
            return await ask_when_quiet(lambda: asyncio.wait_for(self._send(body), self.send_timeout_s),
                                        self._busy, request.live, request.candidate, quiet_s=self.quiet_s,
                                        on_withdrawn=lambda: self._withdrawn(window))
        except Exception as exc:  # the candidate failed to answer: an error on its side of the pair
            log.warning("shadow candidate did not answer", extra={"deployment": request.live,
                                                                  "candidate": request.candidate, "error": repr(exc)})
            return Answer(ERROR_STATUS, "", time.perf_counter() - started)

    async def _cosine(self, live: str, candidate: str) -> float | None:
        assert self._embed is not None
        try:
            vectors = await asyncio.wait_for(self._embed([live, candidate]), self.embed_timeout_s)
            if len(vectors) != 2:
                raise ValueError(f"{len(vectors)} vectors for 2 texts")
            return cosine(vectors[0], vectors[1])
        except Exception as exc:
            log.warning("shadow embeddings failed", extra={"error": repr(exc)})
            return None

    # -- bookkeeping --------------------------------------------------------------------------------------
    def _window(self, live: str, candidate: str) -> Window:
        window = self._windows.get((live, candidate))
        if window is None:
            window = self._windows[(live, candidate)] = Window(live, candidate, self.keep)
        return window

    def _commit(self, conn: Any, batch: list[ShadowPair]) -> None:
        insert_pairs(conn, batch, self.keep)

    def _unstored(self, items: list[Any], reason: str) -> None:
        for item in items:
            request = item.request if isinstance(item, Compared) else None
            live, candidate = (request.live, request.candidate) if request else (item.live, item.candidate)
            self._window(live, candidate).unstored += 1
            self.metrics.unstored.labels(live, candidate).inc()
        log.warning("shadow pairs not stored", extra={"reason": reason, "count": len(items)})


def _prepare(batch: list[Compared]) -> tuple[list[ShadowPair], list[Compared]]:
    """On the writer's thread: each pair through its request's redaction; those it fails on are not stored."""
    ready: list[ShadowPair] = []
    refused: list[Compared] = []
    for item in batch:
        try:
            ready.append(_stored(item))
        except Exception:
            log.exception("shadow pair redaction failed; not stored", extra={"deployment": item.request.live})
            refused.append(item)
    return ready, refused


def _stored(item: Compared) -> ShadowPair:
    request, live, candidate = item.request, item.request.live_answer, item.candidate
    clean = request.redact or (lambda text: text)
    messages = [m.model_copy(update={"content": clean(m.content)}) for m in conversation(request.body)]
    return ShadowPair(
        live=request.live, candidate=request.candidate, created_at=request.created_at, endpoint=request.endpoint,
        key_id=request.key_id, messages=messages, live_status=live.status, live_answer=clean(live.text),
        live_latency_s=live.latency_s, candidate_status=candidate.status, candidate_answer=clean(candidate.text),
        candidate_latency_s=candidate.latency_s, figures=item.figures)
