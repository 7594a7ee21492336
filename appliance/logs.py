"""Structured log lines (one JSON object per line) on stdout, which journald captures as they are."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque
from contextvars import ContextVar
from typing import Any

# The X-Request-Id of the HTTP request being handled (set by the RequestGuard), on every line logged for it.
REQUEST_ID: ContextVar[str | None] = ContextVar("REQUEST_ID", default=None)

# Attributes every LogRecord has; anything else passed through `extra=` becomes a field of the line.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRET_HINTS = ("token", "secret", "password", "api_key", "authorization")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; fields whose names look secret are masked."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key in _RESERVED or key.startswith("_"):
                continue
            line[key] = "***" if any(h in key.lower() for h in _SECRET_HINTS) else value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class RecentLines(logging.Handler):
    """The last lines the daemon logged, for `GET /api/v1/logs/daemon` (operators without journal access,
    the TUI). Same formatting (and secret masking) as stdout."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def tail(self, count: int) -> list[str]:
        return list(self.lines)[-count:] if count > 0 else []


RECENT = RecentLines()


def setup_logging(level: str = "info") -> None:
    """Route the root logger (and uvicorn's) to stdout as JSON lines, keeping the recent ones in memory."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    RECENT.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler, RECENT]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Access lines would log every request path with its query; the gateway keeps its own metrics.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # One line per backend health poll would drown the journal.
    logging.getLogger("httpx").setLevel(logging.WARNING)
