"""Dashboard: GPUs as live sparklines, host, the chosen profile and why, deployments, recent jobs."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from rich.markup import escape
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from tui import format as fmt
from tui.screens.base import ApplianceScreen
from tui.widgets.gpu import GpuCard

Json = dict[str, Any]


class DashboardScreen(ApplianceScreen):
    MODE = "dashboard"
    POLL = True
    CSS_PATH = "dashboard.tcss"

    class Sampled(Message):
        """A poll came back: hardware with a live GPU sample, deployments and recent jobs."""

        def __init__(self, hardware: Json, deployments: list[Json], jobs: list[Json]) -> None:
            super().__init__()
            self.hardware, self.deployments, self.jobs = hardware, deployments, jobs

    class ProfileExplained(Message):
        def __init__(self, profiles: Json) -> None:
            super().__init__()
            self.profiles = profiles

    RECENT_JOBS: ClassVar[int] = 6

    def body(self) -> ComposeResult:
        with VerticalScroll(id="dash"):
            yield Static("", id="profile")
            yield Static("", id="host")
            yield Vertical(id="gpus")
            with Horizontal(id="lists"):
                with Vertical(id="deployments-box"):
                    yield Static("Deployments", classes="section")
                    yield DataTable(id="deployments", cursor_type="none", show_cursor=False)
                with Vertical(id="jobs-box"):
                    yield Static("Recent jobs", classes="section")
                    yield DataTable(id="recent-jobs", cursor_type="none", show_cursor=False)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#deployments", DataTable).add_columns("name", "state", "message")
        self.query_one("#recent-jobs", DataTable).add_columns("id", "type", "state", "progress")
        self._profile_loaded = False

    async def load(self) -> None:
        if not self._profile_loaded:
            profiles = await self.api.profiles()
            self.post_message(self.ProfileExplained(profiles))
        hardware, deployments, jobs = await asyncio.gather(
            self.api.hardware(), self.api.deployments(), self.api.jobs(limit=self.RECENT_JOBS))
        self.post_message(self.Sampled(hardware, deployments, jobs))

    @on(ProfileExplained)
    def show_profile(self, event: ProfileExplained) -> None:
        self._profile_loaded = True
        p = event.profiles
        others = [v for v in p.get("verdicts", []) if v.get("name") != p.get("selected")]
        why_not = "; ".join(f"{v['name']}: {(v.get('reasons') or ['?'])[0]}" for v in others[:2])
        pinned = " (pinned)" if p.get("pinned") else ""
        self.query_one("#profile", Static).update(
            f"[b]Profile[/b] {p.get('selected')}{pinned} — {p.get('reason')}\n[dim]not chosen: {why_not}[/dim]")

    @on(Sampled)
    def show_sample(self, event: Sampled) -> None:
        report = event.hardware.get("report", {})
        self._show_host(report)
        self._show_gpus(report, event.hardware.get("samples", []))
        self._show_deployments(event.deployments)
        self._show_jobs(event.jobs)

    def _show_host(self, report: Json) -> None:
        cpu, mem, disk = report.get("cpu", {}), report.get("memory", {}), report.get("disk", {})
        used_ram = (mem.get("total_mib", 0) - mem.get("available_mib", 0))
        used_disk = (disk.get("total_mib", 0) - disk.get("free_mib", 0))
        self.query_one("#host", Static).update(
            f"[b]CPU[/b] {cpu.get('model', '?')} · {cpu.get('physical_cores', '?')} cores   "
            f"[b]RAM[/b] {fmt.mib(used_ram)} / {fmt.mib(mem.get('total_mib'))}   "
            f"[b]Disk[/b] {fmt.mib(used_disk)} / {fmt.mib(disk.get('total_mib'))}")

    def _show_gpus(self, report: Json, samples: list[Json]) -> None:
        box = self.query_one("#gpus", Vertical)
        gpus = report.get("gpus", [])
        if not gpus:
            if not box.children:
                reason = report.get("nvml", {}).get("reason") or "no GPU found"
                box.mount(Static(f"[b]GPU[/b] none — {reason}", id="no-gpu"))
            return
        by_index = {s.get("index"): s for s in samples}
        for gpu in gpus:
            cards = box.query(f"#gpu-{gpu.get('index')}").results(GpuCard)
            card = next(cards, None)
            if card is None:
                card = GpuCard(gpu, id=f"gpu-{gpu.get('index')}")
                box.mount(card)
            card.add_sample(by_index.get(gpu.get("index"), {}))

    def _show_deployments(self, deployments: list[Json]) -> None:
        table = self.query_one("#deployments", DataTable)
        table.clear()
        for d in deployments:
            style = {"ready": "green", "failed": "red"}.get(d.get("state", ""), "yellow")
            table.add_row(d["name"], f"[{style}]{d['state']}[/]", escape(d.get("state_message", "")[:40]))
        if not deployments:
            table.add_row("—", "", "no deployments")

    def _show_jobs(self, jobs: list[Json]) -> None:
        table = self.query_one("#recent-jobs", DataTable)
        table.clear()
        for j in jobs[: self.RECENT_JOBS]:
            share = fmt.fraction(j.get("progress", {}))
            done = "" if share is None else f"{100 * share:.0f}%"
            table.add_row(j["id"][:10], j["type"], j["state"], done or j.get("progress", {}).get("phase", ""))
        if not jobs:
            table.add_row("—", "", "", "no jobs yet")
