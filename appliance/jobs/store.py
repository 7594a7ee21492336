"""Jobs in the state store. Every state change is one transaction, so a crash never loses a job."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from appliance.errors import ApplianceError
from appliance.jobs.models import Job, JobState, Progress
from appliance.state.store import StateStore


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

    def requeue_interrupted(self) -> list[str]:
        """At daemon start: jobs left 'running' by a crash or reboot go back to the queue to resume."""
        with self.store.transaction() as conn:
            rows = conn.execute("SELECT id FROM jobs WHERE state IN ('running', 'interrupted')").fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE jobs SET state = 'queued', pid = NULL, progress = json_set(progress, '$.phase', "
                    "'interrupted', '$.message', 'interrupted; resuming from the last checkpoint'), "
                    "updated_at = ? WHERE id = ?",
                    (time.time(), row["id"]),
                )
        return [str(r["id"]) for r in rows]
