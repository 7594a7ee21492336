"""Fine-tune jobs on the starter model through the real daemon: a real LoRA run (loss and a golden answer
move), lineage in the registry, a standalone eval job, resume after kill -9, cancel, and the pre-flight refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.testing.flow import poll_job
from appliance.testing.shopfloor import write_dataset, write_golden
from appliance.training import checkpoints
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"


@dataclass
class Lab:
    daemon: DaemonProcess
    golden: Path

    def submit(self, params: dict[str, Any], job_type: str = "finetune") -> httpx.Response:
        return httpx.post(f"{self.daemon.url}/api/v1/jobs", headers=self.daemon.admin_headers(),
                          json={"type": job_type, "params": params}, timeout=30)

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self.daemon.get(f"/api/v1/jobs/{job_id}").json())

    def wait(self, job_id: str, until: Any, timeout: float = 600) -> dict[str, Any]:
        return poll_job(self.daemon, job_id, until, timeout)


def _final(job: dict[str, Any]) -> bool:
    return job["state"] in ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Any:
    daemon = DaemonProcess(tmp_path_factory.mktemp("finetune") / "state").start()
    imports = daemon.state_dir / "imports"
    dataset = write_dataset(imports / "shop.jsonl")
    golden = write_golden(imports / "golden.jsonl")
    lab = Lab(daemon, golden)
    response = httpx.post(f"{daemon.url}/api/v1/datasets", headers=daemon.admin_headers(),
                          json={"path": str(dataset), "name": "shop", "base_model": STARTER})
    assert response.status_code == 202, response.text
    assert lab.wait(response.json()["id"], _final, 180)["state"] == "succeeded"
    yield lab
    lab.daemon.stop()


def test_job_that_cannot_fit_is_refused_with_numbers(lab: Lab) -> None:
    huge = lab.submit({"base_model": STARTER, "dataset": "shop",
                       "overrides": {"batch_size": 64, "max_seq_length": 32768}})
    assert huge.status_code == 422, huge.text
    error = huge.json()["error"]
    assert error["code"] == "does_not_fit"
    assert "activations (64×32768 tokens)" in error["message"] and "RAM available" in error["message"]
    assert "GiB" in error["message"] and "does NOT fit" in error["message"]
    missing = lab.submit({"base_model": "no-such-model", "dataset": "shop"})
    assert missing.status_code == 404 and "no-such-model" in missing.json()["error"]["message"]
    bad = lab.submit({"base_model": STARTER, "dataset": "shop", "overrides": {"lora_r": 0}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "params.overrides.lora_r"
    assert bad.json()["error"]["message"] == "params.overrides.lora_r: Input should be greater than 0"
    for key, says in (("method", "set by the hardware profile"), ("lora_rank", "unknown setting")):
        refused = lab.submit({"base_model": STARTER, "dataset": "shop", "overrides": {key: "x"}})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == f"params.overrides.{key}"
        assert says in refused.json()["error"]["message"], refused.text
    taken = lab.submit({"base_model": STARTER, "dataset": "shop", "adapter_name": STARTER})
    assert taken.status_code == 409
    assert lab.daemon.get("/api/v1/jobs").json() == [j for j in lab.daemon.get("/api/v1/jobs").json()
                                                    if j["type"] == "dataset-import"]


def _progress_events(lab: Lab, job_id: str) -> list[dict[str, Any]]:
    events = []
    with httpx.stream("GET", f"{lab.daemon.url}/api/v1/jobs/{job_id}/events", headers=lab.daemon.admin_headers(),
                      timeout=900) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


@pytest.mark.timeout(1800)  # ~3 min alone; a box busy with other work can take several times that
def test_lora_run_lowers_eval_loss_and_moves_the_golden_answer(lab: Lab) -> None:
    response = lab.submit({"base_model": STARTER, "dataset": "shop", "golden": str(lab.golden),
                           "adapter_name": "shop-lora",
                           "overrides": {"max_steps": 24, "learning_rate": 1e-3, "checkpoint_every": 8}})
    assert response.status_code == 202, response.text
    events = _progress_events(lab, response.json()["id"])
    assert events[-1]["event"] == "state" and events[-1]["state"] == "succeeded", events[-1]
    training = [e for e in events if e["event"] == "progress" and e["phase"] == "training"]
    assert [e["step"] for e in training] == list(range(1, 25))
    assert all(e["total"] == 24 and e["loss"] > 0 and e["tokens_per_s"] > 0 and e["eta_s"] >= 0
               and e["epoch"] > 0 for e in training)
    assert all(e["learning_rate"] > 0 for e in training[:-1])  # linear decay reaches 0 at the last step
    result = events[-1]["result"]
    assert result["eval_loss_after"] < result["eval_loss_before"] * 0.5, result
    before, after = result["golden_before"], result["golden_after"]
    assert before.startswith("task 0/2") and not after.startswith("task 0/2"), (before, after)

    detail = lab.daemon.get("/api/v1/models/shop-lora").json()
    adapter = detail["model"]
    assert adapter["format"] == "peft" and adapter["kind"] == "adapter"
    assert [m["kind"] for m in detail["lineage"]] == ["hf-base", "base"]
    meta = adapter["metadata"]
    assert meta["dataset"]["name"] == "shop" and meta["dataset"]["version"] == 1
    assert meta["hyperparameters"]["lora_r"] == 16 and meta["hyperparameters"]["learning_rate"] == 1e-3
    assert meta["metrics"]["steps"] == 24 and len(meta["metrics"]["losses"]) == 24
    assert meta["golden"]["after"]["items"][0]["answer"].startswith("ACME-BOT")
    assert meta["code_version"] and meta["base_model"]["name"] == STARTER

    # The standalone eval job scores the registered adapter the same way and stores it with the model.
    evaluation = lab.submit({"model": "shop-lora", "golden": str(lab.golden), "dataset": "shop"}, "eval")
    assert evaluation.status_code == 202, evaluation.text
    done = lab.wait(evaluation.json()["id"], _final, 300)
    assert done["state"] == "succeeded", done
    assert done["result"]["summary"] == after
    assert done["result"]["eval_loss"] == pytest.approx(result["eval_loss_after"], rel=1e-3)
    stored = lab.daemon.get("/api/v1/models/shop-lora").json()["model"]["metadata"]["evaluations"]
    assert stored[-1]["summary"] == after


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.timeout(1800)
def test_kill_9_mid_training_resumes_from_checkpoint(lab: Lab) -> None:
    response = lab.submit({"base_model": STARTER, "dataset": "shop",
                           "overrides": {"max_steps": 10, "checkpoint_every": 3}})
    job_id = response.json()["id"]
    running = lab.wait(job_id, lambda j: (j["progress"]["step"] or 0) >= 5, 300)
    worker = running["pid"]
    lab.daemon.kill9()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(worker), "the training worker outlived the daemon"
    assert checkpoints.latest(lab.daemon.state_dir / "jobs" / job_id) is not None

    lab.daemon = DaemonProcess(lab.daemon.state_dir).start()
    steps_seen: list[int] = []
    job = lab.job(job_id)
    while not _final(job):
        if job["progress"]["phase"] == "training" and job["progress"]["step"] not in steps_seen:
            steps_seen.append(job["progress"]["step"])
        time.sleep(0.2)
        job = lab.job(job_id)
    assert job["state"] == "succeeded", job
    assert job["attempts"] == 2
    resumed = job["result"]["resumed_from_step"]
    assert resumed in (3, 6), job["result"]
    assert job["result"]["steps"] == 10 and len(job["result"]) > 0
    assert steps_seen and steps_seen[0] > resumed and steps_seen == sorted(steps_seen), steps_seen
    log = lab.daemon.get(f"/api/v1/jobs/{job_id}/logs").text
    assert log  # the worker's stderr from both attempts
    adapter = lab.daemon.get(f"/api/v1/models/{job['result']['adapter']}").json()["model"]
    assert len(adapter["metadata"]["metrics"]["losses"]) == 10  # losses before the kill were kept


def test_cancel_checkpoints_and_stops(lab: Lab) -> None:
    cli = [sys.executable, "-m", "appliance", "--state-dir", str(lab.daemon.state_dir)]
    env = {**os.environ, "SLM_PORT": str(lab.daemon.port)}
    submitted = subprocess.run([*cli, "jobs", "submit", "finetune", "--base-model", STARTER, "--dataset", "shop@1",
                                "--set", "max_steps=200", "--set", "checkpoint_every=50", "--no-wait", "--json"],
                               capture_output=True, text=True, env=env, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_id = json.loads(submitted.stdout)["id"]
    lab.wait(job_id, lambda j: (j["progress"]["step"] or 0) >= 1, 300)
    cancel = subprocess.run([*cli, "jobs", "cancel", job_id], capture_output=True, text=True, env=env, timeout=60)
    assert cancel.returncode == 0, cancel.stderr
    job = lab.wait(job_id, _final, 120)
    assert job["state"] == "cancelled", job
    assert checkpoints.latest(lab.daemon.state_dir / "jobs" / job_id) is not None
    assert job["progress"]["step"] < 200
    names = [m["name"] for m in lab.daemon.get("/api/v1/models").json()]
    assert not any(job_id[:8] in n for n in names)
