from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.backends.registry import backend_rules
from appliance.hardware import HardwareReport, RecordedNvml, detect_hardware
from appliance.profiles import Profile, load_profiles
from appliance.testing.daemon import DaemonProcess, wait_deployment
from tests.helpers import HW_FIXTURES, REPO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def profiles() -> list[Profile]:
    return load_profiles(REPO / "profiles", backend_rules())


def recorded_machine(name: str, state_dir: Path = Path("/tmp")) -> HardwareReport:
    """A HardwareReport with this box's CPU/RAM and the GPUs of a recorded real machine."""
    return detect_hardware(state_dir, RecordedNvml.from_file(HW_FIXTURES / name))


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path / "state").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def serving_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon serving the starter model, shared by a module's tests (llama-server starts in seconds)."""
    proc = DaemonProcess(tmp_path_factory.mktemp("serving") / "state").start()
    try:
        wait_deployment(proc, "smollm2-135m-instruct")
    except BaseException:
        proc.stop()  # a daemon whose model never came up must not outlive the test run
        raise
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]
