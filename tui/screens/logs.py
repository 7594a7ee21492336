"""Logs: the daemon's audit log, its own recent log, and every backend's and job's log, followed live."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Log, Select, Static

from tui.screens.base import ApplianceScreen

Json = dict[str, Any]
AUDIT = "audit"
DAEMON = "daemon"
TAIL = 500


def audit_lines(entries: list[Json]) -> list[str]:
    lines = []
    for e in reversed(entries):  # the API lists newest first; a log reads oldest first
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(e.get("ts") or 0)))
        detail = json.dumps(e["detail"]) if e.get("detail") else ""
        lines.append(f"{when}Z {e.get('actor', '?')} {e.get('action', '?')} {e.get('target', '')} {detail}".rstrip())
    return lines


class LogsScreen(ApplianceScreen):
    MODE = "logs"
    POLL = True
    CSS_PATH = "logs.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [*ApplianceScreen.BINDINGS, Binding("f", "follow", "Follow on/off")]

    class Sources(Message):
        def __init__(self, deployments: list[str], jobs: list[str]) -> None:
            super().__init__()
            self.deployments, self.jobs = deployments, jobs

    class Fetched(Message):
        def __init__(self, source: str, lines: list[str]) -> None:
            super().__init__()
            self.source, self.lines = source, lines

    def body(self) -> ComposeResult:
        with Horizontal(id="logs-top"):
            yield Select([("daemon audit log", AUDIT)], value=AUDIT, allow_blank=False, id="source")
            yield Static("", id="follow")
        yield Log(max_lines=TAIL, id="log")

    def on_mount(self) -> None:
        super().on_mount()
        self.following = True
        self.shown: tuple[str, list[str]] = ("", [])
        self._show_follow()

    async def load(self) -> None:
        deployments, jobs = await asyncio.gather(self.api.deployments(), self.api.jobs(limit=20))
        self.post_message(self.Sources([d["name"] for d in deployments], [j["id"] for j in jobs]))
        source = str(self.query_one("#source", Select).value)
        if not self.following and source == self.shown[0]:
            return
        if source == AUDIT:
            lines = audit_lines(await self.api.audit(TAIL))
        elif source == DAEMON:
            lines = (await self.api.daemon_log(TAIL)).splitlines()
        elif source.startswith("deployment:"):
            lines = (await self.api.deployment_logs(source.split(":", 1)[1], TAIL)).splitlines()
        else:
            lines = (await self.api.job_logs(source.split(":", 1)[1], TAIL)).splitlines()
        self.post_message(self.Fetched(source, lines))

    @on(Sources)
    def sources(self, event: Sources) -> None:
        select = self.query_one("#source", Select)
        options = [("daemon audit log", AUDIT), ("daemon log", DAEMON)]
        options += [(f"backend: {n}", f"deployment:{n}") for n in event.deployments]
        options += [(f"job: {j}", f"job:{j}") for j in event.jobs]
        current = select.value
        if [v for _, v in options] != getattr(self, "_option_values", None):
            self._option_values = [v for _, v in options]
            with select.prevent(Select.Changed):
                select.set_options(options)
                select.value = current if current in self._option_values else AUDIT

    @on(Fetched)
    def fetched(self, event: Fetched) -> None:
        log = self.query_one("#log", Log)
        old_source, old_lines = self.shown
        if event.source == old_source and event.lines[: len(old_lines)] == old_lines:
            log.write_lines(event.lines[len(old_lines):])  # only what is new: the view does not jump
        else:
            log.clear()
            log.write_lines(event.lines)
        self.shown = (event.source, event.lines)

    @on(Select.Changed, "#source")
    def source_changed(self) -> None:
        self.action_reload()

    def action_follow(self) -> None:
        self.following = not self.following
        self._show_follow()

    def _show_follow(self) -> None:
        self.query_one("#follow", Static).update(
            "[green]following[/] (f to pause)" if self.following else "[yellow]paused[/] (f to follow)")
        self.query_one("#log", Log).auto_scroll = self.following
