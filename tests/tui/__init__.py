"""TUI tests. The recorded API responses they replay (tui.replay) are in fixtures/api.json."""

from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "api.json"
