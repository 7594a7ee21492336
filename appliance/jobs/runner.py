"""Runs queued jobs one at a time, each in a worker subprocess; relays its progress to the store and to
live subscribers (the SSE endpoint); puts jobs a crash interrupted back in the queue at start (up to a cap).
A store write that fails (disk full, database locked) is retried and logged; it never stops the queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from appliance.children import child_env, child_setup
from appliance.jobs.kinds import KINDS
from appliance.jobs.models import Job, JobState, Progress
from appliance.jobs.store import JobStore
from appliance.logfiles import rotate_if_large
from appliance.state.retry import WriteFailed, write_retrying

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingPause:
    """How to stop serving around a training job, for profiles with serving_during_training = false."""

    pause: Callable[[str], Awaitable[list[str]]]
    resume: Callable[[list[str]], Awaitable[None]]


EXIT_STATES: dict[int, JobState] = {0: "succeeded", 3: "cancelled"}
STOP_GRACE_S = 30.0
# After a job whose end could not be written, the queue waits before the next one (doubling, up to the max).
STORE_BACKOFF_S, STORE_BACKOFF_MAX_S = 5.0, 60.0
LOG_CHECK_EVERY_S = 30.0


class JobRunner:
    def __init__(self, jobs: JobStore, state_dir: Path, import_roots: list[Path], profile_max_seq_length: int,
                 niceness: int = 15, serving_pause: ServingPause | None = None, daemon_url: str = "") -> None:
        self.jobs = jobs
        self.state_dir = state_dir
        self.import_roots = import_roots
        self.profile_max_seq_length = profile_max_seq_length
        self.niceness = niceness
        self.serving_pause = serving_pause
        self.daemon_url = daemon_url  # the API and /v1 gateway on loopback, for workers that call a deployment
        self._wake = asyncio.Event()
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._current: tuple[str, asyncio.subprocess.Process] | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    def log_path(self, job_id: str) -> Path:
        return self.state_dir / "logs" / f"job-{job_id}.log"

    # -- public ---------------------------------------------------------------------------------------
    def start(self) -> None:
        resumed, given_up = self.jobs.requeue_interrupted()
        if resumed:
            log.info("resuming interrupted jobs", extra={"jobs": resumed})
        if given_up:
            log.error("interrupted jobs not resumed again (crash cap reached)", extra={"jobs": given_up})
        self._task = asyncio.create_task(self._loop(), name="job-runner")

    def submit(self, job_type: str, params: dict[str, Any]) -> Job:
        job = self.jobs.submit(job_type, params)
        self._wake.set()
        return job

    async def cancel(self, job_id: str) -> Job:
        job = self.jobs.request_cancel(job_id)
        if self._current and self._current[0] == job_id:
            with contextlib.suppress(ProcessLookupError):
                self._current[1].send_signal(signal.SIGTERM)  # the worker checkpoints and exits 3
        else:
            self._publish(job_id, {"event": "state", "state": job.state})
        return job

    def subscribe(self, job_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._subscribers.setdefault(job_id, set()).add(queue)
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.get(job_id, set()).discard(queue)

    async def shutdown(self) -> None:
        """Stop the running job so it can resume on the next start (state 'interrupted')."""
        self._stopping = True
        self._wake.set()
        if self._current is not None:
            _, proc = self._current
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # -- internals ------------------------------------------------------------------------------------
    def _publish(self, job_id: str, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers.get(job_id, ())):
            with contextlib.suppress(asyncio.QueueFull):  # a stalled subscriber misses events, never blocks us
                queue.put_nowait(event)

    async def _loop(self) -> None:
        backoff = STORE_BACKOFF_S
        while not self._stopping:
            try:
                job = await write_retrying("next queued job", self.jobs.next_queued)
            except WriteFailed:
                await self._pause(backoff)
                backoff = min(backoff * 2, STORE_BACKOFF_MAX_S)
                continue
            if job is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                try:
                    await self._run(job)
                except WriteFailed:
                    raise
                except Exception as exc:  # a broken job must not stop the queue
                    log.exception("job runner error", extra={"job": job.id})
                    await write_retrying(f"job {job.id} failed", partial(
                        self.jobs.finish, job.id, "failed", error=f"runner error: {exc}"))
                backoff = STORE_BACKOFF_S
            except WriteFailed:
                # Its end is not in the store: a 'running' row resumes at the next start, a 'queued' one runs
                # again, after a pause that doubles while the store keeps failing (never a hot loop).
                await self._pause(backoff)
                backoff = min(backoff * 2, STORE_BACKOFF_MAX_S)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wait_stopping(), seconds)

    async def _wait_stopping(self) -> None:
        while not self._stopping:
            await asyncio.sleep(0.1)

    async def _spawn(self, job: Job) -> asyncio.subprocess.Process:
        job_dir = self.jobs_dir / job.id
        job_dir.mkdir(parents=True, exist_ok=True)
        spec = {"id": job.id, "type": job.type, "params": job.params, "state_dir": str(self.state_dir),
                "job_dir": str(job_dir), "import_roots": [str(r) for r in self.import_roots],
                "profile_max_seq_length": self.profile_max_seq_length, "attempt": job.attempts + 1,
                "daemon_url": self.daemon_url}
        (job_dir / "spec.json").write_text(json.dumps(spec))
        self.log_path(job.id).parent.mkdir(parents=True, exist_ok=True)
        rotate_if_large(self.log_path(job.id))
        env = child_env()
        with self.log_path(job.id).open("ab") as log_file:
            return await asyncio.create_subprocess_exec(
                sys.executable, "-m", "appliance.jobs.worker", str(job_dir / "spec.json"),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=log_file, env=env,
                start_new_session=True, preexec_fn=child_setup(self.niceness),
            )

    async def _run(self, job: Job) -> None:
        paused: list[str] = []
        kind = KINDS.find(job.type)  # a kind no longer registered fails in the worker, saying so
        if self.serving_pause is not None and kind is not None and kind.trains:
            paused = await self.serving_pause.pause(f"paused while training job {job.id} runs (profile)")
            log.info("serving paused for training", extra={"job": job.id, "deployments": paused})
        try:
            await self._run_worker(job)
        finally:
            if paused and self.serving_pause is not None:
                await self.serving_pause.resume(paused)

    async def _run_worker(self, job: Job) -> None:
        proc = await self._spawn(job)
        self._current = (job.id, proc)
        with contextlib.suppress(WriteFailed):  # the worker runs anyway; its end is written with retries
            await write_retrying(f"job {job.id} running", lambda: self.jobs.mark_running(job.id, proc.pid))
        self._publish(job.id, {"event": "state", "state": "running"})
        progress, result = job.progress, {}
        log_checked = time.monotonic()
        assert proc.stdout is not None
        async for raw in proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            kind = event.pop("event", "")
            if kind == "progress":
                progress = Progress(**{**progress.model_dump(), **event})
                # One attempt: the next event brings newer progress, and a retry pause would stall the pipe.
                with contextlib.suppress(WriteFailed):
                    await write_retrying(f"job {job.id} progress", partial(self.jobs.save_progress, job.id,
                                                                           progress), attempts=1)
                self._publish(job.id, {"event": "progress", **progress.model_dump()})
                if time.monotonic() - log_checked > LOG_CHECK_EVERY_S:
                    log_checked = time.monotonic()
                    rotate_if_large(self.log_path(job.id))
            elif kind == "result":
                result = event
            elif kind == "log":
                self._publish(job.id, {"event": "log", **event})
        code = await proc.wait()
        self._current = None
        await self._settle(job.id, code, progress, result)

    async def _settle(self, job_id: str, code: int, progress: Progress, result: dict[str, Any]) -> None:
        # A daemon shutdown stops the worker too: that job is interrupted (resumed at the next start).
        interrupted = self._stopping and not self.jobs.get(job_id).cancel_requested
        state: JobState = "interrupted" if interrupted else EXIT_STATES.get(code, "failed")
        error = ""
        if state == "failed":
            error = str(result.pop("error", "") or f"worker exited with code {code}; see {self.log_path(job_id)}")
        if interrupted:
            await write_retrying(f"job {job_id} interrupted", lambda: self.jobs.mark_interrupted(job_id))
        else:
            await write_retrying(f"job {job_id} {state}", lambda: self.jobs.finish(
                job_id, state, result=result, error=error, progress=progress))
        self._publish(job_id, {"event": "state", "state": state, "error": error, "result": result})
        log.info("job finished", extra={"job": job_id, "state": state, "detail": error})
