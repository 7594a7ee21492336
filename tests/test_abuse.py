"""Abuse probes against the real daemon: oversized and deep bodies, idle and slow connections, bad keys,
one key hogging the slots, and backends reached around the gateway. Each limit is set small through the
daemon's own configuration (SLM_* environment) so a probe takes seconds."""

from __future__ import annotations

import json
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from appliance.testing.daemon import DaemonProcess, wait_deployment
from tests.helpers import backend_headers

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """A daemon serving the starter with short connection timeouts, few connections and a low per-key cap."""
    env = {"SLM_HEADER_TIMEOUT_S": "2", "SLM_MAX_CONNECTIONS": "1000", "SLM_PER_KEY_CONCURRENCY": "2",
           "SLM_AUTH_FAILURES_PER_MINUTE": "10", "SLM_RATE_LIMIT_PER_MINUTE": "100000"}
    proc = DaemonProcess(tmp_path_factory.mktemp("abuse") / "state", env=env).start()
    try:
        wait_deployment(proc, STARTER)
    except BaseException:
        proc.stop()
        raise
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def _raw(daemon: DaemonProcess, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[bytes, float]:
    """Send `head` and `body` on a fresh connection; the status line and the seconds it took to come."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", daemon.port), timeout=timeout) as sock:
        sock.sendall(head.encode())
        with_body = True
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            with_body = False  # the daemon answered and closed while the body was still going
        answer = sock.recv(65536)
        assert answer or not with_body, "no answer"
    return answer.split(b"\r\n", 1)[0], time.perf_counter() - started


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/v1/models"])
@pytest.mark.parametrize("keyed", [True, False])
def test_64_mib_body_is_413_in_under_a_second(guarded: DaemonProcess, path: str, keyed: bool) -> None:
    auth = f"Authorization: Bearer {guarded.admin_key()}\r\n" if keyed else ""
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {64 * MiB}\r\n\r\n")
    status, took = _raw(guarded, head, b"[" * (256 * 1024))  # a start of the body: the rest never comes
    assert status.startswith(b"HTTP/1.1 413"), status
    assert took < 1.0, took


def test_chunked_body_over_the_limit_is_413_once_it_crosses(guarded: DaemonProcess) -> None:
    head = (f"POST /api/v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guarded.admin_key()}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"x" * (256 * 1024)
    body = b"".join(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(5))  # 1.25 MiB > 1 MiB
    status, took = _raw(guarded, head, body)
    assert status.startswith(b"HTTP/1.1 413") and took < 1.0, (status, took)


def test_the_key_is_checked_before_the_body_is_read(guarded: DaemonProcess) -> None:
    head = ("POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n")
    status, took = _raw(guarded, head)  # no body sent at all: only a key check can answer
    assert status.startswith(b"HTTP/1.1 401") and took < 1.0, (status, took)


@pytest.mark.parametrize(("body", "code"), [
    ('{"model": "m", "messages": [{"role": "user", "content": ' + "[" * 3000 + "]" * 3000 + "}]}",
     "nesting_too_deep"),
    ('{"model": "m", "messages": [{"role": "user", "content": ' + "[" * 40 + "]" * 40 + "}]}", "nesting_too_deep"),
    (json.dumps({"model": STARTER, "messages": [{"role": "user", "content": "hi"}] * 1025}), "too_many_messages"),
    (json.dumps({"model": STARTER, "messages": [{"role": "user", "content": "word " * 40000}]}),
     "context_length_exceeded"),
])
def test_deep_long_and_crowded_bodies_are_400(guarded: DaemonProcess, body: str, code: str) -> None:
    response = httpx.post(f"{guarded.url}/v1/chat/completions", content=body, timeout=30,
                          headers={**guarded.admin_headers(), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code


def test_control_api_deep_body_is_4xx_not_500(guarded: DaemonProcess) -> None:
    body = '{"name": ' + "[" * 3000 + "]" * 3000 + "}"
    response = httpx.post(f"{guarded.url}/api/v1/models", content=body, timeout=30,
                          headers={**guarded.admin_headers(), "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


def test_backend_answers_nobody_but_the_gateway(guarded: DaemonProcess) -> None:
    deployment = guarded.get(f"/api/v1/deployments/{STARTER}").json()
    body = {"model": STARTER, "messages": QUESTION, "max_tokens": 4}
    for path in ("/v1/chat/completions", "/slots", "/metrics", "/props"):
        direct = httpx.request("POST" if path.startswith("/v1") else "GET",
                               f"http://127.0.0.1:{deployment['port']}{path}", json=body, timeout=30)
        assert direct.status_code == 401, (path, direct.status_code, direct.text[:200])
    # Its Unix socket too (the gateway's hop): the same key is needed there.
    argv = Path(f"/proc/{deployment['pid']}/cmdline").read_bytes().split(b"\0")
    hosts = argv[argv.index(b"--host") + 1].decode().split(",")
    sockets = [h for h in hosts if h.endswith(".sock")]
    assert sockets, hosts
    with httpx.Client(transport=httpx.HTTPTransport(uds=sockets[0]), timeout=30) as unix:
        assert unix.post("http://backend/v1/chat/completions", json=body).status_code == 401
        keyed = unix.post("http://backend/v1/chat/completions", json=body, headers=backend_headers(guarded, STARTER))
        assert keyed.status_code == 200
    # The key is not on the command line, which any local user can read.
    cmdline = b" ".join(argv)
    assert b"--api-key" not in cmdline
    assert backend_headers(guarded, STARTER)["Authorization"][7:].encode() not in cmdline


@pytest.mark.parametrize("extra", [["--host", "0.0.0.0"], ["--api-key-file", "/dev/null"], ["--log-file=/tmp/x"],
                                   ["--model", "/etc/passwd"]])
def test_extra_args_outside_the_allow_list_are_refused(guarded: DaemonProcess, extra: list[str]) -> None:
    response = httpx.post(f"{guarded.url}/api/v1/deployments", headers=guarded.admin_headers(), timeout=30,
                          json={"model": STARTER, "name": "rebound", "params": {"extra_args": extra}})
    assert response.status_code == 400, response.text
    assert extra[0].split("=")[0] in response.json()["error"]["message"]


def test_tuning_extra_args_are_accepted(guarded: DaemonProcess) -> None:
    response = httpx.post(f"{guarded.url}/api/v1/deployments", headers=guarded.admin_headers(), timeout=30,
                          json={"model": STARTER, "name": "tuned",
                                "params": {"extra_args": ["--seed", "-1", "--cache-reuse=256"]}})
    assert response.status_code == 201, response.text
    assert httpx.delete(f"{guarded.url}/api/v1/deployments/tuned", headers=guarded.admin_headers(),
                        timeout=60).status_code == 200


def test_one_key_cannot_take_every_slot(guarded: DaemonProcess) -> None:
    """Per-key cap 2: a third concurrent request of the same key is 429; another key still gets in."""
    hog = httpx.post(f"{guarded.url}/api/v1/keys", json={"name": "hog", "scope": "inference"},
                     headers=guarded.admin_headers()).json()["token"]
    body = {"model": STARTER, "messages": QUESTION, "max_tokens": 400, "ignore_eos": True, "stream": True}
    with httpx.Client(timeout=60) as client:
        streams = [client.stream("POST", f"{guarded.url}/v1/chat/completions", json=body,
                                 headers={"Authorization": f"Bearer {hog}"}) for _ in range(2)]
        opened = [s.__enter__() for s in streams]
        try:
            assert all(r.status_code == 200 for r in opened)
            third = client.post(f"{guarded.url}/v1/chat/completions", json={**body, "stream": False},
                                headers={"Authorization": f"Bearer {hog}"})
            assert third.status_code == 429 and third.json()["error"]["code"] == "key_concurrency_limit"
            assert third.headers["retry-after"] == "1"
            other = client.post(f"{guarded.url}/v1/chat/completions", headers=guarded.admin_headers(),
                                json={"model": STARTER, "messages": QUESTION, "max_tokens": 4})
            assert other.status_code == 200
        finally:
            for s in streams:
                s.__exit__(None, None, None)
    # The claims are released once the streams are gone: the key gets in again.
    deadline = time.monotonic() + 10
    while True:
        again = httpx.post(f"{guarded.url}/v1/chat/completions", headers={"Authorization": f"Bearer {hog}"},
                           json={"model": STARTER, "messages": QUESTION, "max_tokens": 4}, timeout=60)
        if again.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert again.status_code == 200, again.text


def _open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))


def test_3000_idle_connections_are_closed_and_healthz_stays_fast(guarded: DaemonProcess) -> None:
    _open_files(8192)
    idle = [socket.create_connection(("127.0.0.1", guarded.port), timeout=10) for _ in range(3000)]
    try:
        took = []
        for _ in range(5):
            started = time.perf_counter()
            assert httpx.get(f"{guarded.url}/healthz", timeout=5).status_code == 200
            took.append(time.perf_counter() - started)
        # The first request can land while the cap evicts ~2,000 sockets at once; after that it is ms.
        assert took[0] < 2.0 and max(took[1:]) < 0.5, took
        time.sleep(3.0)  # past the 2 s header timeout (and the cap of 1000 evicted most at once)
        for sock in idle:
            sock.setblocking(False)
        still_open = 0
        for sock in idle:
            try:
                if sock.recv(1) != b"":
                    still_open += 1
            except BlockingIOError:
                still_open += 1
            except ConnectionResetError:
                pass
        assert still_open == 0, f"{still_open} idle connections still open"
    finally:
        for sock in idle:
            sock.close()
    assert httpx.get(f"{guarded.url}/healthz", timeout=5).status_code == 200


def test_slowloris_headers_are_cut_off(guarded: DaemonProcess) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock:
        started = time.monotonic()
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.1)
            if time.monotonic() - started > 6:
                break
        if not closed:
            sock.settimeout(5)
            closed = sock.recv(1024) == b""
    assert closed and time.monotonic() - started < 6


def test_huge_headers_get_431(guarded: DaemonProcess) -> None:
    head = "GET /healthz HTTP/1.1\r\nHost: x\r\n" + "".join(f"X-Pad-{i}: {'a' * 1000}\r\n" for i in range(80))
    status, _ = _raw(guarded, head + "\r\n")
    assert status.startswith(b"HTTP/1.1 431"), status


def test_bad_keys_are_rate_limited_per_address(guarded: DaemonProcess) -> None:
    """Last in the module: it locks this test's address out for a while (10 failures a minute)."""
    codes = [httpx.get(f"{guarded.url}/v1/models", headers={"Authorization": f"Bearer slm_bad_{i}"},
                       timeout=10).status_code for i in range(12)]
    assert codes[:10] == [401] * 10 and codes[-1] == 429, codes
    limited = httpx.get(f"{guarded.url}/v1/models", headers={"Authorization": "Bearer slm_bad"}, timeout=10)
    assert limited.json()["error"]["code"] == "auth_rate_limited" and int(limited.headers["retry-after"]) >= 1
    assert httpx.get(f"{guarded.url}/healthz", timeout=10).status_code == 200  # health needs no key
