"""The daemon as a real process: systemd notifications on a real AF_UNIX socket, HTTP, clean SIGTERM."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx

from tests.helpers import DaemonProcess, free_port


def _notify_socket(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    return sock


def test_daemon_notifies_serves_and_stops_cleanly(tmp_path):
    notify_path = tmp_path / "notify.sock"
    listener = _notify_socket(notify_path)
    daemon = DaemonProcess(tmp_path / "state", env={"NOTIFY_SOCKET": str(notify_path),
                                                    "WATCHDOG_USEC": "1000000"})
    daemon.start(wait_ready=False)
    try:
        first = listener.recv(4096).decode()
        assert "READY=1" in first and "profile cpu" in first
        # READY=1 only after the socket is bound: the API answers right away
        health = httpx.get(f"{daemon.url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert listener.recv(4096).decode() == "WATCHDOG=1"

        hardware = daemon.get("/api/v1/hardware")
        assert hardware.status_code == 200
        body = hardware.json()
        assert body["profile"] == "cpu"
        assert body["report"]["cpu"]["logical_cores"] >= 1
        assert body["report"]["nvml"]["available"] is False or body["report"]["gpus"]
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()
    messages = []
    listener.settimeout(2)
    try:
        while True:
            messages.append(listener.recv(4096).decode())
    except TimeoutError:
        pass
    assert any(m.startswith("STOPPING=1") for m in messages)
    log = daemon.log()
    assert '"msg": "daemon ready"' in log and '"msg": "stopped"' in log


def test_keys_guard_every_route_but_health(daemon):
    assert httpx.get(f"{daemon.url}/readyz").status_code == 200
    for path in ("/api/v1/hardware", "/api/v1/profiles", "/api/v1/plan?params=7B", "/api/v1/keys"):
        missing = httpx.get(daemon.url + path)
        assert missing.status_code == 401, path
        assert missing.json()["error"]["code"] == "missing_api_key"
        bad = httpx.get(daemon.url + path, headers={"Authorization": "Bearer slm_nope_nope"})
        assert bad.status_code == 401
        assert bad.json()["error"]["type"] == "authentication_error"


def test_profiles_and_plan_endpoints(daemon):
    profiles = daemon.get("/api/v1/profiles").json()
    assert profiles["selected"] == "cpu"
    assert {v["name"] for v in profiles["verdicts"]} >= {"cpu", "a10g", "h100", "consumer-gpu"}
    plan = daemon.get("/api/v1/plan", params={"params": "135M"}).json()
    assert plan["quantization"] == "Q8_0" and plan["can_serve"] is True
    bad = daemon.get("/api/v1/plan", params={"params": "lots"})
    assert bad.status_code == 400 and "cannot read a parameter count" in bad.json()["error"]["message"]
    missing = daemon.get("/api/v1/plan")
    assert missing.status_code == 422 and missing.json()["error"]["param"] == "params"


def test_inference_key_cannot_reach_control_api(daemon):
    created = httpx.post(f"{daemon.url}/api/v1/keys", json={"name": "app1", "scope": "inference"},
                         headers=daemon.admin_headers())
    assert created.status_code == 201
    token = created.json()["token"]
    forbidden = httpx.get(f"{daemon.url}/api/v1/hardware", headers={"Authorization": f"Bearer {token}"})
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["type"] == "permission_error"
    assert httpx.delete(f"{daemon.url}/api/v1/keys/app1", headers=daemon.admin_headers()).status_code == 200
    revoked = httpx.get(f"{daemon.url}/api/v1/hardware", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 401


def test_openapi_document_behind_a_key_no_docs_pages_and_json_404(daemon):
    assert httpx.get(f"{daemon.url}/openapi.json").status_code == 401
    spec = httpx.get(f"{daemon.url}/openapi.json", headers=daemon.admin_headers()).json()
    assert "/api/v1/plan" in spec["paths"] and "/healthz" in spec["paths"]
    for page in ("/docs", "/redoc"):  # their pages load scripts from a CDN: useless on an air-gapped box
        assert httpx.get(f"{daemon.url}{page}", headers=daemon.admin_headers()).status_code == 404
    missing = httpx.get(f"{daemon.url}/no/such/route", headers=daemon.admin_headers())
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    assert httpx.get(f"{daemon.url}/no/such/route").status_code == 401  # no key: not even what exists


def test_port_in_use_exits_non_zero_with_reason(tmp_path):
    port = free_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        result = subprocess.run(
            [sys.executable, "-m", "appliance", "--state-dir", str(tmp_path / "s"), "daemon", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
        )
    assert result.returncode == 1
    assert "cannot bind the API socket" in result.stdout


def test_invalid_profile_stops_startup_with_the_file_named(tmp_path):
    bad = tmp_path / "profiles"
    bad.mkdir()
    (bad / "cpu.toml").write_text('name = "cpu"\n')
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "--state-dir", str(tmp_path / "s"), "--profiles-dir", str(bad),
         "daemon", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "startup failed" in result.stdout and "cpu.toml" in result.stdout and "Traceback" not in result.stdout


def test_second_daemon_on_the_same_state_dir_is_refused(tmp_path):
    first = DaemonProcess(tmp_path / "state").start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "appliance", "--state-dir", str(tmp_path / "state"), "daemon",
             "--port", str(free_port())],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 1
        assert "another daemon is running on" in result.stdout and "Traceback" not in result.stdout
        assert first.get("/api/v1/hardware").status_code == 200  # the first one is untouched
    finally:
        assert first.stop() == 0
