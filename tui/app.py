"""The control panel: screens as modes, number keys and the command palette to move, a reconnect loop."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer

from appliance.client import ApiError, AsyncDaemonClient
from tui.screens.chat import ChatScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.datasets import DatasetsScreen
from tui.screens.jobs import JobsScreen
from tui.screens.keys import KeysScreen
from tui.screens.logs import LogsScreen
from tui.screens.models import ModelsScreen
from tui.screens.review import ReviewScreen
from tui.screens.serving import ServingScreen
from tui.widgets.chrome import SCREENS


class DaemonReconnected(Message):
    """The health probe answered again after the daemon was lost."""


class ApplianceApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "slm-appliance"
    MODES: ClassVar[dict[str, str | Callable[[], Screen[None]]]] = {  # type: ignore[misc]
        "dashboard": DashboardScreen, "models": ModelsScreen, "datasets": DatasetsScreen, "jobs": JobsScreen,
        "serving": ServingScreen, "chat": ChatScreen, "keys": KeysScreen, "logs": LogsScreen, "review": ReviewScreen,
    }
    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(key, f"switch_mode('{mode}')", label, show=False) for mode, key, label in SCREENS),
        Binding("q", "quit", "Quit"),
    ]

    daemon_problem: reactive[str | None] = reactive(None)

    def __init__(self, client: AsyncDaemonClient, *, poll_s: float | None = 2.0, reconnect_s: float = 2.0,
                 clock: Callable[[], float] = time.time) -> None:
        """Args: poll_s: refresh period of live screens (None: only on demand, as snapshot tests want);
        clock: wall clock for ages and durations (frozen in snapshot tests)."""
        super().__init__()
        self.client = client
        self.poll_s = poll_s
        self.reconnect_s = reconnect_s
        self.clock = clock
        self._reconnect: Timer | None = None
        self.sub_title = client.base_url

    def on_mount(self) -> None:
        self.switch_mode("dashboard")

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for mode, key, label in SCREENS:
            yield SystemCommand(f"Go to {label}", f"Switch to the {label} screen (key {key})",
                                lambda m=mode: self.switch_mode(m))  # type: ignore[misc]

    # -- the daemon going away and coming back --------------------------------------------------------
    def daemon_lost(self, reason: str) -> None:
        self.daemon_problem = reason
        if self._reconnect is None:
            self._reconnect = self.set_interval(self.reconnect_s, self._probe)

    def _probe(self) -> None:
        self.run_worker(self._health(), group="reconnect", exclusive=True, exit_on_error=False)

    async def _health(self) -> None:
        try:
            await self.client.health()
        except ApiError:
            return
        self.post_message(DaemonReconnected())

    def on_daemon_reconnected(self, _: DaemonReconnected) -> None:
        if self._reconnect is not None:
            self._reconnect.stop()
            self._reconnect = None
        if self.daemon_problem is not None:
            self.daemon_problem = None
            self.notify("Daemon reachable again", title="Reconnected")
        reload = getattr(self.screen, "action_reload", None)
        if reload is not None:
            reload()
