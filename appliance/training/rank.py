"""`python -m appliance.training.rank REQUEST.json`: one rank of a data-parallel run (`training.launch` starts
them with the environment torchrun would give: RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

Rank 0 reports progress as the job worker does (one JSON object per line on stdout, which is the worker's, so
the job runner reads it as it reads the worker's); the other ranks report nothing. A rank stops, at the step all
agree on, once the worker creates the request's stop file or the rank gets SIGTERM.

Exit codes: 0 trained, 3 stopped (a checkpoint was committed), 1 failed (the last stderr lines say why).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 3


class _Progress:
    """The worker's progress lines ({"event": "progress", ...}), at most 5 a second unless forced; the last
    step always goes out (a run that ends within 0.2 s of its previous line would otherwise end short of it)."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, *, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        last_step = fields.get("step") is not None and fields.get("step") == fields.get("total")
        if force or last_step or now - self.last >= 0.2:
            self.last = now
            sys.stdout.write(json.dumps({"event": "progress", **fields}) + "\n")
            sys.stdout.flush()


def main(argv: list[str]) -> int:
    stopping = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stopping.update(now=True))
    from appliance.training.build import MethodUnavailable
    from appliance.training.core import train
    from appliance.training.request import TrainRequest

    request = TrainRequest.model_validate_json(Path(argv[1]).read_text())
    rank0 = os.environ.get("RANK", "0") == "0"
    progress: Any = _Progress() if rank0 else (lambda **_: None)
    try:
        train(request, progress, lambda: stopping["now"] or request.stop_file.exists())
    except InterruptedError as exc:
        print(f"rank {os.environ.get('RANK')}: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except (ValueError, MethodUnavailable) as exc:
        print(f"rank {os.environ.get('RANK')} failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
