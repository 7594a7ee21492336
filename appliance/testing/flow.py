"""The appliance's whole update flow as API calls (dataset → fine-tune → export → live), shared by the
end-to-end test and bench/e2e.py so both exercise exactly the same path."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from appliance.testing.daemon import DaemonProcess

FINAL = ("succeeded", "failed", "cancelled")


def is_final(job: dict[str, Any]) -> bool:
    return job["state"] in FINAL


def poll_job(daemon: DaemonProcess, job_id: str, until: Callable[[dict[str, Any]], bool] = is_final,
             timeout: float = 900) -> dict[str, Any]:
    """The job as soon as `until` holds for it (default: it ended, however); the daemon's log tail on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        job = dict(daemon.get(f"/api/v1/jobs/{job_id}").json())
        if until(job):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id}: {job}\n{daemon.log()[-3000:]}")
        time.sleep(0.3)


def job_events(daemon: DaemonProcess, job_id: str, timeout: float = 900) -> list[dict[str, Any]]:
    """Every server-sent event of a job until it ends (the stream does not replay: subscribe while it runs)."""
    events = []
    with httpx.stream("GET", f"{daemon.url}/api/v1/jobs/{job_id}/events", headers=daemon.admin_headers(),
                      timeout=timeout) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def wait_job(daemon: DaemonProcess, job_id: str, timeout: float = 900) -> dict[str, Any]:
    job = poll_job(daemon, job_id, timeout=timeout)
    assert job["state"] == "succeeded", f"job {job_id} {job['state']}: {job.get('error')}"
    return job


def submit(daemon: DaemonProcess, path: str, body: dict[str, Any]) -> str:
    response = httpx.post(daemon.url + path, json=body, headers=daemon.admin_headers(), timeout=60)
    assert response.status_code in (201, 202), response.text
    return str(response.json()["id"])


def import_dataset(daemon: DaemonProcess, path: str, name: str, base_model: str) -> dict[str, Any]:
    return wait_job(daemon, submit(daemon, "/api/v1/datasets", {"path": path, "name": name,
                                                                 "base_model": base_model}), 300)


def finetune(daemon: DaemonProcess, params: dict[str, Any]) -> dict[str, Any]:
    return wait_job(daemon, submit(daemon, "/api/v1/jobs", {"type": "finetune", "params": params}), 1500)


def export(daemon: DaemonProcess, params: dict[str, Any]) -> dict[str, Any]:
    return wait_job(daemon, submit(daemon, "/api/v1/jobs", {"type": "export", "params": params}), 1200)


def deploy_call(daemon: DaemonProcess, method: str, path: str, body: dict[str, Any] | None = None,
                expect: int = 200) -> dict[str, Any]:
    response = httpx.request(method, daemon.url + path, json=body, headers=daemon.admin_headers(), timeout=900)
    assert response.status_code == expect, response.text
    return dict(response.json())
