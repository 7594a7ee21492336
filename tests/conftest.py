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

# Folders whose modules share one session fixture (a daemon, a built image) and so go to one xdist worker.
_SHARED_FOLDERS = ("retrieval", "packaging", "e2e")


# The longest groups (measured: minutes each), handed out first so that neither worker is left with one at the end
# (make test passes --no-loadscope-reorder: xdist would otherwise order groups by their number of tests).
_LONGEST_FIRST = ("e2e", "packaging", "tests/test_trials_live.py", "tests/test_vllm.py",
                  "tests/test_zero_egress.py", "tests/test_preference_jobs.py", "tests/test_distill.py",
                  "tests/test_finetune.py", "tests/test_load.py", "tests/test_faults.py", "retrieval",
                  "tests/test_cli_trials.py", "tests/test_fuzz.py")


def _group(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    parts = Path(path).parts
    return parts[1] if len(parts) > 2 and parts[1] in _SHARED_FOLDERS else path


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n 2 --dist loadgroup` (make test), a module's tests stay on one worker, so its module-scoped
    daemon starts once; the modules of a folder in _SHARED_FOLDERS stay together for their session fixture.
    Modules run side by side: most wait on model processes, not on the CPU."""
    rank = {name: n for n, name in enumerate(_LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item.nodeid), len(rank)))  # stable: a module's order is kept
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item.nodeid)))


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
