"""Where a job's training runs: in the worker's own process (one process: a CPU, one GPU), or as one rank per
process that the worker launches and supervises (data parallel: several GPUs, or a CPU job that asks for it).
Either way the caller gets a `TrainResult`; a stop is an InterruptedError after a committed checkpoint."""

from __future__ import annotations

import json
from collections.abc import Callable

from appliance.state.durable import write_atomic
from appliance.training import checkpoints
from appliance.training.core import ProgressFn, TrainResult, train
from appliance.training.launch import launch
from appliance.training.request import TrainRequest


class TrainingFailed(Exception):
    """A rank of a data-parallel run failed; the job log has its traceback."""


def run_training(request: TrainRequest, progress: ProgressFn, should_stop: Callable[[], bool]) -> TrainResult:
    """Train as `request` says, resuming from the job's newest committed checkpoint.

    Raises:
        InterruptedError: stopped (`should_stop()`); the last finished step's checkpoint was committed.
        TrainingFailed: a rank of a data-parallel run failed.
        ValueError, MethodUnavailable: as `core.train` (in the worker's process).
    """
    if request.settings.processes == 1:
        return train(request, progress, should_stop)
    request_file = request.job / "train-request.json"
    write_atomic(request_file, request.model_dump_json().encode())
    request.stop_file.unlink(missing_ok=True)
    request.result_file.unlink(missing_ok=True)
    codes = launch(request_file, request, should_stop)
    if any(code not in (0, 3) for code in codes):
        raise TrainingFailed(f"data-parallel training failed: rank exit codes {codes} (the job log says why)")
    if 3 in codes or not request.result_file.is_file():
        saved = checkpoints.latest(request.job)
        step = checkpoints.step_of(saved) if saved is not None else 0
        raise InterruptedError(f"stopped at step {step}")
    return TrainResult.from_json(json.loads(request.result_file.read_text()))
