"""The systemd unit: valid for systemd-analyze, and hardened (offline security score)."""

from __future__ import annotations

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
    assert float(match.group(1)) <= 2.5, result.stdout[-3000:]


def test_unit_contract_with_the_daemon():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "StateDirectory=slm-appliance", "RuntimeDirectory=slm-appliance",
                 "KillMode=mixed", "HF_HUB_OFFLINE=1"):
        assert line in text
