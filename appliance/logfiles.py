"""Size-based rotation of the logs children write (backends, job workers): `name.log` → `name.log.1` → `.2`.

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
