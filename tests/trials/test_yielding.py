"""A shadow on the live side's CPU cores gives way (trials/yielding.py): nothing is asked of the candidate while
the live deployment is busy, nor before it has been quiet for `quiet_s`; a request in progress when live traffic
arrives is withdrawn (cancelled, counted) and asked again at the next quiet moment; the pair is then made as
usual. Real ShadowRunner on a real SQLite file; the candidate is a coroutine that takes its time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import CollectorRegistry

from appliance.state import StateStore
from appliance.trials.compare import Answer
from appliance.trials.shadow import ShadowRunner
from appliance.trials.yielding import POLL_S, ask_when_quiet
from tests.trials.conftest import ok, request

QUIET_S = 0.1
ANSWER_S = 0.3


class Live:
    """The live side's load as the test sets it, with when it changed."""

    def __init__(self) -> None:
        self.busy_now = True
        self.changes: list[tuple[float, bool]] = [(time.monotonic(), True)]

    def set(self, busy: bool) -> None:
        self.busy_now = busy
        self.changes.append((time.monotonic(), busy))

    def __call__(self, live: str, candidate: str) -> bool:
        assert (live, candidate) == ("chat", "chat-v2")
        return self.busy_now


def test_the_candidate_is_asked_only_at_quiet_moments_and_withdrawn_for_live_traffic(store: StateStore) -> None:
    live = Live()
    asked: list[tuple[float, float | None]] = []  # (start, end; None: cancelled)
    registry = CollectorRegistry()

    async def candidate(body: dict[str, Any]) -> Answer:
        start = time.monotonic()
        asked.append((start, None))
        await asyncio.sleep(ANSWER_S)
        asked[-1] = (start, time.monotonic())
        return ok("Paris.")

    async def scenario() -> None:
        runner = ShadowRunner(store, registry, candidate, busy=live, quiet_s=QUIET_S)
        await runner.start()
        assert runner.offer(request("capital?", "Paris."))
        await asyncio.sleep(0.5)
        assert asked == []  # busy the whole time: not asked
        live.set(False)
        await asyncio.sleep(QUIET_S / 2)
        assert asked == []  # not yet quiet for long enough
        await asyncio.sleep(QUIET_S + 0.1)
        assert len(asked) == 1  # asked once quiet
        live.set(True)  # live traffic arrives while the candidate answers
        await asyncio.sleep(0.2)
        assert asked[0][1] is None and len(asked) == 1  # withdrawn, not asked again while busy
        assert runner.summary("chat", "chat-v2").withdrawn == 1
        live.set(False)
        assert await runner.flush(timeout_s=5)
        await runner.stop()
        summary = runner.summary("chat", "chat-v2")
        assert summary.pairs == 1 and summary.withdrawn == 1 and summary.dropped == 0
        assert summary.exact_rate == 1.0

    asyncio.run(scenario())
    assert len(asked) == 2 and asked[1][1] is not None
    quiet_from = live.changes[-1][0]
    assert asked[1][0] >= quiet_from + QUIET_S  # asked again only after a full quiet spell
    assert registry.get_sample_value("slm_shadow_withdrawn_total",
                                     {"deployment": "chat", "candidate": "chat-v2"}) == 1.0
    # No attempt ran on while the live side was busy for longer than the polling step (and the cancel).
    busy_at = live.changes[3][0]
    assert asked[0][0] < busy_at and asked[1][0] > busy_at


def test_an_answer_that_comes_first_is_kept_and_a_cancelled_worker_cancels_its_attempt() -> None:
    state = {"busy": False}
    cancelled = asyncio.Event()

    async def scenario() -> None:
        async def fast() -> str:
            return "done"

        withdrawn: list[int] = []
        got = await ask_when_quiet(fast, lambda _l, _c: state["busy"], "chat", "chat-v2", quiet_s=0.0,
                                   on_withdrawn=lambda: withdrawn.append(1))
        assert got == "done" and withdrawn == []

        async def slow() -> str:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "late"

        worker = asyncio.ensure_future(ask_when_quiet(slow, lambda _l, _c: False, "chat", "chat-v2", quiet_s=0.0,
                                                      on_withdrawn=lambda: None))
        await asyncio.sleep(5 * POLL_S)
        worker.cancel()  # the runner stopping
        await asyncio.wait({worker})
        assert worker.cancelled() and cancelled.is_set()

    asyncio.run(scenario())
