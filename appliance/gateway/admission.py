"""Admission per deployment: as many requests in flight as the backend has slots, a bounded queue behind
them, and a clear 429 (with Retry-After) when the queue is full."""

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


class Gates:
    def __init__(self, queue_depth: int) -> None:
        self.queue_depth = queue_depth
        self._gates: dict[str, Gate] = {}

    def for_deployment(self, name: str, slots: int) -> Gate:
        gate = self._gates.get(name)
        if gate is None or gate.slots != slots:
            gate = self._gates[name] = Gate(slots, self.queue_depth)
        return gate
