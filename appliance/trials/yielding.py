"""A shadow that gives way to live traffic when both compute on the same CPU cores.

On a CPU box two llama.cpp processes stall each other at every thread barrier: a live answer took 15.5 s beside
a 2-thread shadow, 1.0 s beside a 1-thread one and 0.45 s alone (docs/deploy.md). Lowering the candidate's
priority does not help (16.0 s reniced to 19), because the stall is in the live process's own barriers. So a
shadow whose candidate shares the cores asks its candidate only while the live deployment has had nothing in
flight for `quiet_s`, and withdraws the request (closes the connection: llama-server and vLLM cancel the
generation) as soon as a live request arrives; the request is asked again at the next quiet moment. Under
constant load the shadow's queue fills and further offers are dropped and counted: live answers come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
Busy = Callable[[str, str], bool]  # (live, candidate) → the candidate must give way now
POLL_S = 0.02


async def quiet(busy: Busy, live: str, candidate: str, quiet_s: float) -> None:
    """Return once `busy(live, candidate)` has been false for `quiet_s` on end."""
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        if busy(live, candidate):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        if quiet_since is not None and now - quiet_since >= quiet_s:
            return
        await asyncio.sleep(POLL_S)


async def ask_when_quiet(ask: Callable[[], Awaitable[T]], busy: Busy, live: str, candidate: str, *,
                         quiet_s: float, on_withdrawn: Callable[[], None]) -> T:
    """`ask()` at a quiet moment; cancelled and asked again later each time the live side gets busy before it
    answered (`on_withdrawn` counts each such attempt)."""
    while True:
        await quiet(busy, live, candidate, quiet_s)
        attempt: asyncio.Task[T] = asyncio.ensure_future(ask())
        withdrawn = False
        try:
            while not attempt.done():
                if busy(live, candidate):
                    withdrawn = attempt.cancel()
                    break
                await asyncio.wait({attempt}, timeout=POLL_S)
        finally:
            if not attempt.done():  # withdrawn, or this worker itself is being cancelled
                attempt.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await attempt
        if not withdrawn or not attempt.cancelled():
            return attempt.result()
        on_withdrawn()
