"""The CLI as an operator runs it: a real subprocess, text and --json output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx

from tests.helpers import HW_FIXTURES, free_port


def _cli(tmp_path, *args, env=None, state_dir=None):
    return subprocess.run([sys.executable, "-m", "appliance", "--state-dir", str(state_dir or tmp_path / "s"), *args],
                          capture_output=True, text=True, timeout=120, env=env)


def _env(port, **extra):
    env = {k: v for k, v in os.environ.items() if k != "SLM_API_KEY"}
    return {**env, "SLM_PORT": str(port), **extra}


def test_detect_on_this_box_picks_cpu_and_says_why_not_each_gpu_profile(tmp_path):
    result = _cli(tmp_path, "detect")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Profile  cpu:" in out
    for name in ("a10g", "consumer-gpu", "h100", "t4", "mig-slice", "datacenter-gpu"):
        assert f"✗ {name}: rejected" in out


def test_detect_json_with_recorded_machine(tmp_path):
    result = _cli(tmp_path, "--nvml-replay", str(HW_FIXTURES / "linux_nvidia_1_a10g_23028mib.json"),
                  "detect", "--json")
    data = json.loads(result.stdout)
    assert data["profile"] == "a10g"
    assert data["hardware"]["gpus"][0]["memory_total_mib"] == 23028


def test_profile_explain_lists_every_rule(tmp_path):
    out = _cli(tmp_path, "profile", "--explain").stdout
    assert "✓ cpu (chosen)" in out and "0 GPUs in 0–0" in out and "✗ h100" in out


def test_pinned_profile_from_flag(tmp_path):
    data = json.loads(_cli(tmp_path, "--profile", "h100", "profile", "--json").stdout)
    assert data["selected"] == "h100" and data["pinned"] is True


def test_plan_text_and_bad_size(tmp_path):
    assert "Serve    OK" in _cli(tmp_path, "plan", "135M").stdout
    bad = _cli(tmp_path, "plan", "huge")
    assert bad.returncode == 2 and "cannot read a parameter count" in bad.stderr and "Traceback" not in bad.stderr


def test_keys_through_a_real_daemon_make_a_key_that_works(tmp_path, daemon):
    env, state = _env(daemon.port), daemon.state_dir  # root's CLI finds the daemon's admin.key the same way
    created = _cli(tmp_path, "keys", "create", "--name", "demo", "--scope", "inference", "--json", env=env,
                   state_dir=state)
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]
    assert token.startswith("slm_") and json.loads(created.stdout)["key"]["scope"] == "inference"
    before = time.time()
    for _ in range(5):  # one use written, the others within the minute cost no write
        assert httpx.get(f"{daemon.url}/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    human = _cli(tmp_path, "keys", "create", "--name", "kiosk", "--daily-token-quota", "500", env=env,
                 state_dir=state)
    assert human.returncode == 0, human.stderr
    heading, printed = human.stdout.splitlines()
    assert heading.startswith("created inference key 'kiosk' (id ") and printed.startswith("slm_")
    listed = {k["name"]: k for k in json.loads(_cli(tmp_path, "keys", "list", "--json", env=env,
                                                       state_dir=state).stdout)}
    assert {n: k["daily_token_quota"] for n, k in listed.items()} == {"demo": None, "kiosk": 500, "local-admin": None}
    assert all("token" not in k for k in listed.values())
    assert before <= listed["demo"]["last_used_at"] <= time.time() and listed["kiosk"]["last_used_at"] is None
    dup = _cli(tmp_path, "keys", "create", "--name", "demo", env=env, state_dir=state)
    assert dup.returncode == 1 and dup.stderr == "slm-appliance: 409: a key named 'demo' already exists\n"
    assert json.loads(_cli(tmp_path, "keys", "usage", "--json", env=env, state_dir=state).stdout) == []
    revoked = _cli(tmp_path, "keys", "revoke", "demo", env=env, state_dir=state)
    assert revoked.returncode == 0 and revoked.stdout == "revoked key 'demo'\n"
    assert httpx.get(f"{daemon.url}/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    for name in ("state.db", "state.db-wal"):
        assert token.encode() not in (state / name).read_bytes()  # only the hash is stored
    actors = {e["action"]: e["actor"] for e in daemon.get("/api/v1/audit").json()}
    assert actors["key.create"] == actors["key.revoke"] == "local-admin"  # the daemon wrote it, as its own user


def test_keys_without_a_daemon_say_so_and_create_no_store(tmp_path):
    port = free_port()
    no_key = _cli(tmp_path, "keys", "create", "--name", "demo", "--json", env=_env(port))
    assert no_key.returncode == 1 and not no_key.stdout and "Traceback" not in no_key.stderr
    assert no_key.stderr.startswith("slm-appliance: no API key")
    assert "admin.key: No such file or directory; the daemon writes it when it starts" in no_key.stderr
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "admin.key").write_text("slm_0123abcd_left-from-a-daemon-that-is-not-running\n")
    for args in (("create", "--name", "demo"), ("list",), ("usage", "--json"), ("revoke", "demo")):
        result = _cli(tmp_path, "keys", *args, env=_env(port))
        assert result.returncode == 1 and not result.stdout and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"slm-appliance: cannot reach the daemon at http://127.0.0.1:{port}: ")
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["admin.key"]  # no state.db, no WAL


def test_help_lists_commands(tmp_path):
    out = _cli(tmp_path, "--help").stdout
    for word in ("detect", "profile", "plan", "keys", "daemon", "examples:"):
        assert word in out


def test_daemon_commands_without_a_key_say_where_they_looked(tmp_path):
    result = _cli(tmp_path, "models", "list", env=_env(free_port()))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("slm-appliance: no API key") and str(tmp_path / "s" / "admin.key") in result.stderr


def test_tui_without_a_key_exits_2_before_drawing(tmp_path):
    result = _cli(tmp_path, "tui", env=_env(free_port()))
    assert result.returncode == 2 and result.stderr.startswith("slm-appliance: no API key") and not result.stdout


def test_daemon_commands_without_a_daemon(tmp_path):
    port = free_port()
    result = _cli(tmp_path, "deploy", "list", "--key", "slm_x", env=_env(port))
    assert result.returncode == 1
    assert result.stderr.startswith(f"slm-appliance: cannot reach the daemon at http://127.0.0.1:{port}: ")


def test_daemon_commands_through_a_real_daemon(tmp_path, daemon):
    key_file = tmp_path / "copy.key"
    key_file.write_text(daemon.admin_key())
    env = _env(daemon.port)
    listed = _cli(tmp_path, "jobs", "list", "--json", "--key-file", str(key_file), env=env)
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    # from here on the daemon's own admin.key in its state directory
    missing = _cli(tmp_path, "deploy", "show", "nope", env=env, state_dir=daemon.state_dir)
    assert missing.returncode == 1 and "slm-appliance: 404: no deployment named 'nope'" in missing.stderr
    bad = _cli(tmp_path, "jobs", "submit", "finetune", env=env, state_dir=daemon.state_dir)
    assert bad.returncode == 1 and bad.stderr == "slm-appliance: finetune needs --base-model and --dataset\n"
