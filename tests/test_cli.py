"""The CLI as an operator runs it: a real subprocess, text and --json output."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import HW_FIXTURES


def _cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "appliance", "--state-dir", str(tmp_path / "s"), *args],
                          capture_output=True, text=True, timeout=120)


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


def test_keys_lifecycle(tmp_path):
    created = json.loads(_cli(tmp_path, "keys", "create", "--name", "app1", "--json").stdout)
    assert created["token"].startswith("slm_") and created["key"]["scope"] == "inference"
    listed = json.loads(_cli(tmp_path, "keys", "list", "--json").stdout)
    assert [k["name"] for k in listed] == ["app1"] and "token" not in listed[0]
    dup = _cli(tmp_path, "keys", "create", "--name", "app1")
    assert dup.returncode == 2 and "already exists" in dup.stderr
    assert _cli(tmp_path, "keys", "revoke", "app1").returncode == 0
    db = (tmp_path / "s" / "state.db").read_bytes()
    assert created["token"].encode() not in db  # only the hash is stored


def test_help_lists_commands(tmp_path):
    out = _cli(tmp_path, "--help").stdout
    for word in ("detect", "profile", "plan", "keys", "daemon", "examples:"):
        assert word in out
