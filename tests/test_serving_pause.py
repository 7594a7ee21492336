"""Profiles that cannot serve and train at once (serving_during_training = false): the runner stops serving
before a training job's worker starts and brings it back when the worker ends, whatever the outcome."""

from __future__ import annotations

import asyncio
from pathlib import Path

from appliance.jobs.runner import JobRunner, ServingPause
from appliance.jobs.store import JobStore
from appliance.state.store import StateStore


async def _scenario(state_dir: Path) -> tuple[list[tuple[str, object]], list[str]]:
    calls: list[tuple[str, object]] = []

    async def pause(reason: str) -> list[str]:
        calls.append(("pause", reason))
        return ["blue"]

    async def resume(names: list[str]) -> None:
        calls.append(("resume", names))

    runner = JobRunner(JobStore(StateStore(state_dir / "state.db").open()), state_dir, [], 512,
                       serving_pause=ServingPause(pause, resume))
    runner.start()
    # A real worker subprocess that fails fast (invalid resolved settings), and a non-training job.
    training = runner.submit("finetune", {"base_model": "m", "dataset": "d", "resolved": {"training": {}}})
    other = runner.submit("dataset-import", {"path": "/nonexistent.jsonl", "name": "x"})
    states = []
    for job_id in (training.id, other.id):
        for _ in range(600):
            job = runner.jobs.get(job_id)
            if job.state in ("succeeded", "failed", "cancelled"):
                states.append(job.state)
                break
            await asyncio.sleep(0.1)
    await runner.shutdown()
    return calls, states


def test_training_job_pauses_and_resumes_serving(tmp_path: Path) -> None:
    calls, states = asyncio.run(_scenario(tmp_path))
    assert states == ["failed", "failed"]
    assert [c[0] for c in calls] == ["pause", "resume"]  # once: the dataset import left serving alone
    assert "training job" in str(calls[0][1]) and calls[1][1] == ["blue"]
