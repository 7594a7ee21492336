"""Jobs in the state store. Every state change is one transaction, so a crash never loses a job."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from appliance.errors import ApplianceError
from appliance.jobs.models import Job, JobState, Progress
from appliance.state.store import StateStore

# A job a daemon crash interrupted this many times is failed instead of resumed again.
MAX_INTERRUPTIONS = 3


class JobNotFound(ApplianceError):
    status, code = 404, "job_not_found"


class JobStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    @staticmethod
    def _from_row(row: Any) -> Job:
        data = dict(row)
        for key in ("params", "result"):
            data[key] = json.loads(data[key])
        data["progress"] = Progress(**json.loads(data["progress"]))
        data["cancel_requested"] = bool(data["cancel_requested"])
        return Job(**data)

    def submit(self, job_type: str, params: dict[str, Any]) -> Job:
        job_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "INSERT INTO jobs(id, type, state, params, progress, created_at, updated_at) "
                "VALUES(?, ?, 'queued', ?, ?, ?, ?)",
                (job_id, job_type, json.dumps(params), Progress(phase="queued").model_dump_json(), now, now),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        row = self.store.query_one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise JobNotFound(f"no job {job_id!r}")
        return self._from_row(row)

    def all(self, limit: int = 200) -> list[Job]:
        rows = self.store.query("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        return [self._from_row(r) for r in rows]

    def next_queued(self) -> Job | None:
        row = self.store.query_one("SELECT * FROM jobs WHERE state = 'queued' ORDER BY created_at LIMIT 1")
        return None if row is None else self._from_row(row)

    def mark_running(self, job_id: str, pid: int) -> None:
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute("UPDATE jobs SET state = 'running', pid = ?, attempts = attempts + 1, "
                         "started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ?", (pid, now, now, job_id))

    def save_progress(self, job_id: str, progress: Progress) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ?",
                         (progress.model_dump_json(), time.time(), job_id))

    def finish(self, job_id: str, state: JobState, *, result: dict[str, Any] | None = None, error: str = "",
               progress: Progress | None = None) -> None:
        now = time.time()
        with self.store.transaction() as conn:
            conn.execute(
                "UPDATE jobs SET state = ?, result = ?, error = ?, pid = NULL, finished_at = ?, updated_at = ?"
                + (", progress = ?" if progress is not None else "") + " WHERE id = ?",
                (state, json.dumps(result or {}), error, now, now,
                 *((progress.model_dump_json(),) if progress is not None else ()), job_id),
            )

    def request_cancel(self, job_id: str) -> Job:
        """Queued jobs are cancelled at once; running ones are asked to checkpoint and stop."""
        job = self.get(job_id)
        with self.store.transaction() as conn:
            if job.state == "queued":
                conn.execute("UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, "
                             "updated_at = ? WHERE id = ?", (time.time(), time.time(), job_id))
            else:
                conn.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                             (time.time(), job_id))
        return self.get(job_id)

    def mark_interrupted(self, job_id: str) -> None:
        with self.store.transaction() as conn:
            conn.execute("UPDATE jobs SET state = 'interrupted', pid = NULL, updated_at = ? WHERE id = ?",
                         (time.time(), job_id))

    def requeue_interrupted(self, max_interruptions: int = MAX_INTERRUPTIONS) -> tuple[list[str], list[str]]:
        """At daemon start: jobs a daemon stop left 'interrupted' go back to the queue to resume, and so do jobs a
        crash or reboot left 'running', until a crash has interrupted one `max_interruptions` times: that one is
        failed with the reason (a job that takes the daemon down with it must not loop forever).

        Returns:
            (the ids requeued, the ids given up on).
        """
        now = time.time()
        requeued: list[str] = []
        given_up: list[str] = []
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT id, state, interruptions, progress FROM jobs "
                                "WHERE state IN ('running', 'interrupted')").fetchall()
            for row in rows:
                crashes = int(row["interruptions"]) + (1 if row["state"] == "running" else 0)
                if crashes >= max_interruptions:
                    phase = json.loads(row["progress"]).get("phase") or "unknown"
                    conn.execute(
                        "UPDATE jobs SET state = 'failed', pid = NULL, interruptions = ?, error = ?, "
                        "finished_at = ?, updated_at = ? WHERE id = ?",
                        (crashes, f"interrupted {crashes} times by a daemon crash or reboot (last in phase "
                                  f"{phase!r}); not resumed again: see its log, then submit it again", now, now,
                         row["id"]),
                    )
                    given_up.append(str(row["id"]))
                    continue
                message = (f"interrupted ({crashes} of {max_interruptions} crashes allowed); resuming from the last "
                           "checkpoint" if crashes else "interrupted; resuming from the last checkpoint")
                conn.execute(
                    "UPDATE jobs SET state = 'queued', pid = NULL, interruptions = ?, progress = json_set(progress, "
                    "'$.phase', 'interrupted', '$.message', ?), updated_at = ? WHERE id = ?",
                    (crashes, message, now, row["id"]),
                )
                requeued.append(str(row["id"]))
        return requeued, given_up
