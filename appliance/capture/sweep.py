"""Retention of captured items and the operator's purge; feedback and reviews go with their item (ON DELETE
CASCADE on both tables).

Retention, per deployment, from its `CaptureSettings` (items of a deployment with none, e.g. one since deleted,
follow `default`): items older than `retention_days` go; then beyond `max_rows` the oldest go; then the oldest
go until the rest fit in `max_bytes`. A deployment whose capture was switched off keeps its items under the same
limits until they age out or are purged. Deletes run in short transactions of `CHUNK` rows, so the request
path's writer and the rest of the daemon never wait long on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, Field

from appliance.capture.models import CaptureSettings
from appliance.errors import BadRequest
from appliance.state.store import StateStore

log = logging.getLogger(__name__)
CHUNK = 500
DAY_S = 86400.0
_NEWEST = "ORDER BY created_at DESC, response_id DESC"


class SweepResult(BaseModel):
    removed: dict[str, dict[str, int]] = Field(default_factory=dict)  # deployment -> {age, rows, bytes}

    @property
    def total(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.removed.values())


def _delete_ids(store: StateStore, ids: list[str]) -> int:
    removed = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        with store.transaction() as conn:
            removed += conn.execute(f"DELETE FROM captures WHERE response_id IN ({','.join('?' * len(chunk))})",
                                    chunk).rowcount
    return removed


def _delete_where(store: StateStore, where: str, params: tuple[Any, ...]) -> int:
    removed = 0
    while True:
        with store.transaction() as conn:
            count = conn.execute(f"DELETE FROM captures WHERE response_id IN (SELECT response_id FROM captures "
                                 f"WHERE {where} LIMIT {CHUNK})", params).rowcount
        removed += count
        if count < CHUNK:
            return removed


def _ids(store: StateStore, sql: str, params: tuple[Any, ...]) -> list[str]:
    return [str(r["response_id"]) for r in store.query(sql, params)]


def retain(store: StateStore, deployment: str, settings: CaptureSettings, now: float | None = None) -> dict[str, int]:
    """Apply one deployment's limits; how many items went for each reason (age, rows, bytes)."""
    now = time.time() if now is None else now
    cutoff = now - settings.retention_days * DAY_S
    age = _delete_where(store, "deployment = ? AND created_at < ?", (deployment, cutoff))
    beyond_rows = _ids(store, f"SELECT response_id FROM captures WHERE deployment = ? {_NEWEST} LIMIT -1 OFFSET ?",
                       (deployment, settings.max_rows))
    rows = _delete_ids(store, beyond_rows)
    beyond_bytes = _ids(store, f"SELECT response_id FROM (SELECT response_id, SUM(size_bytes) OVER ({_NEWEST}) "
                               "AS kept FROM captures WHERE deployment = ?) WHERE kept > ?",
                        (deployment, settings.max_bytes))
    return {"age": age, "rows": rows, "bytes": _delete_ids(store, beyond_bytes)}


def sweep_retention(store: StateStore, settings: Mapping[str, CaptureSettings], *,
                    default: CaptureSettings | None = None, now: float | None = None) -> SweepResult:
    """Apply every deployment's retention (see the module docstring) to the items in the store."""
    default = default or CaptureSettings()
    result = SweepResult()
    for row in store.query("SELECT DISTINCT deployment FROM captures"):
        deployment = str(row["deployment"])
        removed = retain(store, deployment, settings.get(deployment, default), now)
        if any(removed.values()):
            result.removed[deployment] = removed
            log.info("capture retention", extra={"deployment": deployment, **removed})
    return result


def purge(store: StateStore, *, deployment: str | None = None, key: str | None = None,
          older_than: float | None = None, now: float | None = None) -> int:
    """Delete the items that match every filter given, with their feedback and reviews; how many went.

    Args:
        key: the key's name (as captured).
        older_than: an age in seconds: items captured before now - older_than.
    Raises:
        BadRequest: no filter (purging everything takes `older_than=0`).
    """
    if deployment is None and key is None and older_than is None:
        raise BadRequest("purge needs a deployment, a key or an age (older_than=0 purges everything)")
    if older_than is not None and older_than < 0:
        raise BadRequest(f"older_than {older_than} must be 0 or more seconds", param="older_than")
    conditions: list[str] = []
    params: list[Any] = []
    for sql, value in (("deployment = ?", deployment), ("key_name = ?", key)):
        if value is not None:
            conditions.append(sql)
            params.append(value)
    if older_than is not None:
        conditions.append("created_at <= ?")
        params.append((time.time() if now is None else now) - older_than)
    return _delete_where(store, " AND ".join(conditions), tuple(params))


class RetentionSweeper:
    """Runs `sweep_retention` every `interval_s` on a worker thread; a failure is logged and retried at the next
    round. `settings()` returns each deployment's capture settings at the time of the round."""

    def __init__(self, store: StateStore, settings: Callable[[], Mapping[str, CaptureSettings]], *,
                 interval_s: float = 300.0, default: CaptureSettings | None = None) -> None:
        self.store, self.settings, self.interval_s, self.default = store, settings, interval_s, default
        self.last: SweepResult | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="capture-retention")

    async def run_once(self) -> SweepResult | None:
        try:
            self.last = await asyncio.to_thread(self._sweep, dict(self.settings()))
        except Exception:  # disk full, locked store, a bad settings document: the next round tries again
            log.exception("capture retention sweep failed")
            return None
        return self.last

    def _sweep(self, settings: dict[str, CaptureSettings]) -> SweepResult:
        try:
            return sweep_retention(self.store, settings, default=self.default)
        finally:
            self.store.close()  # this worker thread's connection

    async def _loop(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
