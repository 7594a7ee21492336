"""Helpers of the fault tests: what "nothing corrupt or half-visible" means for a state directory, a tmpfs for
ENOSPC, and the backend processes of a daemon."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def _size(path: Path) -> int:
    # The registry counts what it copied: a file, or the files at the top of a folder.
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def assert_consistent(state: Path) -> None:
    """quick_check ok; every model and dataset row has its files (whole), every folder has its row; no staging
    folder and no temp file anywhere."""
    with sqlite3.connect(state / "state.db") as conn:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
        models = conn.execute("SELECT id, name, path, size_bytes FROM models").fetchall()
        datasets = {str(r[0]) for r in conn.execute("SELECT id FROM datasets")}
    for model_id, name, path, size in models:
        assert Path(path).exists() and _size(Path(path)) == size, f"model {name} is not whole at {path}"
        assert Path(path).is_relative_to(state / "models" / model_id)
    on_disk = {p.name for p in (state / "models").iterdir()}
    assert on_disk == {str(m[0]) for m in models}, f"models folder {sorted(on_disk)} vs rows {models}"
    if (state / "datasets").exists():
        assert {p.name for p in (state / "datasets").iterdir()} == datasets
    leftovers = [str(p) for p in (state / "jobs").rglob("*.tmp")] if (state / "jobs").exists() else []
    assert not leftovers, leftovers


def children(pid: int, name: str) -> list[int]:
    """The pids of `pid`'s live children whose command line mentions `name` (llama-server, the job worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and name in cmdline:
            found.append(int(entry.name))
    return found


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if Path(f"/proc/{p}").exists()
                 and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"still alive: {pids}")


@contextmanager
def tmpfs(path: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` at `path` (root only; the test is skipped, saying why, where it cannot mount)."""
    if os.geteuid() != 0:
        pytest.skip("ENOSPC tests mount a small tmpfs: they need root")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0750", "tmpfs", str(path)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; returns the filler file (delete it to free space)."""
    filler = folder / "filler.bin"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):  # big blocks, then the last partial ones
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler
