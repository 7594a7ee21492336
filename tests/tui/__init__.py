"""TUI tests. The recorded API responses they replay (tui.replay) are in fixtures/api.json; fixtures/trials.json
lays a deployment's trials (shadow, canary, live watch) over them."""

from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "api.json"
TRIALS = Path(__file__).parent / "fixtures" / "trials.json"
