"""Jobs through the real daemon: worker subprocesses, progress over server-sent events, cancel, and resume
after the daemon is killed with -9."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from appliance.testing.flow import job_events
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"


def _write_dataset(daemon: DaemonProcess, name: str = "math.jsonl") -> str:
    rows = [json.dumps({"instruction": f"What is {i} plus {i}?", "output": f"{i} plus {i} is {2 * i}."})
            for i in range(30)]
    rows.insert(4, '{"instruction": "broken" "output": "x"}')
    path = daemon.state_dir / "imports" / name
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def _import(daemon: DaemonProcess, path: str, name: str, **extra: object) -> dict:
    response = httpx.post(f"{daemon.url}/api/v1/datasets", headers=daemon.admin_headers(),
                          json={"path": path, "name": name, **extra})
    assert response.status_code == 202, response.text
    return dict(response.json())


def _wait_job(daemon: DaemonProcess, job_id: str, states: tuple[str, ...], timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = daemon.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not in {states}: {job}\n{daemon.log()[-2000:]}")


@pytest.fixture
def daemon(tmp_path):
    proc = DaemonProcess(tmp_path / "state").start()
    yield proc
    proc.stop()


def test_dataset_import_job_streams_progress_and_reports_lines(daemon):
    job = _import(daemon, _write_dataset(daemon), "math", base_model=STARTER)
    events = job_events(daemon, job["id"], timeout=180)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "snapshot" and kinds[-1] == "state"
    assert [e["phase"] for e in events if e["event"] == "progress"][-1] == "done"
    assert "loading tokenizer" in [e["phase"] for e in events if e["event"] == "progress"]
    final = events[-1]
    assert final["state"] == "succeeded" and final["result"]["train"] + final["result"]["eval"] == 30
    dataset = daemon.get("/api/v1/datasets/math").json()
    assert dataset["records_invalid"] == 1
    assert dataset["report"]["errors"][0]["line"] == 5
    assert "invalid JSON" in dataset["report"]["errors"][0]["message"]
    assert dataset["report"]["token_counter"] == "chat template of the given tokenizer"


def test_failed_job_says_why(daemon):
    job = _import(daemon, "/etc/passwd", "nope")
    done = _wait_job(daemon, job["id"], ("failed",))
    assert "outside the allowed import roots" in done["error"]
    assert daemon.get("/api/v1/datasets/nope").status_code == 404


def test_cancel_queued_and_running_jobs(daemon):
    path = _write_dataset(daemon)
    running = _import(daemon, path, "first", base_model=STARTER)
    queued = _import(daemon, path, "second", base_model=STARTER)
    cancelled = httpx.post(f"{daemon.url}/api/v1/jobs/{queued['id']}/cancel", headers=daemon.admin_headers())
    assert cancelled.json()["state"] == "cancelled"
    _wait_job(daemon, running["id"], ("running",))
    httpx.post(f"{daemon.url}/api/v1/jobs/{running['id']}/cancel", headers=daemon.admin_headers())
    done = _wait_job(daemon, running["id"], ("cancelled", "succeeded"))
    assert done["state"] == "cancelled", done
    assert daemon.get("/api/v1/datasets/first").status_code == 404


def test_job_resumes_after_daemon_kill_9(tmp_path):
    state = tmp_path / "state"
    daemon = DaemonProcess(state).start()
    job = _import(daemon, _write_dataset(daemon), "math", base_model=STARTER)
    _wait_job(daemon, job["id"], ("running",))
    daemon.kill9()
    again = DaemonProcess(state, port=daemon.port).start()
    try:
        done = _wait_job(again, job["id"], ("succeeded", "failed"))
        assert done["state"] == "succeeded", done
        assert done["attempts"] == 2
        assert again.get("/api/v1/datasets/math").json()["version"] == 1
    finally:
        again.stop()


def test_unknown_job_is_404(daemon):
    assert daemon.get("/api/v1/jobs/nope").status_code == 404
    bad = httpx.post(f"{daemon.url}/api/v1/jobs", headers=daemon.admin_headers(), json={"type": "mine-bitcoin"})
    assert bad.status_code == 422


def test_cli_imports_a_dataset_and_lists_jobs(daemon):
    import os
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "appliance", "--state-dir", str(daemon.state_dir), *args],
                              capture_output=True, text=True, timeout=180,
                              env={**os.environ, "SLM_PORT": str(daemon.port)})

    result = cli("datasets", "import", _write_dataset(daemon, "cli.jsonl"), "--name", "cli-set")
    assert result.returncode == 0, result.stderr
    assert "cli-set v1: 27 train, 3 eval, 1 invalid" in result.stdout
    assert "line 5: invalid JSON" in result.stdout
    assert "done" in result.stderr  # the progress line
    jobs = json.loads(cli("jobs", "list", "--json").stdout)
    assert jobs[0]["type"] == "dataset-import" and jobs[0]["state"] == "succeeded"
    listed = cli("datasets", "list").stdout
    assert "cli-set" in listed
    failed = cli("datasets", "import", "/etc/hostname", "--name", "bad")
    assert failed.returncode == 1 and "outside the allowed import roots" in failed.stderr


def test_daemon_log_route_serves_recent_json_lines_to_admins_only(daemon):
    response = daemon.get("/api/v1/logs/daemon", params={"lines": 50})
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert 0 < len(lines) <= 50 and all({"ts", "level", "msg"} <= set(line) for line in lines)
    assert httpx.get(f"{daemon.url}/api/v1/logs/daemon").status_code == 401
