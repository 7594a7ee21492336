"""The logs children write (backends, job workers): their tails as the API shows them, and size-based rotation
(`name.log` → `name.log.1` → `.2`).

Children write straight to the file (no pipe through the daemon), so rotation is copy-then-truncate, as
logrotate's `copytruncate`: the child's O_APPEND descriptor keeps writing at the new end. Lines written between
the copy and the truncate are lost; that is the price of not relaying every log line through the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)
MAX_BYTES = 10 * 1024 * 1024
KEEP = 2


TAIL_BYTES = 256 * 1024


def tail(path: Path, lines: int, max_bytes: int = TAIL_BYTES) -> str:
    """The last `lines` lines of a log, reading at most its last `max_bytes` (a log can be gigabytes); "" when
    there is no log yet."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def read_from(path: Path, offset: int) -> str:
    """What a log gained after `offset` (a candidate's own lines in a shared log), at most TAIL_BYTES of it."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, fh.tell() - TAIL_BYTES))
            return fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def rotated(path: Path, index: int) -> Path:
    return path.with_name(f"{path.name}.{index}")


def rotate_if_large(path: Path, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> bool:
    """Rotate `path` when it is larger than `max_bytes`, keeping `keep` old files. Never raises: a log that
    cannot be rotated (disk full) is left as it is and logged."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
        for index in range(keep, 1, -1):
            if rotated(path, index - 1).exists():
                os.replace(rotated(path, index - 1), rotated(path, index))
        shutil.copyfile(path, rotated(path, 1))
        with path.open("r+b") as fh:
            fh.truncate(0)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("log not rotated", extra={"log": str(path), "error": str(exc)})
        with contextlib.suppress(OSError):
            rotated(path, 1).unlink()  # a half-copied file must not pass for the old log
        return False
    log.info("log rotated", extra={"log": str(path), "kept": keep})
    return True
