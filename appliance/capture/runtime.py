"""Capture as one daemon run holds it: the writer the gateway hands exchanges to, and the retention sweep."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from appliance.capture.models import CaptureSettings
from appliance.capture.sweep import RetentionSweeper
from appliance.capture.writer import CaptureWriter
from appliance.state.store import StateStore


@dataclass(frozen=True)
class CaptureRuntime:
    writer: CaptureWriter
    sweeper: RetentionSweeper

    @classmethod
    def create(cls, store: StateStore, registry: CollectorRegistry,
               settings: Callable[[], Mapping[str, CaptureSettings]], sweep_interval_s: float) -> CaptureRuntime:
        return cls(CaptureWriter(store, registry), RetentionSweeper(store, settings, interval_s=sweep_interval_s))

    def start(self) -> None:
        """In the daemon's event loop."""
        self.writer.start()
        self.sweeper.start()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is queued (within `timeout_s`), then stop sweeping."""
        await self.writer.stop(timeout_s)
        await self.sweeper.stop()
