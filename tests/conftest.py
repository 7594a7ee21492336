from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.hardware import HardwareReport, RecordedNvml, detect_hardware
from appliance.profiles import Profile, load_profiles
from tests.helpers import HW_FIXTURES, REPO, DaemonProcess

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def profiles() -> list[Profile]:
    return load_profiles(REPO / "profiles")


def recorded_machine(name: str, state_dir: Path = Path("/tmp")) -> HardwareReport:
    """A HardwareReport with this box's CPU/RAM and the GPUs of a recorded real machine."""
    return detect_hardware(state_dir, RecordedNvml.from_file(HW_FIXTURES / name))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "state").start()
    yield proc
    proc.stop()
