"""The OpenAI-compatible gateway end to end: the official `openai` client, the real daemon, a real
llama-server serving the starter model."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from appliance.testing.daemon import wait_deployment
from tests.helpers import backend_headers

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def _client(daemon, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=key or daemon.admin_key(), max_retries=0, timeout=60)


def _inference_key(daemon, name: str) -> str:
    response = httpx.post(f"{daemon.url}/api/v1/keys", json={"name": name, "scope": "inference"},
                          headers=daemon.admin_headers())
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def test_chat_non_streaming(serving_daemon):
    key = _inference_key(serving_daemon, "chat-app")
    answer = _client(serving_daemon, key).chat.completions.create(
        model=STARTER, messages=QUESTION, max_tokens=24, temperature=0)
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert answer.model == STARTER


def test_chat_streaming_arrives_in_pieces(serving_daemon):
    stream = _client(serving_daemon).chat.completions.create(
        model=STARTER, messages=QUESTION, max_tokens=24, temperature=0, stream=True)
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 3
    assert "".join(pieces).strip()


def test_streaming_matches_non_streaming_greedy(serving_daemon):
    client = _client(serving_daemon)
    plain = client.chat.completions.create(model=STARTER, messages=QUESTION, max_tokens=16, temperature=0)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=STARTER, messages=QUESTION, max_tokens=16, temperature=0, stream=True) if c.choices)
    assert streamed == plain.choices[0].message.content


def test_text_completions(serving_daemon):
    answer = _client(serving_daemon).completions.create(model=STARTER, prompt="The sky is", max_tokens=8,
                                                        temperature=0)
    assert answer.choices[0].text


def test_models_list(serving_daemon):
    models = _client(serving_daemon).models.list()
    assert [m.id for m in models.data] == [STARTER]
    assert _client(serving_daemon).models.retrieve(STARTER).id == STARTER


def test_unknown_model_is_404_not_a_fallback(serving_daemon):
    with pytest.raises(openai.NotFoundError) as info:
        _client(serving_daemon).chat.completions.create(model="gpt-4", messages=QUESTION)
    assert info.value.body["code"] == "model_not_found"


def test_no_key_and_bad_key_are_401(serving_daemon):
    with pytest.raises(openai.AuthenticationError):
        _client(serving_daemon, "slm_0000_wrong").chat.completions.create(model=STARTER, messages=QUESTION)
    bare = httpx.post(f"{serving_daemon.url}/v1/chat/completions", json={"model": STARTER, "messages": QUESTION})
    assert bare.status_code == 401 and bare.json()["error"]["type"] == "authentication_error"


def test_inference_key_gets_403_on_control_api(serving_daemon):
    key = _inference_key(serving_daemon, "app-403")
    response = httpx.get(f"{serving_daemon.url}/api/v1/deployments", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize(("body", "status", "code"), [
    (b"{not json", 400, "invalid_json"),
    (b"[1, 2]", 400, "invalid_json"),
    (json.dumps({"messages": QUESTION}).encode(), 400, "invalid_parameter"),
    (json.dumps({"model": STARTER, "messages": []}).encode(), 400, "invalid_parameter"),
    (json.dumps({"model": STARTER, "messages": [{"role": "wizard", "content": "x"}]}).encode(), 400,
     "invalid_parameter"),
    (json.dumps({"model": STARTER, "messages": QUESTION, "temperature": 9}).encode(), 400, "invalid_parameter"),
])
def test_malformed_requests_get_json_4xx(serving_daemon, body, status, code):
    response = httpx.post(f"{serving_daemon.url}/v1/chat/completions", content=body,
                          headers={**serving_daemon.admin_headers(), "content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_metrics_count_requests_tokens_and_ttft(serving_daemon):
    _client(serving_daemon).chat.completions.create(model=STARTER, messages=QUESTION, max_tokens=4, stream=True)
    text = serving_daemon.get("/metrics").text
    assert f'slm_requests_total{{deployment="{STARTER}",endpoint="chat",status="ok"}}' in text
    assert f'slm_time_to_first_token_seconds_count{{deployment="{STARTER}"}}' in text
    assert f'slm_tokens_total{{deployment="{STARTER}",direction="out"}}' in text
    assert f'slm_backend_restarts_total{{deployment="{STARTER}"}} 0.0' in text
    # llama-server's own metrics, folded in under slm_backend_ with the deployment as a label.
    assert "# TYPE slm_backend_llamacpp_prompt_tokens_total counter" in text
    assert f'slm_backend_llamacpp_prompt_tokens_total{{deployment="{STARTER}"}}' in text


def test_client_disconnect_frees_the_backend_slot(serving_daemon):
    port = serving_daemon.get(f"/api/v1/deployments/{STARTER}").json()["port"]
    backend = backend_headers(serving_daemon, STARTER)
    with httpx.stream("POST", f"{serving_daemon.url}/v1/chat/completions", headers=serving_daemon.admin_headers(),
                      json={"model": STARTER, "messages": QUESTION, "max_tokens": 2000, "stream": True,
                            "ignore_eos": True}, timeout=60) as response:
        for _ in response.iter_raw():
            break  # first chunk, then hang up
    import time

    deadline = time.monotonic() + 10
    busy = True
    while time.monotonic() < deadline and busy:
        slots = httpx.get(f"http://127.0.0.1:{port}/slots", headers=backend, timeout=5).json()
        busy = any(s.get("is_processing") for s in slots)
        time.sleep(0.2)
    assert not busy, "backend kept generating for a client that left"


def test_admin_actions_are_audited(serving_daemon):
    secret = _inference_key(serving_daemon, "audited")
    entries = serving_daemon.get("/api/v1/audit").json()
    assert any(e["action"] == "key.create" and e["target"] == "audited" for e in entries)
    assert any(e["action"] == "deployment.create" and e["target"] == STARTER for e in entries)
    # The key's secret never reaches the audit log (field names such as daily_token_quota may).
    assert all(secret not in json.dumps(e) for e in entries)
    assert all(not re.search(r'"token"\s*:', json.dumps(e["detail"])) for e in entries)


def test_deployment_logs_endpoint(serving_daemon):
    logs = serving_daemon.get(f"/api/v1/deployments/{STARTER}/logs", params={"lines": 50})
    assert logs.status_code == 200 and "start:" in serving_daemon.get(
        f"/api/v1/deployments/{STARTER}/logs", params={"lines": 10000}).text


def test_wait_helper_reports_state(serving_daemon):
    assert wait_deployment(serving_daemon, STARTER)["backend"] == "llamacpp"


def test_cli_lists_and_shows_through_the_daemon(serving_daemon):
    import os
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "appliance", "--state-dir", str(serving_daemon.state_dir), *args],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "SLM_PORT": str(serving_daemon.port)})

    listed = json.loads(cli("deploy", "list", "--json").stdout)
    assert [d["name"] for d in listed] == [STARTER] and listed[0]["state"] == "ready"
    table = cli("models", "list").stdout
    assert STARTER in table and "Q4_1" in table
    assert "start:" in cli("deploy", "logs", STARTER, "--lines", "500").stdout
    missing = cli("deploy", "show", "nope")
    assert missing.returncode == 1 and "404: no deployment named 'nope'" in missing.stderr
