"""kill -9 of a real daemon during a model import, a dataset import, a fine-tune, an export and a blue/green
switch: after the restart nothing is corrupt or half-visible (every model and dataset whole or absent, no staging
or temp file left, quick_check ok) and the jobs resume from where they were, counted against their crash cap."""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.registry.starter import find_starter_gguf
from appliance.testing.daemon import wait_deployment
from appliance.testing.flow import is_final, poll_job, submit
from appliance.testing.shopfloor import write_dataset, write_golden
from appliance.training import checkpoints
from tests.deploytools import import_model, post, requantize_starter
from tests.faulttools import assert_consistent, children, wait_gone
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"


@dataclass
class Lab:
    daemon: DaemonProcess
    imports: Path

    def kill9_and_restart(self) -> None:
        """SIGKILL the daemon (its children die with it), then start a new one on the same state."""
        workers = children(self.daemon.proc.pid, "appliance") + children(self.daemon.proc.pid, "llama-server")
        self.daemon.kill9()
        wait_gone(workers)
        self.daemon = DaemonProcess(self.daemon.state_dir, port=self.daemon.port).start()

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.daemon.get(f"/api/v1/jobs/{job_id}").json())

    def kill_when(self, job_id: str, ready: Callable[[dict[str, Any]], bool], timeout: float = 600) -> dict[str, Any]:
        """Poll the job fast; kill -9 the daemon the moment `ready` holds. Returns the job as last seen."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if ready(job) or is_final(job):
                self.kill9_and_restart()
                return job
            time.sleep(0.05)
        raise TimeoutError(f"job {job_id}: {self.job(job_id)}")


def _in_background(call: Callable[[], object]) -> None:
    """Run `call` in a thread; the daemon it talks to is about to be killed, so its connection error is expected."""
    def run() -> None:
        with contextlib.suppress(httpx.HTTPError):
            call()

    threading.Thread(target=run, daemon=True).start()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("faults") / "state").start()
    imports = daemon.state_dir / "imports"
    write_dataset(imports / "shop.jsonl", 40)
    write_golden(imports / "golden.jsonl")
    lab = Lab(daemon, imports)
    yield lab
    lab.daemon.stop()


def test_kill_during_model_import(lab: Lab) -> None:
    starter = find_starter_gguf()
    assert starter is not None
    shutil.copy(starter, lab.imports / "copy.gguf")
    models = lab.daemon.state_dir / "models"
    before = {p.name for p in models.iterdir()}
    _in_background(lambda: httpx.post(f"{lab.daemon.url}/api/v1/models", headers=lab.daemon.admin_headers(),
                                      json={"path": str(lab.imports / "copy.gguf"), "name": "copy"}, timeout=60))
    deadline = time.monotonic() + 30
    while not {p.name for p in models.iterdir()} - before and time.monotonic() < deadline:
        time.sleep(0.001)  # the staging folder appears: the copy is under way
    lab.kill9_and_restart()
    assert_consistent(lab.daemon.state_dir)
    names = [m["name"] for m in lab.daemon.get("/api/v1/models").json()]
    if "copy" not in names:  # killed mid-copy or before the commit: gone whole, and the name is free again
        assert import_model(lab.daemon, lab.imports / "copy.gguf", "copy")["name"] == "copy"
    assert_consistent(lab.daemon.state_dir)


def test_kill_during_dataset_import(lab: Lab) -> None:
    job_id = submit(lab.daemon, "/api/v1/datasets", {"path": str(lab.imports / "shop.jsonl"), "name": "shop",
                                                     "base_model": STARTER})
    lab.kill_when(job_id, lambda j: j["state"] == "running")
    job = poll_job(lab.daemon, job_id, timeout=300)
    assert job["state"] == "succeeded" and job["interruptions"] == 1, job
    assert [d["version"] for d in lab.daemon.get("/api/v1/datasets").json() if d["name"] == "shop"] == [1]
    assert_consistent(lab.daemon.state_dir)


def test_kill_during_fine_tune_resumes(lab: Lab) -> None:
    # As small as a resumable run gets: rank 4, one sequence a step, 3 steps, a checkpoint after each; the built-in
    # golden set only (the golden file is the switch's, below). The kill lands once step 1's checkpoint is on disk.
    job_id = submit(lab.daemon, "/api/v1/jobs", {"type": "finetune", "params": {
        "base_model": STARTER, "dataset": "shop", "adapter_name": "shop-lora",
        "overrides": {"max_steps": 3, "checkpoint_every": 1, "batch_size": 1, "lora_r": 4}}})
    job_dir = lab.daemon.state_dir / "jobs" / job_id
    seen = lab.kill_when(job_id, lambda j: (j["progress"]["step"] or 0) >= 1
                         and checkpoints.latest(job_dir) is not None, 900)
    assert seen["state"] == "running", seen
    requeued = lab.job(job_id)
    assert requeued["interruptions"] == 1 and "resuming from the last checkpoint" in requeued["progress"]["message"]
    steps_seen: list[int] = []  # the training steps the resumed attempt reports, in order

    def ended(job: dict[str, Any]) -> bool:
        step = job["progress"]["step"]
        if job["progress"]["phase"] == "training" and step not in steps_seen:
            steps_seen.append(step)
        return is_final(job)

    job = poll_job(lab.daemon, job_id, ended, timeout=900)
    assert job["state"] == "succeeded" and job["attempts"] == 2, job
    resumed = job["result"]["resumed_from_step"]
    assert resumed >= 1 and job["result"]["steps"] == 3, job["result"]
    # The resumed attempt goes on after its checkpoint, never back over a step it had done.
    assert steps_seen == sorted(steps_seen) and all(step > resumed for step in steps_seen), (resumed, steps_seen)
    assert lab.daemon.get(f"/api/v1/jobs/{job_id}/logs").text  # the worker's stderr of both attempts
    adapter = lab.daemon.get(f"/api/v1/models/{job['result']['adapter']}").json()["model"]
    assert len(adapter["metadata"]["metrics"]["losses"]) == 3  # the losses before the kill were kept
    assert_consistent(lab.daemon.state_dir)


def test_kill_during_export_registration_completes_the_set_once(lab: Lab) -> None:
    # The rerun redoes every step before the registration, so the gate is kept short (4 tokens a prompt). The
    # kill lands once the first artifact is committed, so the rerun has to find it and not register it again.
    job_id = submit(lab.daemon, "/api/v1/jobs", {"type": "export", "params": {
        "adapter": "shop-lora", "variants": ["Q8_0"], "name_prefix": "shop", "max_new_tokens": 4}})
    first: dict[str, str] = {}

    def registered_one(job: dict[str, Any]) -> bool:
        if job["progress"]["phase"] != "registering":
            return False
        first.update({m["name"]: m["id"] for m in lab.daemon.get("/api/v1/models").json()
                      if m["name"] == "shop-merged"})
        return bool(first)

    seen = lab.kill_when(job_id, registered_one, 900)
    job = poll_job(lab.daemon, job_id, timeout=900)
    assert job["state"] == "succeeded", job
    if seen["state"] == "running":
        assert job["interruptions"] == 1 and job["attempts"] == 2, job
    models = lab.daemon.get("/api/v1/models").json()
    names = [m["name"] for m in models]
    wanted = ["shop-merged", "shop-f16", "shop-q8_0", "shop-lora-gguf"]
    assert [n for n in names if n in wanted] == [n for n in names if n.startswith("shop-") and n != "shop-lora"]
    assert sorted(n for n in names if n in wanted) == sorted(wanted)  # each once, none half-registered
    if first:  # what the killed attempt committed is the row the set kept, not a second import
        assert {m["name"]: m["id"] for m in models if m["name"] == "shop-merged"} == first
    assert not (lab.daemon.state_dir / "jobs" / job_id / "export").exists()  # the work folder went
    assert_consistent(lab.daemon.state_dir)


def test_kill_during_blue_green_switch(lab: Lab, tmp_path: Path) -> None:
    import_model(lab.daemon, requantize_starter(tmp_path / "starter-q8.gguf", "Q8_0"), "starter-q8")
    live = wait_deployment(lab.daemon, STARTER)
    _in_background(lambda: post(lab.daemon, f"/api/v1/deployments/{STARTER}/switch",
                                {"model": "starter-q8", "golden": str(lab.imports / "golden.jsonl"), "force": True}))
    deadline = time.monotonic() + 60
    while len(children(lab.daemon.proc.pid, "llama-server")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the candidate runs beside the live backend
    assert len(children(lab.daemon.proc.pid, "llama-server")) == 2, lab.daemon.log()[-2000:]
    lab.kill9_and_restart()
    after = wait_deployment(lab.daemon, STARTER)
    history = lab.daemon.get(f"/api/v1/deployments/{STARTER}/history").json()
    assert after["model"] in (STARTER, "starter-q8") and history[0]["model_name"] == after["model"], history
    assert after["pid"] != live["pid"]
    assert children(lab.daemon.proc.pid, "llama-server") == [after["pid"]]  # one backend, nothing orphaned
    answer = post(lab.daemon, "/v1/chat/completions", {"model": STARTER, "max_tokens": 4,
                                                        "messages": [{"role": "user", "content": "Hi"}]})
    assert answer.status_code == 200, answer.text
    assert_consistent(lab.daemon.state_dir)
