"""A backend that dies or wedges mid-answer: the client is told (an error event and no [DONE] on a stream,
502/504 otherwise), the slot is freed, the failure is counted, and supervision brings the backend back."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from appliance.testing.daemon import DaemonProcess, wait_deployment

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
LONG = {"model": STARTER, "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 2000,
        "ignore_eos": True}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    env = {"SLM_UPSTREAM_READ_TIMEOUT_S": "3", "SLM_RATE_LIMIT_PER_MINUTE": "100000"}
    proc = DaemonProcess(tmp_path_factory.mktemp("faults") / "state", env=env).start()
    try:
        wait_deployment(proc, STARTER)
    except BaseException:
        proc.stop()
        raise
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def _backend_pid(daemon: DaemonProcess) -> int:
    return int(wait_deployment(daemon, STARTER)["pid"])


def _metric(daemon: DaemonProcess, name: str) -> float:
    text = daemon.get("/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _chat_works(daemon: DaemonProcess) -> bool:
    response = httpx.post(f"{daemon.url}/v1/chat/completions", headers=daemon.admin_headers(), timeout=30,
                          json={**LONG, "max_tokens": 4, "ignore_eos": False})
    return response.status_code == 200


def test_backend_killed_mid_stream_is_an_error_event_and_it_is_back_within_5s(daemon: DaemonProcess) -> None:
    pid = _backend_pid(daemon)
    errors_before = _metric(daemon, 'slm_stream_errors_total{deployment="smollm2-135m-instruct",reason="backend_'
                                    'closed"}')
    client = openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=daemon.admin_key(), max_retries=0, timeout=60)
    stream = client.chat.completions.create(model=STARTER, messages=LONG["messages"], max_tokens=2000, stream=True,
                                            extra_body={"ignore_eos": True})
    pieces = 0
    killed_at = 0.0
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pieces += 1
            if pieces == 3:
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
    assert "backend failed mid-answer" in str(raised.value), raised.value
    assert pieces >= 3
    # The raw stream: an error event, and no [DONE].
    deadline = killed_at + 5.0
    while not _chat_works(daemon):
        assert time.monotonic() < deadline, "backend not back within 5 s of the kill"
        time.sleep(0.1)
    back_after = time.monotonic() - killed_at
    assert back_after < 5.0, back_after
    assert _metric(daemon, 'slm_stream_errors_total{deployment="smollm2-135m-instruct",reason="backend_'
                           'closed"}') == errors_before + 1


def test_raw_stream_ends_with_an_error_event_and_no_done(daemon: DaemonProcess) -> None:
    pid = _backend_pid(daemon)
    with httpx.stream("POST", f"{daemon.url}/v1/chat/completions", headers=daemon.admin_headers(),
                      json={**LONG, "stream": True}, timeout=60) as response:
        assert response.status_code == 200
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) == 6:
                os.kill(pid, signal.SIGKILL)
    events = [line for line in lines if line.startswith("data: ")]
    assert events[-1].startswith('data: {"error"') and '"code": "backend_closed"' in events[-1], events[-3:]
    assert "data: [DONE]" not in lines
    wait_deployment(daemon, STARTER, timeout=30)


def test_wedged_backend_times_out_and_frees_the_slot(daemon: DaemonProcess) -> None:
    """SIGSTOP: the backend holds its connections but sends nothing. After the 3 s read timeout the stream gets
    an error event, a non-streamed request a 504; on SIGCONT the backend serves again."""
    pid = _backend_pid(daemon)
    with httpx.stream("POST", f"{daemon.url}/v1/chat/completions", headers=daemon.admin_headers(),
                      json={**LONG, "stream": True}, timeout=60) as response:
        lines = []
        stopped_at = 0.0
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) == 4:
                os.kill(pid, signal.SIGSTOP)
                stopped_at = time.monotonic()
        took = time.monotonic() - stopped_at
    try:
        assert '"code": "backend_timeout"' in lines[-1] or '"code": "backend_timeout"' in lines[-2], lines[-3:]
        assert 2.5 < took < 10, took
        started = time.monotonic()
        late = httpx.post(f"{daemon.url}/v1/chat/completions", headers=daemon.admin_headers(), timeout=60,
                          json={**LONG, "max_tokens": 4})
        assert late.status_code in (503, 504), late.text  # 503: supervision already saw it fail health checks
        assert time.monotonic() - started < 10
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_deployment(daemon, STARTER, timeout=60)
    assert _chat_works(daemon)


def test_non_streamed_request_cut_by_a_crash_is_502(daemon: DaemonProcess) -> None:
    pid = _backend_pid(daemon)
    threading.Timer(1.0, os.kill, (pid, signal.SIGKILL)).start()
    response = httpx.post(f"{daemon.url}/v1/chat/completions", headers=daemon.admin_headers(), timeout=60,
                          json=LONG)
    assert response.status_code == 502, response.text
    assert response.json()["error"]["code"] == "backend_closed"
    wait_deployment(daemon, STARTER, timeout=30)
