"""The systemd unit: valid for systemd-analyze, and hardened (offline security score)."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess

import pytest

from tests.helpers import REPO

UNIT = REPO / "systemd" / "slm-appliance.service"
pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


@pytest.fixture
def unit_copy(tmp_path):
    # systemd-analyze needs ExecStart's binary to exist: point it at the one this checkout installed.
    binary = shutil.which("slm-appliance") or str(REPO / ".venv" / "bin" / "slm-appliance")
    path = tmp_path / "slm-appliance.service"
    path.write_text(UNIT.read_text().replace("/usr/bin/slm-appliance", binary))
    return path


def test_unit_verifies_without_any_message(unit_copy):
    result = subprocess.run(["systemd-analyze", "verify", str(unit_copy)], capture_output=True, text=True)
    # verify returns 0 even for unknown keys: any output at all is a defect.
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stdout + result.stderr


def test_unit_is_hardened(unit_copy):
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit_copy)],
                            capture_output=True, text=True)
    match = re.search(r"Overall exposure level for .*: ([0-9.]+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout[-3000:]  # 1.6 measured


def test_unit_contract_with_the_daemon():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "StateDirectory=slm-appliance", "RuntimeDirectory=slm-appliance",
                 "KillMode=mixed", "OOMPolicy=continue", "MemoryMax=", "StartLimitBurst="):
        assert line in text


# The device classes NVIDIA drivers >= 550 register in /proc/devices (../shared/FACTS.md), and the one older
# drivers had: each must be allowed, or CUDA and NVML fail under DevicePolicy=closed.
NVIDIA_CLASSES = ["nvidia", "nvidiactl", "nvidia-uvm", "nvidia-caps", "nvidia-frontend"]


@pytest.mark.parametrize("device_class", NVIDIA_CLASSES)
def test_every_nvidia_device_class_is_allowed(device_class):
    patterns = [line.split()[0].split("=", 1)[1] for line in UNIT.read_text().splitlines()
                if line.startswith("DeviceAllow=")]
    # systemd matches a char-<group> pattern against /proc/devices names with fnmatch globbing.
    assert any(fnmatch.fnmatchcase(f"char-{device_class}", p) for p in patterns), patterns


def test_stop_timeout_covers_the_slowest_shutdown():
    from appliance.backends.process import BackendProcess
    from appliance.jobs.runner import STOP_GRACE_S

    stop = int(re.search(r"^TimeoutStopSec=(\d+)", UNIT.read_text(), re.M).group(1))
    grace = BackendProcess._terminate.__defaults__[0]  # the backend's terminate → kill grace
    assert stop > 10 + STOP_GRACE_S + grace, stop  # uvicorn's 10 s graceful shutdown, the job, a backend
