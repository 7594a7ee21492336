"""Store writes that fail (a locked or full database) never stop the job loop or backend supervision, with
real worker and backend processes; the circuit breaker of a backend that cannot start; ENOSPC at the seams of
the registry and the dataset store."""

from __future__ import annotations

import asyncio
import errno
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.backends import process as process_mod
from appliance.backends.base import Capabilities, Launch, LaunchSpec
from appliance.backends.process import MAX_FAILED_STARTS, BackendProcess
from appliance.datasets.errors import DatasetStorageFull
from appliance.datasets.store import DatasetStore
from appliance.errors import StorageFull
from appliance.jobs import runner as runner_mod
from appliance.jobs.runner import JobRunner
from appliance.jobs.store import JobStore
from appliance.plan.serving import SlotKvMemory
from appliance.registry import registry as registry_mod
from appliance.registry.registry import Registry
from appliance.registry.starter import find_starter_gguf
from appliance.state.retry import WriteFailed, write_retrying
from appliance.state.store import StateStore
from appliance.testing.daemon import free_port

LOCKED = sqlite3.OperationalError("database is locked")


class FlakyJobs(JobStore):
    """A JobStore whose writes fail while `failing` is set, the way a full disk or a held lock makes them."""

    failing = True
    failures = 0

    def _maybe_fail(self) -> None:
        if self.failing:
            self.failures += 1
            raise LOCKED

    def mark_running(self, job_id: str, pid: int) -> None:
        self._maybe_fail()
        super().mark_running(job_id, pid)

    def finish(self, job_id: str, state: Any, **kw: Any) -> None:
        self._maybe_fail()
        super().finish(job_id, state, **kw)


