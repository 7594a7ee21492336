"""Store writes that may fail for a while (disk full, "database is locked") without taking down the loop that
makes them: supervision and the job runner retry a few times, log, and carry on."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
# What a full disk, a locked or read-only database or an I/O error raises from SQLite or the file system.
TRANSIENT: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
ATTEMPTS, FIRST_DELAY_S = 3, 0.2


class WriteFailed(Exception):
    """A store write failed on every attempt; `__cause__` is the last error."""


async def write_retrying(what: str, write: Callable[[], T], attempts: int = ATTEMPTS,
                         delay: float = FIRST_DELAY_S) -> T:
    """`write()`, retried with doubling pauses (0.2 s, 0.4 s...) on a transient store error.

    Raises:
        WriteFailed: every attempt failed (logged with the last error); the caller decides how to go on.
    """
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except TRANSIENT as exc:
            if attempt == attempts:
                log.error("store write failed", extra={"write": what, "attempts": attempts, "error": str(exc)})
                raise WriteFailed(f"{what}: {exc}") from exc
            log.warning("store write failed; retrying", extra={"write": what, "attempt": attempt, "error": str(exc)})
            await asyncio.sleep(delay * 2 ** (attempt - 1))
    raise AssertionError("unreachable")
