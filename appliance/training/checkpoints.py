"""A job's checkpoints on disk: the trainer writes each one into a staging folder; once it is whole, the folder
is fsynced and renamed into `checkpoints/step-N` (a rename is atomic: a crash leaves the previous checkpoint or
the new one, never a torn one), and only then are the older ones removed. A rerun of the job resumes from the
newest committed one; whatever a crash left in the staging folder is discarded.

    <job>/trainer/checkpoint-N   written by the trainer (staging)
    <job>/checkpoints/step-N     committed
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from appliance.state.durable import durable_rename, fsync_dir, fsync_tree

STAGING, COMMITTED = "trainer", "checkpoints"
_STEP = re.compile(r"^step-(\d+)$")


def staging_dir(job_dir: Path) -> Path:
    return job_dir / STAGING


def _committed(job_dir: Path) -> list[tuple[int, Path]]:
    folder = job_dir / COMMITTED
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest(job_dir: Path) -> Path | None:
    """The newest committed checkpoint, or None."""
    found = _committed(job_dir)
    return found[-1][1] if found else None


def step_of(checkpoint: Path) -> int:
    match = _STEP.match(checkpoint.name)
    if match is None:
        raise ValueError(f"{checkpoint} is not a committed checkpoint")
    return int(match.group(1))


def discard_staging(job_dir: Path) -> None:
    """Forget what an interrupted save left half-written (run before the trainer starts)."""
    shutil.rmtree(staging_dir(job_dir), ignore_errors=True)


def commit(job_dir: Path, step: int) -> Path:
    """Make the trainer's checkpoint of `step` durable and the one a rerun resumes from; drop the older ones.

    Raises:
        FileNotFoundError: the trainer wrote no checkpoint for `step`.
    """
    source = staging_dir(job_dir) / f"checkpoint-{step}"
    if not source.is_dir():
        raise FileNotFoundError(f"the trainer saved no checkpoint at {source}")
    target_dir = job_dir / COMMITTED
    target_dir.mkdir(exist_ok=True)
    target = target_dir / f"step-{step}"
    if target.exists():  # this step is committed already (saved twice at one step): keep that one
        shutil.rmtree(source, ignore_errors=True)
        return target
    fsync_tree(source)
    durable_rename(source, target)
    for older_step, older in _committed(job_dir):
        if older_step < step:
            shutil.rmtree(older, ignore_errors=True)
    fsync_dir(target_dir)
    return target
