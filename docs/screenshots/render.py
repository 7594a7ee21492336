"""Renders the README's screenshots: every screen at 120×40 from the recorded API responses the snapshot
tests use (same scenarios), as SVG, then PNG through rsvg-convert (Debian: librsvg2-bin).

    .venv/bin/python -m docs.screenshots.render
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

from tui.replay import Replay, replay_app
from tui.tour import KEYS, show

OUT = Path(__file__).parent
FIXTURE = OUT.parent.parent / "tests" / "tui" / "fixtures" / "api.json"
SIZE = (120, 40)


async def render(screen: str) -> Path:
    app = replay_app(Replay(FIXTURE))
    async with app.run_test(size=SIZE) as pilot:
        await show(pilot, screen)
        app.save_screenshot(f"{screen}.svg", path=str(OUT))
    return OUT / f"{screen}.svg"


def to_png(svg: Path) -> None:
    # rsvg drops a text run's leading no-break space unless told to preserve whitespace.
    data = svg.read_text().replace("<svg ", '<svg xml:space="preserve" ', 1)
    subprocess.run(["rsvg-convert", "-o", str(svg.with_suffix(".png"))], input=data.encode(), check=True)


def main() -> None:
    rasterize = shutil.which("rsvg-convert") is not None
    for screen in KEYS:
        svg = asyncio.run(render(screen))
        if rasterize:
            to_png(svg)
        print(svg.name, "+ png" if rasterize else "(no rsvg-convert: SVG only)")


if __name__ == "__main__":
    main()
