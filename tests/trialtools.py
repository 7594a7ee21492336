"""Trials on a real daemon, for the tests of their CLI and TUI and the TUI's recording: a candidate deployment
beside the live one, a shadow with its pairs, a canary with traffic on both sides and the live watch's verdict."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai

from appliance.testing.daemon import DaemonProcess, wait_deployment

Json = dict[str, Any]
STARTER = "smollm2-135m-instruct"


def daemon_with_candidate(root: Path, candidate: str) -> Iterator[DaemonProcess]:
    """A module fixture's body: a daemon serving the starter and `candidate` (the starter again), judging its
    watches every second, no rate limit in the way; stopped cleanly after."""
    proc = DaemonProcess(root / "state", env={"SLM_RATE_LIMIT_PER_MINUTE": "100000", "SLM_WATCH_INTERVAL_S": "1"})
    proc.start()
    try:
        wait_deployment(proc, STARTER)
        add_candidate(proc.url, proc.admin_key(), STARTER, candidate)
    except BaseException:
        proc.stop()
        raise
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def admin(url: str, admin_key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=120)


def until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it gives something true; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not after {timeout:.0f}s")
        time.sleep(0.3)
    return result


def add_candidate(url: str, admin_key: str, model: str, name: str, timeout: float = 180.0) -> Json:
    """Deploy `model` as `name` (one slot, one thread: see tests/test_trials_live.py) and wait until it is ready."""
    with admin(url, admin_key) as http:
        response = http.post("/api/v1/deployments", json={"model": model, "name": name,
                                                          "params": {"parallel_slots": 1, "threads": 1}})
        assert response.status_code == 201, response.text
        ready = until(lambda: (d := http.get(f"/api/v1/deployments/{name}").json())["state"] == "ready" and d,
                      timeout, f"{name} ready")
    return dict(ready)


def ask(url: str, token: str, model: str, prompts: list[str], max_tokens: int = 16) -> list[str]:
    """Each prompt once through the official openai client (greedy); the answers."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=120)
    return [client.chat.completions.create(model=model, max_tokens=max_tokens, temperature=0, seed=0,
                                           messages=[{"role": "user", "content": p}]).choices[0].message.content
            or "" for p in prompts]


def trials(url: str, admin_key: str, deployment: str) -> Json:
    with admin(url, admin_key) as http:
        response = http.get(f"/api/v1/deployments/{deployment}/trials")
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_pairs(url: str, admin_key: str, deployment: str, pairs: int, timeout: float = 120.0) -> Json:
    """The shadow's summary once it counts `pairs` pairs (the runner compares them off the request path)."""
    def enough() -> Json | None:
        summary = trials(url, admin_key, deployment).get("shadow_summary")
        return summary if summary and summary["pairs"] >= pairs else None

    return dict(until(enough, timeout, f"{pairs} shadow pairs of {deployment}"))


def canary_traffic(url: str, admin_key: str, deployment: str, requests: int, timeout: float = 240.0) -> Json:
    """Ask through new inference keys (the canary's split is sticky per key) until the live watch's verdict
    counts at least `requests` on each side; the verdict."""
    with admin(url, admin_key) as http:
        deadline = time.monotonic() + timeout
        while True:
            verdict = trials(url, admin_key, deployment).get("watch")
            if verdict and min(verdict["candidate"]["requests"], verdict["baseline"]["requests"]) >= requests:
                return dict(verdict)
            assert time.monotonic() < deadline, f"canary traffic: {verdict}"
            name = f"canary-app-{secrets.token_hex(3)}"
            token = http.post("/api/v1/keys", json={"name": name, "scope": "inference"}).json()["token"]
            ask(url, token, deployment, ["Say hello.", "Name a colour."], max_tokens=8)
            time.sleep(1.2)  # the watch judges every SLM_WATCH_INTERVAL_S (1 s in these tests)
