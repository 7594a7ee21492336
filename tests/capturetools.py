"""Captured answers in a real daemon, for the tests of the review loop (CLI, TUI, end to end): switch capture on
with a policy, ask through the official openai client, wait until the review queue lists the answers."""

from __future__ import annotations

import time
from typing import Any

import httpx
import openai

# Capture on, e-mail addresses and phone numbers masked in what is stored.
CAPTURE_POLICY: dict[str, Any] = {"guardrails": {"redact": {"capture": ["EMAIL", "PHONE"]}},
                                  "capture": {"enabled": True}}


def admin(url: str, admin_key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=60)


def set_policy(url: str, admin_key: str, deployment: str, policy: dict[str, Any] | None = None,
               reason: str = "capture for review") -> dict[str, Any]:
    """PUT the deployment's policy (default: CAPTURE_POLICY); returns the new PolicyVersion."""
    with admin(url, admin_key) as http:
        response = http.put(f"/api/v1/deployments/{deployment}/policy",
                            json={"policy": policy or CAPTURE_POLICY, "reason": reason})
    assert response.status_code == 200, response.text
    version: dict[str, Any] = response.json()
    return version


def captured_chats(url: str, admin_key: str, token: str, model: str, prompts: list[str], *, max_tokens: int = 12,
                   timeout: float = 120.0) -> list[str]:
    """Ask each prompt once with the official openai client (API key `token`), then wait until
    `GET /api/v1/captures` lists every answer (the writer stores them off the request path).

    Returns:
        The response ids (`chatcmpl-...`), in the order of `prompts`: the ids the review queue and
        `POST /v1/feedback` know them by.
    """
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=token, timeout=timeout)
    ids = [client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                          max_tokens=max_tokens, temperature=0, seed=1).id for prompt in prompts]
    deadline = time.monotonic() + timeout
    with admin(url, admin_key) as http:
        while True:
            listed = {i["response_id"] for i in http.get("/api/v1/captures", params={"limit": 1000}).json()["items"]}
            if listed >= set(ids):
                return ids
            if time.monotonic() > deadline:
                raise TimeoutError(f"not captured after {timeout:.0f}s: {sorted(set(ids) - listed)}")
            time.sleep(0.2)


def inference_key(url: str, admin_key: str, name: str) -> str:
    """A new inference key's token (the app's: feedback is accepted only from the key that asked)."""
    with admin(url, admin_key) as http:
        response = http.post("/api/v1/keys", json={"name": name, "scope": "inference"})
    assert response.is_success, response.text
    return str(response.json()["token"])
