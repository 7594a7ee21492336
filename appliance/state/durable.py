"""Files that survive a power cut: fsync the data, rename into place, fsync the folder that holds the name.

A rename alone is atomic but not durable: without the folder's fsync the new name can vanish after a crash,
and without the file's fsync the name can point at a file of zeros.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the entries of folder `path` (names created, renamed or removed) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under `root` (a staging folder about to be renamed into place)."""
    if root.is_file():
        fsync_file(root)
        return
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_rename(src: Path, dst: Path) -> None:
    """`os.replace(src, dst)`, then fsync the folder(s) whose entries changed. `src`'s content must already be
    durable (see `fsync_tree`)."""
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if src.parent.resolve() != dst.parent.resolve():
        fsync_dir(src.parent)


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `path` whole or not at all: a new temp file beside it (O_EXCL, never through a symlink), fsync,
    rename over, fsync the folder. A crash leaves the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        durable_rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
