"""Numbers and times as operators read them. Pure functions: the clock is passed in, never read here."""

from __future__ import annotations

from typing import Any


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


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def ago(timestamp: float | None, now: float) -> str:
    if not timestamp:
        return "never"
    return f"{duration(now - timestamp)} ago"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def number(value: Any, fmt: str = "{}") -> str:
    return "—" if value is None else fmt.format(value)


def progress_line(progress: dict[str, Any]) -> str:
    """One line: phase, step/total, loss, tokens/s, ETA, message — whatever the worker reported."""
    parts: list[str] = []
    if progress.get("phase"):
        parts.append(str(progress["phase"]))
    step, total = progress.get("step"), progress.get("total")
    if step is not None and total:
        parts.append(f"{step}/{total}")
    if progress.get("epoch") is not None:
        parts.append(f"epoch {progress['epoch']:.2f}")
    if progress.get("loss") is not None:
        parts.append(f"loss {progress['loss']:.4f}")
    if progress.get("learning_rate") is not None:
        parts.append(f"lr {progress['learning_rate']:.2e}")
    if progress.get("tokens_per_s"):
        parts.append(f"{progress['tokens_per_s']:.0f} tok/s")
    if progress.get("eta_s") is not None:
        parts.append(f"ETA {duration(progress['eta_s'])}")
    if progress.get("message"):
        parts.append(str(progress["message"]))
    return " · ".join(parts)


def fraction(progress: dict[str, Any]) -> float | None:
    step, total = progress.get("step"), progress.get("total")
    if step is None or not total:
        return None
    return max(0.0, min(1.0, float(step) / float(total)))
