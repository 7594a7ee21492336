"""Admission per deployment: as many requests in flight as the backend has slots, a bounded queue behind
them, and a clear 429 (with Retry-After) when the queue is full. Per key: a cap on requests running or
queued, so one app (or one runaway client) cannot take every slot and the whole queue."""

from __future__ import annotations

import asyncio

from appliance.errors import ApplianceError


class QueueFull(ApplianceError):
    status, code = 429, "queue_full"


class Gate:
    def __init__(self, slots: int, queue_depth: int) -> None:
        self.slots = slots
        self.queue_depth = queue_depth
        self._semaphore = asyncio.Semaphore(slots)
        self.waiting = 0
        self.active = 0

    async def acquire(self) -> None:
        if self._semaphore.locked() and self.waiting >= self.queue_depth:
            raise QueueFull(f"{self.waiting} requests already queued (limit {self.queue_depth})")
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1
        self.active += 1

    def release(self) -> None:
        self.active -= 1
        self._semaphore.release()


class KeyBusy(ApplianceError):
    status, code = 429, "key_concurrency_limit"


class KeyClaim:
    """One request's place in its key's count; releasing it twice counts once."""

    def __init__(self, gates: Gates, key_id: str) -> None:
        self._gates, self._key_id, self._released = gates, key_id, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._gates._unclaim(self._key_id)


class Gates:
    def __init__(self, queue_depth: int, per_key: int = 16) -> None:
        self.queue_depth = queue_depth
        self.per_key = per_key
        self._gates: dict[str, Gate] = {}
        self._by_key: dict[str, int] = {}

    def claim(self, key_id: str, key_name: str) -> KeyClaim:
        """Count one more request of `key_id` until the claim is released. Raises KeyBusy over the cap."""
        held = self._by_key.get(key_id, 0)
        if held >= self.per_key:
            raise KeyBusy(f"key {key_name!r} already has {held} requests running or queued (limit {self.per_key})",
                          headers={"Retry-After": "1"})
        self._by_key[key_id] = held + 1
        return KeyClaim(self, key_id)

    def held(self, key_id: str) -> int:
        return self._by_key.get(key_id, 0)

    def _unclaim(self, key_id: str) -> None:
        held = self._by_key.get(key_id, 0) - 1
        if held > 0:
            self._by_key[key_id] = held
        else:
            self._by_key.pop(key_id, None)

    def busy(self, name: str) -> bool:
        """Whether deployment `name` has a request running or queued (a shadow on its cores gives way)."""
        gate = self._gates.get(name)
        return gate is not None and (gate.active > 0 or gate.waiting > 0)

    def for_deployment(self, name: str, slots: int) -> Gate:
        gate = self._gates.get(name)
        if gate is None or gate.slots != slots:
            gate = self._gates[name] = Gate(slots, self.queue_depth)
        return gate
