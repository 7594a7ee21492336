"""A job's progress as operators read it, for the CLI and the TUI alike. Pure functions over the `progress`
dict the daemon reports (phase, step, total, epoch, loss, learning_rate, tokens_per_s, eta_s, message)."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def fraction(progress: Json) -> float | None:
    """Share done in [0, 1], or None when the worker reports a phase but no steps."""
    step, total = progress.get("step"), progress.get("total")
    if step is None or not total:
        return None
    return max(0.0, min(1.0, float(step) / float(total)))


def bar(share: float, width: int, full: str = "█", empty: str = "░") -> str:
    """`width` characters, the first `share` of them full."""
    filled = int(width * share)
    return full * filled + empty * (width - filled)


def progress_line(progress: Json) -> str:
    """One line: phase, step/total, epoch, loss, lr, tokens/s, ETA, message — whatever the worker reported."""
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
