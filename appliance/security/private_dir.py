"""The folder of the backends' Unix sockets: whoever can write there can put their own socket in the gateway's
path, so it must be ours and writable by nobody else."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from appliance.errors import ApplianceError


class UnsafeDirectory(ApplianceError):
    status, code = 500, "unsafe_directory"


def runtime_dir_for(state_dir: Path, env: Mapping[str, str]) -> Path:
    """systemd's RuntimeDirectory (made for us), else a folder under $XDG_RUNTIME_DIR, else a short per-state-dir
    temp path (Unix socket paths are limited to 108 bytes, so it never lives under the state dir)."""
    systemd_dir = env.get("RUNTIME_DIRECTORY")
    if systemd_dir:
        return Path(systemd_dir.split(":")[0])
    digest = hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()[:10]
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / f"slm-appliance-{digest}"
    return Path(tempfile.gettempdir()) / f"slm-appliance-{os.getuid()}-{digest}"


def ensure_private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) if missing, then check what is there.

    Raises:
        UnsafeDirectory: a symlink or not a folder, owned by another user, or writable by group or others
            (anyone could then place a socket there), with what to do about it.
    """
    try:
        path.mkdir(mode=0o700, parents=False)
    except FileExistsError:
        pass
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeDirectory(f"runtime directory {path}: a symlink or not a folder; remove it")
    if info.st_uid != os.geteuid():
        raise UnsafeDirectory(f"runtime directory {path}: owned by uid {info.st_uid}, not by this user "
                              f"(uid {os.geteuid()}); remove it or set RUNTIME_DIRECTORY")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDirectory(f"runtime directory {path}: writable by group or others "
                              f"(mode {stat.S_IMODE(info.st_mode):o}); chmod 700 it or remove it")
    return path
