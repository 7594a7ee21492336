"""Every screen at 80×24 and 120×40, rendered from recorded API responses with a frozen clock.

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the
report it writes; docs/screenshots/render.py makes the README's pictures from the same scenarios.
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.tui.replay import replay_app

SIZES = [(80, 24), (120, 40)]
KEYS = {"dashboard": "1", "models": "2", "datasets": "3", "jobs": "4", "serving": "5", "chat": "6", "keys": "7",
        "logs": "8"}
DASHBOARD_SAMPLES = 12  # enough history for the sparklines to be lines


async def settle(pilot: Pilot[None]) -> None:
    """Let workers finish and their messages land, twice over (a handler may start another worker)."""
    for _ in range(3):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def show(pilot: Pilot[None], screen: str) -> None:
    """Bring `screen` up the way an operator would, plus what makes it interesting."""
    await pilot.press(KEYS[screen])
    await settle(pilot)
    if screen == "dashboard":
        for _ in range(DASHBOARD_SAMPLES - 1):
            pilot.app.screen.action_reload()  # type: ignore[attr-defined]
            await settle(pilot)
    elif screen == "models":
        await pilot.press("down", "down")  # the fine-tuned adapter: metadata and a lineage two deep
        await settle(pilot)
    elif screen == "chat":
        await pilot.click("#prompt")
        await pilot.press(*"Name three primary colours.", "enter")
        await settle(pilot)
        pilot.app.screen.query_one("#prompt", Input).cursor_blink = False


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(KEYS))
def test_screen(snap_compare, screen: str, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await show(pilot, screen)

    assert snap_compare(replay_app(), terminal_size=size, run_before=run_before)