async def _until(check: Any, timeout: float = 60.0) -> None:
    for _ in range(int(timeout * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(check)


async def _job_loop_scenario(state_dir: Path) -> tuple[FlakyJobs, list[str]]:
    jobs = FlakyJobs(StateStore(state_dir / "state.db").open())
    runner = JobRunner(jobs, state_dir, [], 512)
    runner.start()
    # Real worker subprocesses that fail fast: their end cannot be written while the store is failing.
    first = runner.submit("dataset-import", {"path": "/nonexistent-1.jsonl", "name": "x"})
    await _until(lambda: jobs.failures >= 4)  # mark_running gave up, the first finish attempts failed
    assert runner._task is not None and not runner._task.done()  # the loop is alive
    jobs.failing = False
    second = runner.submit("dataset-import", {"path": "/nonexistent-2.jsonl", "name": "y"})
    await _until(lambda: all(jobs.get(j.id).state == "failed" for j in (first, second)))
    await runner.shutdown()
    return jobs, [jobs.get(j.id).error for j in (first, second)]


def test_job_loop_survives_failing_store_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_mod, "STORE_BACKOFF_S", 0.2)
    jobs, errors = asyncio.run(_job_loop_scenario(tmp_path))
    assert jobs.failures >= 4
    assert all("nonexistent" in e or "runner error" in e or "worker exited" in e for e in errors), errors


def test_write_retrying_retries_then_gives_up() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise LOCKED
        return "written"

    assert asyncio.run(write_retrying("flaky", flaky, delay=0.01)) == "written" and len(calls) == 3

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(WriteFailed, match="full: .*No space left on device"):
        asyncio.run(write_retrying("full", full, delay=0.01))


# -- supervision ---------------------------------------------------------------------------------------------
class ScriptBackend:
    """A stand-in backend program: any command line, healthy when its port answers HTTP."""

    name = "script"
    capabilities = Capabilities(formats=("gguf",), memory=SlotKvMemory(), continuous_batching=False,
                                lora_adapters=False, gpu_required=False)

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def build_launch(self, spec: LaunchSpec) -> Launch:
        return Launch(argv=[a.replace("{port}", str(spec.port)) for a in self.argv])

    def health_url(self, spec: LaunchSpec) -> str:
        return f"http://127.0.0.1:{spec.port}/"

    def endpoint(self, spec: LaunchSpec) -> str:
        return f"http://127.0.0.1:{spec.port}"


async def _supervise(tmp_path: Path, argv: list[str], on_state: Any) -> BackendProcess:
    spec = LaunchSpec(deployment="d", model_path=tmp_path / "m.gguf", port=free_port())
    client = httpx.AsyncClient(timeout=2)
    proc = BackendProcess(ScriptBackend(argv), spec, tmp_path / "deploy-d.log", on_state, client)  # type: ignore[arg-type]
    proc.start()
    return proc


def test_backend_that_cannot_start_is_given_up_with_the_reason(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_mod, "BACKOFF_START_S", 0.01)
    seen: list[tuple[str, str]] = []

    async def on_state(name: str, state: str, message: str, info: dict[str, int | None]) -> None:
        seen.append((state, message))

    async def scenario() -> BackendProcess:
        proc = await _supervise(tmp_path, ["sh", "-c", "echo cannot load model >&2; exit 3"], on_state)
        await _until(lambda: proc.gave_up, 60)
        return proc

    proc = asyncio.run(scenario())
    assert proc.state == "failed" and proc.failed_starts == MAX_FAILED_STARTS
    assert [s for s, _ in seen].count("starting") == MAX_FAILED_STARTS
    assert seen[-1][1].startswith(f"backend exited with code 3 during startup; gave up after {MAX_FAILED_STARTS} "
                                  "failed starts in a row (log: ")
    assert "cannot load model" in (tmp_path / "deploy-d.log").read_text()


def test_supervision_outlives_failing_state_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(process_mod, "HEALTH_INTERVAL_S", 0.2)
    monkeypatch.setattr(process_mod, "BACKOFF_START_S", 0.05)
    recorded: list[str] = []
    store_full = True

    async def on_state(name: str, state: str, message: str, info: dict[str, int | None]) -> None:
        if store_full:
            raise sqlite3.OperationalError("database or disk is full")
        recorded.append(state)

    async def scenario() -> tuple[BackendProcess, int]:
        nonlocal store_full
        proc = await _supervise(tmp_path, [sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
                                on_state)
        await _until(lambda: proc.ready)
        assert proc.proc is not None
        first_pid = proc.proc.pid
        proc.proc.send_signal(signal.SIGKILL)  # the backend dies while no state can be written
        await _until(lambda: proc.ready and proc.proc is not None and proc.proc.pid != first_pid)
        store_full = False
        await _until(lambda: recorded == ["ready"])  # reported again on a health check once the store takes it
        await proc.stop()
        await proc.client.aclose()
        return proc, first_pid

    proc, _ = asyncio.run(scenario())
    assert proc.restarts == 1 and recorded == ["ready", "stopped"]


# -- ENOSPC at the seams -------------------------------------------------------------------------------------
def test_model_import_on_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    starter = find_starter_gguf()
    assert starter is not None
    registry = Registry(StateStore(tmp_path / "state.db").open(), tmp_path / "models", [starter.parent])

    def full(src: Path, dst: Path, digest: Any) -> int:
        dst.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(registry_mod, "_copy_hashing", full)
    with pytest.raises(StorageFull, match=r"not imported, no space left in .*models \(94 MiB needed\)") as caught:
        registry.import_model(starter, "starter")
    assert caught.value.status == 507
    assert list((tmp_path / "models").iterdir()) == [] and registry.all() == []


def test_dataset_import_on_a_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from appliance.datasets import store as dataset_store_mod
    from appliance.testing.shopfloor import write_dataset

    source = write_dataset(tmp_path / "imports" / "shop.jsonl", 20)
    datasets = DatasetStore(StateStore(tmp_path / "state.db").open(), tmp_path / "datasets", [tmp_path / "imports"])

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(dataset_store_mod, "_write_file", full)
    with pytest.raises(DatasetStorageFull, match="not imported, no space left in"):
        datasets.import_dataset(source, "shop")
    assert list((tmp_path / "datasets").iterdir()) == [] and datasets.all() == []
