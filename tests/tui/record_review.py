"""The Review screen's part of the recording (tests/tui/record_api.py runs it, or alone with `--only review`):
capture switched on for the starter deployment, six questions from an app (an e-mail address and a phone number
among them, masked before they are stored), the app's feedback on three answers, and a reviewer's decisions
(one accepted, one edited, one rejected; the rest pending). Then every GET the Review screen makes."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.capturetools import captured_chats

POLICY: dict[str, Any] = {
    "guardrails": {"limits": {"max_answer_tokens": 256},
                   "deny": [{"name": "no-credentials", "keywords": ["password", "api key"]}],
                   "redact": {"input": [], "output": ["EMAIL"], "capture": ["EMAIL", "PHONE", "IBAN"]}},
    "capture": {"enabled": True, "sample_rate": 1.0, "retention_days": 30},
}
QUESTIONS = [
    "My address is jane.doe@example.com: where is my order 1182?",
    "Call me back on +1 415 555 0100 about the invoice.",
    "What is two plus two?",
    "Name three primary colours.",
    "How do I restart the appliance?",
    "Translate 'good morning' into French.",
]
# (question index, feedback body without the response id)
FEEDBACK = [(2, {"rating": "down", "correction": [{"role": "assistant", "content": "Four."}],
                 "comment": "wrong sum"}),
            (3, {"rating": 5, "comment": "clear", "tags": ["colours"]}),
            (5, {"rating": 2, "comment": "too long", "tags": ["translation"]})]
# (question index, decision)
DECISIONS = [(3, {"action": "accept"}),
             (2, {"action": "edit", "note": "fixed the sum",
                  "messages": [{"role": "user", "content": QUESTIONS[2]},
                               {"role": "assistant", "content": "Two plus two is four."}]}),
             (5, {"action": "reject", "note": "off topic"})]
TIME_FIELDS = ("created_at", "decided_at")


def record_review(http: httpx.Client, url: str, token: str, deployment: str) -> dict[str, Any]:
    """Make the captured items on `deployment` and record what the Review screen reads: the queue, each item and
    the deployment's policy. `http` carries the admin key `token`."""
    assert http.put(f"/api/v1/deployments/{deployment}/policy",
                    json={"policy": POLICY, "reason": "review what the support app gets"}).is_success
    app = http.post("/api/v1/keys", json={"name": "support-app", "scope": "inference"}).json()["token"]
    ids = captured_chats(url, token, app, deployment, QUESTIONS, max_tokens=32)
    for index, body in FEEDBACK:
        assert httpx.post(f"{url}/v1/feedback", json={"response_id": ids[index], **body},
                          headers={"Authorization": f"Bearer {app}"}).is_success
    for index, decision in DECISIONS:
        assert http.post(f"/api/v1/captures/{ids[index]}/review", json=decision).is_success
    responses: dict[str, Any] = {"GET /api/v1/captures": {"json": http.get("/api/v1/captures").json()},
                                 f"GET /api/v1/deployments/{deployment}/policy": {
                                     "json": http.get(f"/api/v1/deployments/{deployment}/policy").json()}}
    for response_id in ids:
        responses[f"GET /api/v1/captures/{response_id}"] = {"json": http.get(f"/api/v1/captures/{response_id}").json()}
    return responses


def shifted(value: Any, offset: float) -> Any:
    """`value` with every created_at and decided_at moved by `offset` seconds: merged into an older recording,
    the items keep their ages relative to the recording's frozen clock."""
    if isinstance(value, dict):
        return {k: (v + offset if k in TIME_FIELDS and isinstance(v, int | float) else shifted(v, offset))
                for k, v in value.items()}
    if isinstance(value, list):
        return [shifted(v, offset) for v in value]
    return value


def merge(recording: dict[str, Any], responses: dict[str, Any], recorded_now: float | None = None) -> None:
    """Put `responses` into an existing recording, their times moved to its clock."""
    offset = float(recording["recorded_at"]) - (recorded_now if recorded_now is not None else time.time() + 60)
    recording["responses"].update(shifted(responses, offset))
