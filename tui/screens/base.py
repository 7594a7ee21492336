"""What every screen shares: the bar, the banner, the footer, guarded API calls, and refresh on resume."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, ClassVar, TypeVar, cast

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from appliance.client import ApiError, AsyncDaemonClient, DaemonUnreachable
from tui.widgets.chrome import ConnectionBanner, ScreenBar

if TYPE_CHECKING:
    from tui.app import ApplianceApp

T = TypeVar("T")


class ApplianceScreen(Screen[None]):
    """A screen of the control panel. Subclasses compose `body()` and fetch in `load()`."""

    MODE: ClassVar[str] = ""
    # Screens that show live state poll while they are current; the others load when shown.
    POLL: ClassVar[bool] = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "Refresh")]

    def compose(self) -> ComposeResult:
        yield ScreenBar(self.MODE)
        yield ConnectionBanner()
        yield from self.body()
        yield Footer()

    def body(self) -> ComposeResult:
        yield from ()

    @property
    def control(self) -> ApplianceApp:
        from tui.app import ApplianceApp

        return cast(ApplianceApp, self.app)

    @property
    def api(self) -> AsyncDaemonClient:
        return self.control.client

    def now(self) -> float:
        return self.control.clock()

    def on_mount(self) -> None:
        self.watch(self.control, "daemon_problem", self._daemon_changed)
        if self.POLL and self.control.poll_s:
            self.set_interval(self.control.poll_s, self._poll)

    def _daemon_changed(self, problem: str | None) -> None:
        self.query_one(ConnectionBanner).show_state(problem)

    def on_screen_resume(self) -> None:
        self.action_reload()

    def _poll(self) -> None:
        if self.is_current:
            self.action_reload()

    def action_reload(self) -> None:
        if self.control.daemon_problem is None:
            self._guarded_load()

    # @work hands the worker a callable, not a coroutine: one cancelled before it starts leaves none un-awaited.
    @work(group="load", exclusive=True, exit_on_error=False)
    async def _guarded_load(self) -> None:
        await self.guard(self.load())

    async def load(self) -> None:
        """Fetch what the screen shows and post it as a message (workers never touch widgets)."""

    async def guard(self, call: Awaitable[T]) -> T | None:
        """Await an API call; failures become a notification or the reconnecting banner, never a traceback."""
        try:
            return await call
        except DaemonUnreachable as exc:
            self.control.daemon_lost(exc.message)
        except ApiError as exc:
            self.notify(exc.message, title=exc.title, severity="error", timeout=8)
        return None

    def act(self, call: Awaitable[object], done: str | None = None) -> None:
        """Run a change (import, delete, start…) in a worker; notify `done` and reload when it succeeded."""

        async def run() -> None:
            if await self.guard(call) is not None:
                if done:
                    self.notify(done)
                await self.guard(self.load())

        self.run_worker(run(), group="act", exit_on_error=False)
