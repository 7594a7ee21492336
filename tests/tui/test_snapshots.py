"""Every screen at 80×24 and 120×40, rendered from recorded API responses with a frozen clock.

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the
report it writes; docs/screenshots/render.py makes the README's pictures from the same tour (tui.tour).
"""

from __future__ import annotations

import pytest
from textual.pilot import Pilot

from tests.tui import FIXTURE, TRIALS
from tui.replay import Replay, replay_app
from tui.tour import KEYS, settle, show

SIZES = [(80, 24), (120, 40)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(KEYS))
def test_screen(snap_compare, screen: str, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await show(pilot, screen)

    assert snap_compare(replay_app(Replay(FIXTURE)), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_submit_form(snap_compare, size: tuple[int, int]) -> None:
    """The fine-tune form as the job kinds describe it: selects, adapter name, overrides from the profile."""
    async def run_before(pilot: Pilot[None]) -> None:
        await show(pilot, "jobs")
        await pilot.press("n")
        await settle(pilot)

    assert snap_compare(replay_app(Replay(FIXTURE)), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_serving_trials(snap_compare, size: tuple[int, int]) -> None:
    """The starter with a shadow (a Q2_K quant of it), a canary of the same and the live watch's verdict
    (fixtures/trials.json over the base recording), scrolled into view as an operator would; the footer offers
    the shadow's pairs and the abort."""
    async def run_before(pilot: Pilot[None]) -> None:
        await show(pilot, "serving")
        pilot.app.screen.query_one("#info").scroll_to_widget(pilot.app.screen.query_one("#trials"), animate=False,
                                                              top=True)
        await settle(pilot)

    assert snap_compare(replay_app(Replay(FIXTURE, TRIALS)), terminal_size=size, run_before=run_before)


def test_shadow_pairs_dialog(snap_compare) -> None:
    """The shadow's worst pairs, redacted (an e-mail address in a question is masked)."""
    async def run_before(pilot: Pilot[None]) -> None:
        await show(pilot, "serving")
        await pilot.press("w")
        await settle(pilot)

    assert snap_compare(replay_app(Replay(FIXTURE, TRIALS)), terminal_size=(120, 40), run_before=run_before)
