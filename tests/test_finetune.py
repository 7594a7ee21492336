"""Fine-tune jobs on the starter model through the real daemon: the pre-flight refusal and cancel. The real LoRA
run (loss, golden answer, lineage, standalone eval) is tests/e2e's shared fine-tune; kill -9 and resume is
tests/test_faults.py's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
