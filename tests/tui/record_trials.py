"""The Serving screen's trials, recorded (tests/tui/record_api.py runs it after the rest, or alone with
`--only trials`) into their own file, fixtures/trials.json: responses laid over api.json's by the snapshot and
functional tests of the trials (`Replay(FIXTURE, TRIALS)`), so every other snapshot keeps its render.

On the daemon serving the starter: a candidate deployment `smollm2-next` serving the starter quantized down to
Q2_K (a visibly worse version), a shadow of it on every request (seven prompts compared, an e-mail address in one:
masked in the stored pair), then on a quarter of them, and a canary of it on half the keys: traffic through new
keys (each rates its answers: one up, one down) until the live watch's verdict has both sides' figures. Then
every GET the Serving screen makes with them; times moved to api.json's clock."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import openai

from appliance.backends.llamacpp import find_llama_tool
from appliance.registry.starter import find_starter_gguf
from tests.trialtools import trials, until, wait_pairs
from tests.tui.record_review import POLICY

CANDIDATE, CANDIDATE_MODEL = "smollm2-next", "smol-q2k"  # listed after the starter
# The watch judges with a few requests; a regression is reported, not rolled back (the recording keeps it).
WATCH = {"window_s": 900, "min_requests": 4, "min_feedback": 2, "auto_rollback": False}
PROMPTS = ["Write to jane.doe@example.com that her order shipped.", "Name three primary colours.",
           "What is the capital of France?", "Count from one to five.", "Describe a lighthouse in one sentence.",
           "What do bees make?", "What is two plus two?"]
TIME_FIELDS = frozenset({"created_at", "updated_at", "started_at", "since", "until", "at"})


def _candidate(http: httpx.Client, state_dir: Path) -> None:
    """The starter at Q2_K, imported and deployed as CANDIDATE (kept when a previous run made them)."""
    if http.get(f"/api/v1/models/{CANDIDATE_MODEL}").status_code == 404:
        source, target = find_starter_gguf(), state_dir / "imports" / "smol-q2k.gguf"
        assert source is not None, "the starter model package is not installed"
        target.parent.mkdir(exist_ok=True)
        subprocess.run([str(find_llama_tool("llama-quantize")), "--allow-requantize", str(source), str(target),
                        "Q2_K"], check=True, capture_output=True, timeout=600)
        assert http.post("/api/v1/models", json={"path": str(target), "name": CANDIDATE_MODEL}).is_success
    if http.get(f"/api/v1/deployments/{CANDIDATE}").status_code == 404:
        assert http.post("/api/v1/deployments", json={"model": CANDIDATE_MODEL, "name": CANDIDATE,
                                                      "params": {"parallel_slots": 1}}).is_success
    until(lambda: http.get(f"/api/v1/deployments/{CANDIDATE}").json()["state"] == "ready", 300, "candidate ready")


def _rate(url: str, app: str, response_id: str, rating: str) -> None:
    """The app's thumbs on its answer. The capture writer stores the answer off the request path: feedback is a
    404 until it has."""
    body, headers = {"response_id": response_id, "rating": rating}, {"Authorization": f"Bearer {app}"}
    until(lambda: httpx.post(f"{url}/v1/feedback", json=body, headers=headers).is_success, 30, "feedback")


def _rated_traffic(http: httpx.Client, url: str, token: str, live: str, need: int) -> None:
    """New keys ask two prompts each and rate the answers (up, then down) until each side of the canary's
    verdict has `need` requests and one side two rated answers (the daemon counts the thumbs on answers the
    canary's candidate gave for the live side: the model captured is the live deployment's)."""
    def enough() -> bool:
        verdict = trials(url, token, live).get("watch") or {}
        sides = [verdict.get("candidate") or {}, verdict.get("baseline") or {}]
        return all(s.get("requests", 0) >= need for s in sides) and any(
            s.get("thumbs_up", 0) + s.get("thumbs_down", 0) >= 2 for s in sides)

    number = 0
    while not enough():
        number += 1
        assert number <= 40, trials(url, token, live).get("watch")
        app = http.post("/api/v1/keys", json={"name": f"canary-app-{number}", "scope": "inference"}).json()["token"]
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=app, max_retries=0, timeout=120)
        for rating, prompt in (("up", PROMPTS[number % 7]), ("down", PROMPTS[(number + 3) % 7])):
            answer = client.chat.completions.create(model=live, max_tokens=24, temperature=0, seed=0,
                                                    messages=[{"role": "user", "content": prompt}])
            _rate(url, app, answer.id, rating)
        time.sleep(1.5)  # the watch judges every watch_interval_s


def record_trials(http: httpx.Client, url: str, token: str, live: str, state_dir: Path) -> dict[str, Any]:
    """Set up the trials on `live` and record what the Serving screen reads (`http` carries the admin key
    `token`)."""
    _candidate(http, state_dir)
    assert http.put(f"/api/v1/deployments/{live}/policy",
                    json={"policy": {**POLICY, "watch": WATCH}, "reason": "watch the canary closely"}).is_success
    assert http.put(f"/api/v1/deployments/{live}/shadow", json={"candidate": CANDIDATE, "sample_rate": 1.0}
                    ).is_success
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0, timeout=120)
    for prompt in PROMPTS:
        client.chat.completions.create(model=live, max_tokens=32, temperature=0, seed=0,
                                       messages=[{"role": "user", "content": prompt}])
    wait_pairs(url, token, live, len(PROMPTS))
    # The candidate has one slot: a lighter sample leaves it room for the canary's share.
    assert http.put(f"/api/v1/deployments/{live}/shadow", json={"candidate": CANDIDATE, "sample_rate": 0.25}
                    ).is_success
    if trials(url, token, live)["canary"] is None:
        assert http.post(f"/api/v1/deployments/{live}/canary", json={"candidate": CANDIDATE, "weight": 0.5}
                         ).is_success
    _rated_traffic(http, url, token, live, need=6)
    paths = ["/api/v1/deployments", f"/api/v1/deployments/{live}/trials", f"/api/v1/deployments/{live}/policy",
             f"/api/v1/deployments/{CANDIDATE}/trials"]
    responses: dict[str, Any] = {f"GET {path}": {"json": http.get(path).json()} for path in paths}
    responses[f"GET /api/v1/deployments/{live}/shadow/pairs"] = {
        "json": http.get(f"/api/v1/deployments/{live}/shadow/pairs", params={"limit": 20}).json()}
    responses[f"GET /api/v1/deployments/{CANDIDATE}/logs"] = {
        "text": http.get(f"/api/v1/deployments/{CANDIDATE}/logs", params={"lines": 100}).text}
    responses["GET /metrics"] = {"text": http.get("/metrics").text}
    return responses


def shifted(value: Any, offset: float) -> Any:
    """`value` with every time field moved by `offset` seconds (to the clock of the recording it overlays)."""
    if isinstance(value, dict):
        return {k: (v + offset if k in TIME_FIELDS and isinstance(v, int | float) else shifted(v, offset))
                for k, v in value.items()}
    if isinstance(value, list):
        return [shifted(v, offset) for v in value]
    return value


def overlay(responses: dict[str, Any], recorded_at: float, recorded_now: float | None = None) -> dict[str, Any]:
    """The overlay file's content: `responses` with their times moved to the base recording's frozen clock
    `recorded_at` (a minute after they were recorded, as the base recording's own clock)."""
    offset = recorded_at - (recorded_now if recorded_now is not None else time.time() + 60)
    return {"recorded_at": recorded_at, "responses": shifted(responses, offset)}
