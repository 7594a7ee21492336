"""The screen tour: each screen brought up the way an operator would, plus what makes it interesting. The
snapshot tests and docs/screenshots/render.py both drive it, so the pictures are the tested renders."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input

KEYS = {"dashboard": "1", "models": "2", "datasets": "3", "jobs": "4", "serving": "5", "chat": "6", "keys": "7",
        "logs": "8", "review": "9"}
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
    elif screen == "review":
        await pilot.press("down", "down", "down")  # rated down, corrected by the app, edited by the reviewer
        await settle(pilot)
    elif screen == "chat":
        await pilot.click("#prompt")
        await pilot.press(*"Name three primary colours.", "enter")
        await settle(pilot)
        pilot.app.screen.query_one("#prompt", Input).cursor_blink = False
