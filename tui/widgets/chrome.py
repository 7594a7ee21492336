"""What every screen shows around its body: the screen bar on top and the reconnecting banner."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Static

# (mode name, key, label): the order of the bar and of the number keys.
SCREENS: tuple[tuple[str, str, str], ...] = (
    ("dashboard", "1", "Dashboard"),
    ("models", "2", "Models"),
    ("datasets", "3", "Datasets"),
    ("jobs", "4", "Jobs"),
    ("serving", "5", "Serving"),
    ("chat", "6", "Chat"),
    ("keys", "7", "Keys"),
    ("logs", "8", "Logs"),
    ("review", "9", "Review"),
)


class ScreenBar(Horizontal):
    """One tab per screen; keys 1–9 switch, a click does too. Nine tabs fit in 80 columns with one space between
    them (and one after the current tab's label)."""

    DEFAULT_CSS = """
    ScreenBar { height: 1; background: $panel; }
    ScreenBar > Static { width: auto; color: $text-muted; }
    ScreenBar > Static.current { color: $text; background: $primary; text-style: bold; padding: 0 1 0 0; }
    """

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        for mode, key, label in SCREENS:
            tab = Static(f"[@click=app.switch_mode('{mode}')] {key} {label}[/]", id=f"tab-{mode}")
            if mode == self.current:
                tab.add_class("current")
            yield tab


class ConnectionBanner(Static):
    """Shown while the daemon does not answer; the app keeps retrying in the background."""

    DEFAULT_CSS = """
    ConnectionBanner { display: none; height: auto; background: $error; color: $text; padding: 0 1; }
    ConnectionBanner.down { display: block; }
    """

    def show_state(self, problem: str | None) -> None:
        self.set_class(problem is not None, "down")
        if problem is not None:
            self.update(f"Daemon unreachable — reconnecting… ({problem})")
