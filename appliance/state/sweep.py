"""The startup sweep: what a crash left half-written in the state directory, removed before anything runs.

Only what is provably ours and unreferenced goes, each removal logged:
- `models/.tmp-*`, `datasets/.tmp-*`, `datasets/.trash-*`: staging folders of an import that never finished;
- `models/<12 hex>` without a row in `models`, `datasets/<64 hex>` without a row in `datasets`: renamed into
  place by an import whose transaction never committed (the names only our imports make);
- `*.tmp` anywhere under `jobs/`: the temp names of our writers (checkpoint, GGUF, merge, conversion);
- `jobs/<id>/export` of an export job that succeeded: its work, already copied into the registry;
- `*.sock` in the private runtime directory: sockets of backends that died with the previous daemon.
It runs only while this process holds the state directory's lock, so no other daemon (or its workers) can be
in the middle of a write it would remove.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from pathlib import Path

from appliance.state.store import StateStore

log = logging.getLogger(__name__)
MODEL_ID = re.compile(r"^[0-9a-f]{12}$")
DATASET_ID = re.compile(r"^[0-9a-f]{64}$")
LOCK_FILE = "daemon.lock"


class StateDirBusy(RuntimeError):
    """Another process (a second daemon) holds the state directory's lock."""


def lock_state_dir(state_dir: Path) -> int | None:
    """An exclusive lock on the state directory (held until the fd is closed or the process dies, kill -9
    included); None when another process holds it."""
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _remove(path: Path, why: str, removed: list[Path]) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError as exc:
        log.warning("sweep: not removed", extra={"path": str(path), "reason": why, "error": str(exc)})
        return
    log.info("sweep: removed", extra={"path": str(path), "reason": why})
    removed.append(path)


def _entries(folder: Path) -> list[Path]:
    with contextlib.suppress(FileNotFoundError):
        return sorted(folder.iterdir())
    return []


def _sweep_store_dir(folder: Path, id_pattern: re.Pattern[str], known: set[str], removed: list[Path]) -> None:
    for entry in _entries(folder):
        if entry.name.startswith((".tmp-", ".trash-")):
            _remove(entry, "staging left by an interrupted import", removed)
        elif id_pattern.match(entry.name) and entry.is_dir() and entry.name not in known:
            _remove(entry, "not in the store (its import never committed)", removed)


def _sweep_jobs(jobs_dir: Path, store: StateStore, removed: list[Path]) -> None:
    done_exports = {str(r["id"]) for r in store.query("SELECT id FROM jobs WHERE type = 'export' "
                                                       "AND state = 'succeeded'")}
    for job_dir in _entries(jobs_dir):
        if job_dir.name in done_exports and (job_dir / "export").is_dir():
            _remove(job_dir / "export", "work of an export already registered", removed)
        for folder, dirs, files in os.walk(job_dir):
            for name in [*dirs, *files]:
                if name.endswith(".tmp"):
                    _remove(Path(folder) / name, "temp file of an interrupted write", removed)
            dirs[:] = [d for d in dirs if not d.endswith(".tmp")]


def sweep(store: StateStore, state_dir: Path, runtime_dir: Path | None = None) -> list[Path]:
    """Remove what crashes left behind (see the module docstring); returns what was removed. Call it at start,
    holding `lock_state_dir`, before any import, job or backend runs."""
    removed: list[Path] = []
    models = {str(r["id"]) for r in store.query("SELECT id FROM models")}
    datasets = {str(r["id"]) for r in store.query("SELECT DISTINCT id FROM datasets")}
    _sweep_store_dir(state_dir / "models", MODEL_ID, models, removed)
    _sweep_store_dir(state_dir / "datasets", DATASET_ID, datasets, removed)
    _sweep_jobs(state_dir / "jobs", store, removed)
    if runtime_dir is not None:
        for entry in _entries(runtime_dir):
            if entry.name.endswith(".sock") and entry.is_socket():
                _remove(entry, "socket of a backend of a previous run", removed)
    if removed:
        log.info("sweep done", extra={"removed": len(removed)})
    return removed
