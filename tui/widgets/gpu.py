"""One GPU: live sparklines of utilisation, memory, temperature and power from the dashboard's samples."""

from __future__ import annotations

from collections import deque
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Label, Sparkline, Static

from tui import format as fmt

HISTORY = 60  # samples kept per series: two minutes at the default 2 s poll

# (sample field, row label, how to show the latest value given the GPU's static facts)
SERIES: tuple[tuple[str, str], ...] = (
    ("utilization_pct", "util"),
    ("memory_used_mib", "mem"),
    ("temperature_c", "temp"),
    ("power_w", "power"),
)


def _value_text(field: str, value: float | None, gpu: dict[str, Any]) -> str:
    if value is None:
        return "n/a"
    if field == "utilization_pct":
        return fmt.percent(value)
    if field == "memory_used_mib":
        total = gpu.get("memory_total_mib")
        return f"{fmt.mib(value)}" + (f" / {fmt.mib(total)}" if total else "")
    if field == "temperature_c":
        return f"{value:.0f} °C"
    limit = gpu.get("power_limit_w")
    return f"{value:.0f} W" + (f" / {limit:.0f} W" if limit else "")


class GpuCard(Vertical):
    """Static facts on the title line, then one sparkline row per series NVML supports on this GPU."""

    DEFAULT_CSS = """
    GpuCard { height: auto; border: round $primary-darken-1; padding: 0 1; }
    GpuCard Horizontal { height: 1; }
    GpuCard .series-label { width: 6; color: $text-muted; }
    GpuCard Sparkline { width: 1fr; height: 1; margin: 0 1 0 0; }
    GpuCard .series-value { width: 22; text-align: right; }
    """

    def __init__(self, gpu: dict[str, Any], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.gpu = gpu
        self.history: dict[str, deque[float | None]] = {field: deque(maxlen=HISTORY) for field, _ in SERIES}
        self.border_title = f"GPU {gpu.get('index')} · {gpu.get('name')}"
        cc = gpu.get("compute_capability")
        self.border_subtitle = f"sm {cc}" if cc else ""

    def compose(self) -> ComposeResult:
        for field, label in SERIES:
            with Horizontal(id=f"row-{field}"):
                yield Label(label, classes="series-label")
                yield Sparkline([], summary_function=max, id=f"spark-{field}")
                yield Static("n/a", classes="series-value", id=f"value-{field}")

    def add_sample(self, sample: dict[str, Any]) -> None:
        for field, _ in SERIES:
            value = sample.get(field)
            self.history[field].append(None if value is None else float(value))
        if self.is_mounted:  # a card just mounted paints its history in on_mount
            self._paint()

    def on_mount(self) -> None:
        self._paint()

    def _paint(self) -> None:
        for field, _ in SERIES:
            known = [v for v in self.history[field] if v is not None]
            # A series NVML never reported (not supported on this GPU) is an honest "n/a", not a flat zero.
            self.query_one(f"#spark-{field}", Sparkline).data = known
            latest = self.history[field][-1] if self.history[field] else None
            self.query_one(f"#value-{field}", Static).update(_value_text(field, latest, self.gpu))
