"""Supervision of backends and daemon restarts, with real processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import openai
import pytest

from appliance.testing.daemon import wait_deployment
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "Say hello."}]


def _ask(daemon) -> str:
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0, timeout=60)
    answer = client.chat.completions.create(model=STARTER, messages=QUESTION, max_tokens=8, temperature=0)
    return answer.choices[0].message.content or ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting to be reaped is dead for our purposes
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_backend_kill_9_is_restarted_and_answers_again(tmp_path):
    daemon = DaemonProcess(tmp_path / "state").start()
    try:
        first = wait_deployment(daemon, STARTER)
        before = _ask(daemon)
        os.kill(first["pid"], signal.SIGKILL)
        restarting = wait_deployment(daemon, STARTER, "restarting", timeout=30)
        assert "exited with code -9" in restarting["state_message"]
        again = wait_deployment(daemon, STARTER)
        assert again["restarts"] == 1 and again["pid"] != first["pid"]
        assert _ask(daemon) == before
        assert f'slm_backend_restarts_total{{deployment="{STARTER}"}} 1.0' in daemon.get("/metrics").text
    finally:
        assert daemon.stop() == 0


def test_daemon_restart_brings_deployments_back_and_stopped_stay_stopped(tmp_path):
    state = tmp_path / "state"
    daemon = DaemonProcess(state).start()
    wait_deployment(daemon, STARTER)
    created = daemon.get("/api/v1/deployments", headers=daemon.admin_headers())
    assert created.status_code == 200
    second = httpx.post(f"{daemon.url}/api/v1/deployments", headers=daemon.admin_headers(),
                        json={"model": STARTER, "name": "second", "params": {"parallel_slots": 2}})
    assert second.status_code == 201, second.text
    wait_deployment(daemon, "second")
    assert httpx.post(f"{daemon.url}/api/v1/deployments/second/stop", headers=daemon.admin_headers()).json()[
        "state"] == "stopped"
    old_pid = wait_deployment(daemon, STARTER)["pid"]
    assert daemon.stop() == 0
    assert not _alive(old_pid), "backend outlived the daemon"

    again = DaemonProcess(state, port=daemon.port).start()
    try:
        back = wait_deployment(again, STARTER)
        assert back["pid"] != old_pid
        assert again.get("/api/v1/deployments/second").json()["state"] == "stopped"
        assert _ask(again)
        models = [m["id"] for m in again.get("/v1/models").json()["data"]]
        assert models == [STARTER]  # a stopped deployment is not offered to apps
    finally:
        assert again.stop() == 0


def test_daemon_kill_9_leaves_no_orphan_backend(tmp_path):
    daemon = DaemonProcess(tmp_path / "state").start()
    pid = wait_deployment(daemon, STARTER)["pid"]
    daemon.kill9()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    assert not _alive(pid)


def test_full_queue_gets_429_with_retry_after(tmp_path):
    daemon = DaemonProcess(tmp_path / "state", env={"SLM_QUEUE_DEPTH": "1"}).start()
    try:
        wait_deployment(daemon, STARTER)
        create = httpx.post(f"{daemon.url}/api/v1/deployments", headers=daemon.admin_headers(),
                            json={"model": STARTER, "name": "one-slot", "params": {"parallel_slots": 1}})
        assert create.status_code == 201
        wait_deployment(daemon, "one-slot")

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=120) as client:
                body = {"model": "one-slot", "messages": QUESTION, "max_tokens": 64, "ignore_eos": True}
                return await asyncio.gather(*(client.post(f"{daemon.url}/v1/chat/completions", json=body,
                                                          headers=daemon.admin_headers()) for _ in range(5)))

        responses = asyncio.run(burst())
        codes = sorted(r.status_code for r in responses)
        assert codes.count(200) >= 2 and 429 in codes, codes
        rejected = next(r for r in responses if r.status_code == 429)
        assert rejected.headers["retry-after"] == "1"
        assert rejected.json()["error"]["code"] == "queue_full"
    finally:
        daemon.stop()


def test_per_key_rate_limit(tmp_path):
    daemon = DaemonProcess(tmp_path / "state", env={"SLM_RATE_LIMIT_PER_MINUTE": "5"}).start()
    try:
        codes = [daemon.get("/v1/models").status_code for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[-1] == 429
        limited = daemon.get("/v1/models")
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"]["type"] == "rate_limit_error"
    finally:
        daemon.stop()


def test_not_ready_deployment_is_503(tmp_path):
    daemon = DaemonProcess(tmp_path / "state").start()
    try:
        wait_deployment(daemon, STARTER)
        stopped = httpx.post(f"{daemon.url}/api/v1/deployments/{STARTER}/stop", headers=daemon.admin_headers())
        assert stopped.json()["state"] == "stopped"
        response = httpx.post(f"{daemon.url}/v1/chat/completions", headers=daemon.admin_headers(),
                              json={"model": STARTER, "messages": QUESTION})
        assert response.status_code == 503 and response.headers["retry-after"]
    finally:
        daemon.stop()
