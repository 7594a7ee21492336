"""What a worker tells the daemon: one JSON object per line on stdout.

{"event": "progress", ...Progress fields}   {"event": "log", "message": ...}   {"event": "result", ...}
Anything else a worker prints goes to stderr, which is the job's log file.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from typing import Any, TextIO

from appliance.errors import ApplianceError


class JobCancelled(ApplianceError):
    """Raised inside a handler once the daemon asked the job to stop (SIGTERM)."""

    status, code = 409, "job_cancelled"

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)


class JobFailed(ApplianceError):
    """A handler's failure with a message for the operator (no traceback needed)."""

    status, code = 500, "job_failed"


class Emitter:
    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out
        self._cancel = False
        self._last_progress = 0.0

    def install_signal_handler(self) -> None:
        # SIGTERM means "checkpoint and stop": handlers call check_cancelled() at safe points.
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "_cancel", True))

    def _send(self, event: str, fields: dict[str, Any]) -> None:
        self._out.write(json.dumps({"event": event, **fields}) + "\n")
        self._out.flush()

    def progress(self, *, force: bool = False, **fields: Any) -> None:
        now = time.monotonic()
        if force or now - self._last_progress >= 0.2:  # at most 5 lines a second
            self._last_progress = now
            self._send("progress", fields)

    def log(self, message: str) -> None:
        self._send("log", {"message": message})

    def result(self, **fields: Any) -> None:
        self._send("result", fields)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel

    def check_cancelled(self) -> None:
        if self._cancel:
            raise JobCancelled()
