"""Distillation, semantic dedup and the default embeddings model on one real daemon, through the API: the first
start deploys `minilm-embeddings`; semantic dedup drops paraphrases that MinHash keeps; the starter as teacher
answers a dataset's prompts into a new dataset version with lineage, and a fine-tune runs on it; the pre-flights
refuse what cannot run; a distillation killed with -9 (daemon and worker) resumes keeping its answers."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.registry.embeddings import EMBEDDINGS_DEPLOYMENT, EMBEDDINGS_MODEL, find_embeddings_gguf
from appliance.testing.daemon import wait_deployment
from appliance.testing.flow import finetune, poll_job, submit, wait_job
from tests.helpers import DaemonProcess

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_embeddings_gguf() is None, reason="make embeddings converts MiniLM first")]
STARTER = "smollm2-135m-instruct"
# (question, answer): lines 4, 6, 8 and 11 say again what lines 1, 2, 5 and 10 say, in other words (MiniLM
# cosine 0.94-0.98, word-shingle Jaccard 0.10-0.50); the rest differ (cosine below 0.6).
RECORDS = [
    ("How do I reset my password?", "Open Settings, choose Security and press Reset password."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("The conveyor belt stopped moving. What should I do?", "Switch it off at the isolator and call maintenance."),
    ("What is the way to reset my password?", "Open Settings, choose Security and press Reset password."),
    ("How do I export a report as PDF?", "Open the report, choose File and press Export as PDF."),
    ("Which city is France's capital?", "Paris is the capital of France."),
    ("What is the capital of Germany?", "The capital of Germany is Berlin."),
    ("How can I export a report to PDF?", "Open the report, choose File, then press Export as PDF."),
    ("The press is leaking oil. What should I do?", "Stop it, lock it out and call maintenance."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("How many legs do spiders have?", "Spiders have eight legs."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
]
PARAPHRASES = {4: 1, 6: 2, 8: 5, 11: 10}  # line -> the line it repeats


@dataclass
class Box:
    daemon: DaemonProcess

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return httpx.post(self.daemon.url + path, json=body, headers=self.daemon.admin_headers(), timeout=60)

    def write(self, name: str, records: list[tuple[str, str]]) -> str:
        path = self.daemon.state_dir / "imports" / name
        path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                         {"role": "assistant", "content": a}]}) + "\n"
                                for q, a in records))
        return str(path)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    daemon = DaemonProcess(tmp_path_factory.mktemp("distill") / "state", embeddings=True).start()
    box = Box(daemon)
    try:
        wait_deployment(daemon, STARTER)
        wait_deployment(daemon, EMBEDDINGS_DEPLOYMENT)
    except BaseException:
        daemon.stop()
        raise
    yield box
    assert box.daemon.stop() == 0, box.daemon.log()[-3000:]


def test_first_start_deploys_the_default_embeddings_model(box: Box) -> None:
    deployment = box.daemon.get(f"/api/v1/deployments/{EMBEDDINGS_DEPLOYMENT}").json()
    assert deployment["model"] == EMBEDDINGS_MODEL and deployment["params"]["embeddings"] is True, deployment
    model = box.daemon.get(f"/api/v1/models/{EMBEDDINGS_MODEL}").json()["model"]
    assert model["format"] == "gguf" and model["metadata"].get("default_embeddings") is True, model
    vectors = box.post("/v1/embeddings", {"model": EMBEDDINGS_DEPLOYMENT, "input": ["motor overheated", "hot motor"]})
    assert vectors.status_code == 200 and len(vectors.json()["data"][0]["embedding"]) == 384, vectors.text


def test_semantic_dedup_drops_paraphrases_that_minhash_keeps(box: Box) -> None:
    path = box.write("paraphrases.jsonl", RECORDS)
    plain = wait_job(box.daemon, submit(box.daemon, "/api/v1/datasets", {"path": path, "name": "faq-plain",
                                                                          "eval_fraction": 0.0}), 300)
    assert plain["result"]["duplicates_removed"] == 0 and plain["result"]["train"] == len(RECORDS)  # MinHash keeps
    job = wait_job(box.daemon, submit(box.daemon, "/api/v1/datasets", {
        "path": path, "name": "faq-semantic", "eval_fraction": 0.0, "semantic_dedup": True,
        "semantic_threshold": 0.9}), 300)
    assert job["result"]["semantic_duplicates"] == len(PARAPHRASES), job["result"]
    report = box.daemon.get("/api/v1/datasets/faq-semantic").json()["report"]
    pairs = {d["line"]: d for d in report["duplicates"] if d["kind"] == "semantic"}
    assert {line: d["duplicate_of"] for line, d in pairs.items()} == PARAPHRASES, report["duplicates"]
    assert all(d["similarity"] >= 0.9 and d["jaccard"] < 0.9 for d in pairs.values()), pairs  # MinHash missed them
    assert report["near_duplicates"] == 0 and report["train_count"] == len(RECORDS) - len(PARAPHRASES)
    summary = report["semantic_dedup"]
    assert summary["embedder"] == EMBEDDINGS_DEPLOYMENT and summary["records_compared"] == len(RECORDS)
    assert summary["dimensions"] == 384 and summary["threshold"] == 0.9, summary
    # The job's own key did the embedding, and is revoked now.
    keys = [k for k in box.daemon.get("/api/v1/keys").json() if k["name"].startswith(f"job-{job['id']}-")]
    assert len(keys) == 1 and keys[0]["scope"] == "inference" and keys[0]["revoked_at"], keys


def test_preflight_refuses_what_cannot_run(box: Box) -> None:
    box.write("few.jsonl", RECORDS[:3])
    wait_job(box.daemon, submit(box.daemon, "/api/v1/datasets", {"path": str(box.daemon.state_dir / "imports" /
                                                                              "few.jsonl"), "name": "few"}), 300)
    base = {"teacher": STARTER, "output_dataset": "out", "dataset": "few"}
    for params, status, param in [
        ({**base, "teacher": "nobody"}, 404, "params.teacher"),
        ({**base, "teacher": EMBEDDINGS_DEPLOYMENT}, 400, "params.teacher"),
        ({**base, "dataset": "missing"}, 404, "params.dataset"),
        ({**base, "dataset": None}, 400, "params.dataset"),
        ({**base, "concurrency": 16}, 400, "params.concurrency"),
        ({**base, "output_dataset": "Bad Name"}, 400, "params.output_dataset"),
        ({**base, "captured": True, "capture_filter": {"rated": "sideways"}}, 400, "params.capture_filter"),
    ]:
        refused = box.post("/api/v1/jobs", {"type": "distill", "params": params})
        assert refused.status_code == status and refused.json()["error"]["param"] == param, (params, refused.text)
    chat_embedder = box.post("/api/v1/datasets", {"path": "/x.jsonl", "name": "x", "semantic_dedup": True,
                                                  "embeddings_deployment": STARTER})
    assert chat_embedder.status_code == 400, chat_embedder.text
    assert chat_embedder.json()["error"]["param"] == "params.embeddings_deployment"


def test_distill_from_the_starter_then_fine_tune_the_student(box: Box) -> None:
    prompts = [(q, a) for i, (q, a) in enumerate(RECORDS, 1) if i not in PARAPHRASES][:5]
    wait_job(box.daemon, submit(box.daemon, "/api/v1/datasets", {"path": box.write("prompts.jsonl", prompts),
                                                                  "name": "prompts", "eval_fraction": 0.0}), 300)
    params = {"teacher": STARTER, "dataset": "prompts", "output_dataset": "distilled", "max_tokens": 24,
              "temperature": 0.7, "seed": 7, "keep_truncated": True, "eval_fraction": 0.2}
    job = wait_job(box.daemon, submit(box.daemon, "/api/v1/jobs", {"type": "distill", "params": params}), 600)
    result = job["result"]
    assert result["prompts"] == 5 and result["answers"] == 5 and result["answered_before"] == 0, result
    assert (result["dataset"], result["version"]) == ("distilled", 1) and result["train"] + result["eval"] >= 4
    assert job["params"]["resolved"]["concurrency"] >= 1 and result["teacher"]["model"] == STARTER
    record = box.daemon.get("/api/v1/datasets/distilled").json()
    rows = [json.loads(line) for line in (Path(record["path"]) / "train.jsonl").read_text().splitlines()]
    lineage = rows[0]["metadata"]["distillation"]
    assert lineage["job"] == job["id"] and lineage["teacher"]["deployment"] == STARTER
    assert lineage["prompt"]["source"] == "dataset" and lineage["prompt"]["dataset"] == "prompts"
    assert lineage["sampling"]["temperature"] == 0.7 and lineage["sampling"]["max_tokens"] == 24
    asked = {r["messages"][0]["content"] for r in rows}
    assert asked <= {q for q, _ in prompts} and all(r["messages"][-1]["role"] == "assistant" for r in rows)
    # The student: a fine-tune on the new version, accepted by pre-flight and run for a step.
    tuned = finetune(box.daemon, {"base_model": STARTER, "dataset": "distilled@1",
                                  "overrides": {"max_steps": 1, "checkpoint_every": 1}})
    assert tuned["state"] == "succeeded" and tuned["result"]["adapter"], tuned


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_distill_killed_with_9_resumes_keeping_its_answers(box: Box) -> None:
    questions = [(f"Name one thing a {thing} is used for.", "x") for thing in (
        "hammer", "ladder", "kettle", "compass", "needle", "bucket", "shovel", "lantern", "funnel", "ruler")]
    wait_job(box.daemon, submit(box.daemon, "/api/v1/datasets", {"path": box.write("things.jsonl", questions),
                                                                  "name": "things", "eval_fraction": 0.0}), 300)
    job_id = submit(box.daemon, "/api/v1/jobs", {"type": "distill", "params": {
        "teacher": STARTER, "dataset": "things", "output_dataset": "things-distilled", "max_tokens": 32,
        "concurrency": 1, "keep_truncated": True, "temperature": 0.0}})
    running = poll_job(box.daemon, job_id, lambda j: (j["progress"].get("step") or 0) >= 3, 300)
    assert running["state"] == "running", running
    log = box.daemon.state_dir / "jobs" / job_id / "answers.jsonl"
    box.daemon.kill9()  # the worker dies with it (PR_SET_PDEATHSIG)
    worker = running["pid"]
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    before = _lines(log)
    assert 3 <= len(before) < len(questions), before
    box.daemon = DaemonProcess(box.daemon.state_dir, port=box.daemon.port, embeddings=True).start()
    job = wait_job(box.daemon, job_id, 600)
    assert job["attempts"] == 2 and job["result"]["answered_before"] == len(before), job["result"]
    after = _lines(log)
    assert after[:len(before)] == before  # what was answered before the kill was kept, not asked again
    keys = [json.loads(line)["key"] for line in after]
    assert len(keys) == len(set(keys)) == len(questions), keys
    assert job["result"]["answers"] == len(questions) and job["result"]["records"] == len(questions)
    # The bootstrap ran once: the restart did not deploy the embeddings model again.
    creates = [a for a in box.daemon.get("/api/v1/audit", params={"limit": 500}).json()
               if a["action"] == "deployment.create" and a["target"] == EMBEDDINGS_DEPLOYMENT]
    assert len(creates) == 1, creates
