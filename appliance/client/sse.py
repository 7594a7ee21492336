"""Server-sent events as the daemon sends them: `data: {json}` lines, `: keep-alive` comments, `[DONE]` last."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any, Final

Json = dict[str, Any]


class _End:
    """The `data: [DONE]` marker that ends an OpenAI-style stream."""


END: Final = _End()


def parse_data_line(line: str) -> Json | _End | None:
    """One line of the stream: its JSON payload, END, or None for anything else (comments, blank separators,
    `event:` lines, a payload that is not a JSON object)."""
    if not line.startswith("data:"):
        return None
    payload = line[5:].strip()
    if payload == "[DONE]":
        return END
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def data_events(lines: Iterable[str]) -> Iterator[Json]:
    """The JSON payloads of a stream's lines, up to `[DONE]`."""
    for line in lines:
        data = parse_data_line(line)
        if isinstance(data, _End):
            return
        if data is not None:
            yield data
