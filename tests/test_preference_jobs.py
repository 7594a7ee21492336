"""The preference job kinds through a real daemon on the starter model: DPO from a small preference dataset
raises the held-out log-prob margin (chosen − rejected) and registers its adapter with lineage; KTO and ORPO run
end to end; pre-flight refuses the wrong record kind and shows the planner's preference step; a kill -9 of the
daemon mid-DPO resumes from the committed checkpoint. And a fine-tune asked to train data parallel on this CPU
(two ranks) is one supervised job: rank 0's progress reaches the API, the worker and both ranks are gone after."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from appliance.testing.flow import is_final, poll_job, submit
from appliance.testing.preference_set import kto_rows, preference_rows, write_rows
from appliance.testing.shopfloor import write_dataset
from appliance.training import checkpoints
from tests.faulttools import assert_consistent, children, wait_gone
from tests.helpers import DaemonProcess

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
# Short sequences (the pairs are ~60 tokens with the system prompt), two pairs a step.
SMALL = {"batch_size": 2, "max_seq_length": 128, "lora_r": 8, "checkpoint_every": 2}


@dataclass
class Lab:
    daemon: DaemonProcess

    def submit(self, job_type: str, params: dict[str, Any]) -> httpx.Response:
        return httpx.post(f"{self.daemon.url}/api/v1/jobs", headers=self.daemon.admin_headers(),
                          json={"type": job_type, "params": params}, timeout=60)

    def run(self, job_type: str, params: dict[str, Any], timeout: float = 1500) -> dict[str, Any]:
        response = self.submit(job_type, params)
        assert response.status_code == 202, response.text
        job = poll_job(self.daemon, response.json()["id"], timeout=timeout)
        assert job["state"] == "succeeded", job
        return job


def _import(daemon: DaemonProcess, name: str, path: str, kind: str) -> None:
    job_id = submit(daemon, "/api/v1/datasets", {"path": path, "name": name, "base_model": STARTER, "kind": kind,
                                                 "eval_fraction": 0.2})
    assert poll_job(daemon, job_id, timeout=300)["state"] == "succeeded"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("preference") / "state").start()
    imports = daemon.state_dir / "imports"
    _import(daemon, "pairs", str(write_rows(imports / "pairs.jsonl", preference_rows(40))), "preference")
    _import(daemon, "feedback", str(write_rows(imports / "feedback.jsonl", kto_rows(40))), "kto")
    _import(daemon, "shop", str(write_dataset(imports / "shop.jsonl", 20)), "sft")
    lab = Lab(daemon)
    yield lab
    lab.daemon.stop()


def test_preflight_takes_only_its_record_kind_and_plans_a_preference_step(lab: Lab) -> None:
    wrong = lab.submit("dpo", {"base_model": STARTER, "dataset": "shop"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "params.dataset"
    assert "holds sft records; this job takes preference datasets" in wrong.json()["error"]["message"]
    assert lab.submit("kto", {"base_model": STARTER, "dataset": "pairs"}).status_code == 400
    assert lab.submit("finetune", {"base_model": STARTER, "dataset": "pairs"}).status_code == 400
    huge = lab.submit("dpo", {"base_model": STARTER, "dataset": "pairs", "precompute_ref_log_probs": False,
                              "overrides": {"batch_size": 64, "max_seq_length": 32768}})
    assert huge.status_code == 422, huge.text
    message = huge.json()["error"]["message"]
    assert "activations (64×2×32768 tokens)" in message and "reference forward" in message, message
    assert lab.submit("dpo", {"base_model": STARTER, "dataset": "pairs", "beta": 0}).status_code == 400


def test_dpo_raises_the_held_out_margin(lab: Lab) -> None:
    job = lab.run("dpo", {"base_model": STARTER, "dataset": "pairs", "adapter_name": "pairs-dpo",
                          "overrides": {**SMALL, "max_steps": 8, "learning_rate": 5e-4}})
    result = job["result"]
    assert result["objective"] == "dpo" and result["steps"] == 8 and result["beta"] == 0.1
    print(f"\nheld-out margin (chosen - rejected, summed log-probs): before {result['margin_before']:.3f}, "
          f"after {result['margin_after']:.3f}")
    assert result["margin_after"] > result["margin_before"], result  # chosen − rejected, summed log-probs
    assert result["heldout_after"]["accuracy"] >= result["heldout_before"]["accuracy"]
    assert result["golden_before"] and result["golden_after"]
    detail = lab.daemon.get("/api/v1/models/pairs-dpo").json()
    assert [m["kind"] for m in detail["lineage"]] == ["hf-base", "base"]
    meta = detail["model"]["metadata"]
    assert meta["objective"] == "dpo" and meta["dataset"]["name"] == "pairs" and meta["dataset"]["kind"] == "preference"
    assert meta["objective_settings"] == {"beta": 0.1, "precompute_ref_log_probs": False}
    assert meta["metrics"]["margin_before"] == result["margin_before"] and len(meta["metrics"]["losses"]) == 8


def test_kto_and_orpo_run_end_to_end(lab: Lab) -> None:
    kto = lab.run("kto", {"base_model": STARTER, "dataset": "feedback", "overrides": {**SMALL, "max_steps": 2}})
    assert kto["result"]["objective"] == "kto" and kto["result"]["steps"] == 2
    assert kto["result"]["margin_before"] is not None and kto["result"]["margin_after"] is not None
    orpo = lab.run("orpo", {"base_model": STARTER, "dataset": "pairs", "overrides": {**SMALL, "max_steps": 2}})
    assert orpo["result"]["objective"] == "orpo" and "precompute_ref_log_probs" not in orpo["result"]


def test_kill_9_mid_dpo_resumes_from_its_checkpoint(lab: Lab) -> None:
    response = lab.submit("dpo", {"base_model": STARTER, "dataset": "pairs",
                                  "overrides": {**SMALL, "max_steps": 4, "checkpoint_every": 1}})
    job_id = response.json()["id"]
    job_dir = lab.daemon.state_dir / "jobs" / job_id
    deadline = time.monotonic() + 900
    while checkpoints.latest(job_dir) is None:
        job = lab.daemon.get(f"/api/v1/jobs/{job_id}").json()
        assert not is_final(job) and time.monotonic() < deadline, job
        time.sleep(0.05)
    workers = children(lab.daemon.proc.pid, "appliance")
    lab.daemon.kill9()
    wait_gone(workers)
    lab.daemon = DaemonProcess(lab.daemon.state_dir, port=lab.daemon.port).start()
    job = poll_job(lab.daemon, job_id, timeout=1200)
    assert job["state"] == "succeeded" and job["attempts"] == 2, job
    assert job["result"]["resumed_from_step"] >= 1 and job["result"]["steps"] == 4, job["result"]
    assert job["result"]["margin_before"] is not None  # measured by the first attempt, kept across the kill
    assert_consistent(lab.daemon.state_dir)


def test_a_two_process_fine_tune_is_one_supervised_job(lab: Lab) -> None:
    response = lab.submit("finetune", {"base_model": STARTER, "dataset": "shop", "overrides": {
        **SMALL, "batch_size": 1, "max_steps": 3, "processes": 2}})
    assert response.status_code == 202, response.text
    resolved = response.json()["params"]["resolved"]
    assert (resolved["training"]["processes"], resolved["training"]["layout"]) == (2, "ddp")
    assert "per process, DDP over 2 processes; RAM available ÷ 2" in resolved["memory_plan"]
    job_id = response.json()["id"]
    steps: list[int] = []
    job = lab.daemon.get(f"/api/v1/jobs/{job_id}").json()
    while not is_final(job):
        if job["progress"]["phase"] == "training" and job["progress"]["step"] not in steps:
            steps.append(job["progress"]["step"])
        time.sleep(0.2)
        job = lab.daemon.get(f"/api/v1/jobs/{job_id}").json()
    assert job["state"] == "succeeded", job
    assert steps and steps == sorted(steps) and steps[-1] <= 3, steps  # rank 0's lines, relayed by the runner
    assert job["result"]["steps"] == 3 and job["result"]["eval_loss_after"] is not None
    assert not children(lab.daemon.proc.pid, "appliance.jobs.worker")
