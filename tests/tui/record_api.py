"""Records the API responses the snapshot tests replay: run once against a real daemon.

    .venv/bin/python -m tests.tui.record_api --url http://127.0.0.1:8470 --state-dir STATE [--only review|trials]

It imports a small dataset (with defects, so the report has line-numbered errors), creates and revokes keys,
streams one chat answer, follows a short fine-tune halfway (its events give the Jobs screen a loss curve), then
saves every GET the screens make and cancels the fine-tune; then the Review screen's captured items
(tests/tui/record_review.py); last the trials laid over them (tests/tui/record_trials.py). The daemon takes no
NVML replay, so /api/v1/hardware and /api/v1/profiles are answered as the daemon would on a recorded RTX 4090
box: the same response models, filled by detection and profile selection over `RecordedNvml`. `--only review`
records the Review screen's part alone into the existing fixture, leaving the rest as it was; `--only trials`
the trials' overlay alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import httpx

from appliance.api.routes_system import HardwareResponse, ProfilesResponse
from appliance.backends.registry import backend_rules
from appliance.client import ADMIN_KEY_FILE
from appliance.hardware import RecordedNvml, detect_hardware
from appliance.hardware.nvml import sample_gpus
from appliance.profiles import load_profiles
from appliance.profiles.select import select_profile
from tests.helpers import HW_FIXTURES, REPO
from tests.tui import FIXTURE, TRIALS
from tests.tui.record_review import merge, record_review
from tests.tui.record_trials import overlay, record_trials

GPU_MACHINE = "linux_nvidia_1_rtx_4090_24564mib.json"
DATASET_LINES = [
    {"instruction": "What does the appliance serve?", "output": "Small language models, on this box."},
    {"instruction": "Which port does the API listen on?", "output": "8470 on loopback by default."},
    {"instruction": "How are API keys stored?", "output": "Only their SHA-256 hash is stored."},
    {"instruction": "What does the appliance serve?", "output": "Small language models, on this box."},
    {"instruction": "", "output": "An empty instruction."},
    "not json at all",
    {"instruction": "Where is the state kept?", "output": "In /var/lib/slm-appliance under systemd."},
    {"prompt": "Name a primary colour.", "completion": "Blue."},
    {"instruction": "Does it reach the internet?", "output": "No: everything it needs ships with it."},
    {"output": "No instruction here."},
    {"instruction": "How do I follow a job?", "output": "slm-appliance jobs watch JOB_ID"},
    {"instruction": "Who may call /api/v1?", "output": "Keys with the admin scope."},
]


def gpu_box(state_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    nvml = RecordedNvml.from_file(HW_FIXTURES / GPU_MACHINE)
    report = detect_hardware(state_dir, nvml)
    selection = select_profile(load_profiles(REPO / "profiles", backend_rules()), report)
    hardware = HardwareResponse(report=report, samples=sample_gpus(nvml), profile=selection.name,
                                profile_reason=selection.reason)
    profiles = ProfilesResponse(selected=selection.name, pinned=selection.pinned, reason=selection.reason,
                                tensor_parallel_size=selection.tensor_parallel_size, verdicts=selection.verdicts,
                                profiles=load_profiles(REPO / "profiles", backend_rules()))
    return hardware.model_dump(mode="json"), profiles.model_dump(mode="json")


def wait_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        job: dict[str, Any] = http.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise TimeoutError(job_id)


def follow_training(http: httpx.Client, steps: int) -> tuple[str, str]:
    """Start a fine-tune and record its event stream until it has trained `steps` steps (it keeps running:
    the recording shows it mid-run, as an operator would find it). Returns the job id and the raw events."""
    job = http.post("/api/v1/jobs", json={"type": "finetune", "params": {
        "base_model": "smollm2-135m-instruct", "dataset": "ops-faq",
        "overrides": {"max_steps": 2 * steps, "batch_size": 1, "max_seq_length": 64}}}).json()
    lines: list[str] = []
    with http.stream("GET", f"/api/v1/jobs/{job['id']}/events", timeout=None) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data:") and (json.loads(line[5:]).get("step") or 0) >= steps:
                break
    return job["id"], "\n".join(lines) + "\n\n"


def record(url: str, state_dir: Path) -> dict[str, Any]:
    token = (state_dir / ADMIN_KEY_FILE).read_text().strip()
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    source = state_dir / "imports" / "ops-faq.jsonl"
    source.parent.mkdir(exist_ok=True)
    source.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in DATASET_LINES))
    if http.get("/api/v1/datasets/ops-faq").status_code == 404:  # a second recording adds no version
        job = http.post("/api/v1/datasets", json={"path": str(source), "name": "ops-faq",
                                                  "base_model": "smollm2-135m-instruct"}).json()
        wait_job(http, job["id"])
    for name, scope in (("grafana-agent", "inference"), ("branch-app", "inference"), ("old-app", "inference")):
        http.post("/api/v1/keys", json={"name": name, "scope": scope})
    http.delete("/api/v1/keys/old-app")
    body = {"model": "smollm2-135m-instruct", "max_tokens": 48, "stream": True, "temperature": 0, "seed": 1,
            "messages": [{"role": "user", "content": "Name three primary colours."}]}
    chat = http.post("/v1/chat/completions", json=body).text
    deployment = http.get("/api/v1/deployments").json()[0]["name"]
    training_id, training_events = follow_training(http, steps=16)
    hardware, profiles = gpu_box(state_dir)
    responses: dict[str, Any] = {
        "GET /healthz": {"json": http.get("/healthz").json()},
        "GET /api/v1/hardware": {"json": hardware},
        "GET /api/v1/profiles": {"json": profiles},
        "POST /v1/chat/completions": {"sse": chat},
    }
    gets = ["/api/v1/models", "/api/v1/datasets", "/api/v1/jobs", "/api/v1/deployments", "/api/v1/keys",
            "/api/v1/audit", "/openapi.json", "/api/v1/usage", "/api/v1/job-kinds"]
    for path in gets:
        responses[f"GET {path}"] = {"json": http.get(path).json()}
    for model in responses["GET /api/v1/models"]["json"]:
        responses[f"GET /api/v1/models/{model['name']}"] = {"json": http.get(f"/api/v1/models/{model['name']}").json()}
    for j in responses["GET /api/v1/jobs"]["json"]:
        responses[f"GET /api/v1/jobs/{j['id']}"] = {"json": j}
        responses[f"GET /api/v1/jobs/{j['id']}/logs"] = {"text": http.get(f"/api/v1/jobs/{j['id']}/logs").text}
        events = training_events if j["id"] == training_id else http.get(f"/api/v1/jobs/{j['id']}/events").text
        responses[f"GET /api/v1/jobs/{j['id']}/events"] = {"sse": events}
    responses[f"GET /api/v1/deployments/{deployment}/logs"] = {
        "text": http.get(f"/api/v1/deployments/{deployment}/logs", params={"lines": 100}).text}
    responses["GET /metrics"] = {"text": http.get("/metrics").text}
    http.post(f"/api/v1/jobs/{training_id}/cancel")
    responses.update(record_review(http, url, token, deployment))
    # The snapshot clock: a minute after the last thing happened.
    return {"recorded_at": round(time.time() + 60), "responses": responses}


def _write(path: Path, data: dict[str, Any], state_dir: Path) -> None:
    text = json.dumps(data, indent=1, sort_keys=True)
    # Paths of the temporary state dir say nothing to a reader; a stable one keeps the snapshots stable.
    text = text.replace(str(state_dir), "/var/lib/slm-appliance").replace(str(REPO), "/opt/slm-appliance")
    path.parent.mkdir(exist_ok=True)
    path.write_text(text + "\n")
    print(f"wrote {path} ({len(data['responses'])} responses)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--only", choices=["review", "trials"],
                        help="record this screen's part into the existing fixture (trials: fixtures/trials.json)")
    args = parser.parse_args()
    token = (args.state_dir / ADMIN_KEY_FILE).read_text().strip()
    http = httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {token}"}, timeout=120)
    live = http.get("/api/v1/deployments").json()[0]["name"]
    if args.only == "review":
        data = json.loads(FIXTURE.read_text())
        merge(data, record_review(http, args.url, token, live))
        _write(FIXTURE, data, args.state_dir)
    elif args.only is None:
        _write(FIXTURE, record(args.url, args.state_dir), args.state_dir)
    # Last: the candidate it deploys must not show in api.json's lists.
    recorded_at = float(json.loads(FIXTURE.read_text())["recorded_at"])
    _write(TRIALS, overlay(record_trials(http, args.url, token, live, args.state_dir), recorded_at), args.state_dir)


if __name__ == "__main__":
    main()
