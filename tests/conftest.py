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


def wait_deployment(daemon: DaemonProcess, name: str, state: str = "ready", timeout: float = 120.0) -> dict:
    """Poll the deployments API until `name` reaches `state`."""
    import time

    deadline = time.monotonic() + timeout
    last: dict = {}
    while time.monotonic() < deadline:
        response = daemon.get(f"/api/v1/deployments/{name}")
        if response.status_code == 200:
            last = response.json()
            if last["state"] == state:
                return last
        time.sleep(0.3)
    raise TimeoutError(f"{name} not {state} after {timeout}s: {last}\n{daemon.log()[-3000:]}")


@pytest.fixture(scope="module")
def serving_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    """One daemon serving the starter model, shared by a module's tests (llama-server starts in seconds)."""
    proc = DaemonProcess(tmp_path_factory.mktemp("serving") / "state").start()
    wait_deployment(proc, "smollm2-135m-instruct")
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]
