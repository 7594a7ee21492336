"""Numbers and times as operators read them. Pure functions: the clock is passed in, never read here."""

from __future__ import annotations

from typing import Any

# Progress is shown by the CLI too: one formatting for both.
from appliance.client.progress import duration, fraction, progress_line

__all__ = ["ago", "duration", "fraction", "literal", "mib", "number", "params", "percent", "progress_line", "size"]


def size(num_bytes: float | None) -> str:
    if num_bytes is None:
        return "—"
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def mib(value: float | None) -> str:
    return "—" if value is None else size(value * 2**20)


def params(count: float | None) -> str:
    if not count:
        return "?"
    for factor, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if count >= factor:
            return f"{count / factor:.{0 if count >= 100 * factor else 1}f}{suffix}"
    return str(int(count))


def ago(timestamp: float | None, now: float) -> str:
    if not timestamp:
        return "never"
    return f"{duration(now - timestamp)} ago"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def number(value: Any, fmt: str = "{}") -> str:
    return "—" if value is None else fmt.format(value)


def literal(text: str) -> str:
    """`text` as markup that shows it as it is. Textual's markup takes any `[WORD]` for a tag (a masked `[EMAIL]`
    would vanish), while `escape` (Rich's and Textual's) only escapes tags that start lower case."""
    return text.replace("[", "\\[")
