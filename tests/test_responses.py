"""`/v1/responses` with the official `openai` client against the real daemon and llama-server: text input with
instructions, a follow-up through previous_response_id (per key), the streamed events, a function-tool round
trip, and the deployment's guardrails and capture on it (the capture is keyed by the resp_ id the app got, and
the app's feedback uses it). file_search is tested with the vector stores (tests/retrieval)."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from appliance.testing.daemon import DaemonProcess
from tests.test_loop import new_key

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
WEATHER = [{"type": "function", "name": "get_weather", "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def _client(daemon: DaemonProcess, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=key or daemon.admin_key(), max_retries=0, timeout=120)


def test_text_instructions_and_a_follow_up(serving_daemon: DaemonProcess) -> None:
    client = _client(serving_daemon)
    first = client.responses.create(model=STARTER, input="What is the capital of France?",
                                    instructions="Answer in a few words.", max_output_tokens=24)
    assert first.id.startswith("resp_") and first.status in ("completed", "incomplete") and first.output_text
    assert first.usage is not None and first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    follow = client.responses.create(model=STARTER, input="And of Italy?", previous_response_id=first.id,
                                     max_output_tokens=24)
    assert follow.previous_response_id == first.id and follow.output_text
    assert follow.usage is not None and follow.usage.input_tokens > first.usage.input_tokens  # the earlier turn went in
    stranger = _client(serving_daemon, new_key(serving_daemon, "responses-stranger"))
    with pytest.raises(openai.NotFoundError):  # another key's turn is not found (nothing leaks)
        stranger.responses.create(model=STARTER, input="go on", previous_response_id=first.id)


def test_streamed_events_spell_the_final_text(serving_daemon: DaemonProcess) -> None:
    client = _client(serving_daemon)
    deltas: list[str] = []
    kinds: list[str] = []
    final = None
    # The raw events (the SDK's stream helper only finishes on response.completed; a cut answer ends with
    # response.incomplete, as OpenAI's does).
    for event in client.responses.create(model=STARTER, input="Name three colours.", max_output_tokens=24,
                                         stream=True):
        kinds.append(event.type)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response
    assert kinds[:2] == ["response.created", "response.in_progress"] and final is not None
    assert "response.output_item.added" in kinds and "response.output_text.done" in kinds
    assert "".join(deltas) == final.output_text and final.output_text
    with client.responses.stream(model=STARTER, input="Say yes.", max_output_tokens=200) as stream:
        assert stream.get_final_response().status == "completed"  # the SDK's helper on a whole answer


def test_function_tool_round_trip(serving_daemon: DaemonProcess) -> None:
    client = _client(serving_daemon)
    asked = client.responses.create(model=STARTER, input="What is the weather in Paris?", tools=WEATHER,
                                    tool_choice="required", max_output_tokens=48)
    calls = [item for item in asked.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather" and "city" in calls[0].arguments
    answered = client.responses.create(
        model=STARTER, previous_response_id=asked.id, tools=WEATHER, tool_choice="none", max_output_tokens=32,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"celsius": 21}'}])
    assert answered.output_text and answered.usage is not None
    alone = client.responses.create(model=STARTER, input="What is the weather in Paris?", max_output_tokens=1)
    assert alone.usage is not None  # the question alone, without the call and its result, is shorter
    assert answered.usage.input_tokens > alone.usage.input_tokens


def test_guardrails_and_capture_apply_to_responses(serving_daemon: DaemonProcess) -> None:
    policy = {"guardrails": {"redact": {"input": ["EMAIL"], "output": ["EMAIL"], "capture": ["EMAIL"]},
                             "deny": [{"name": "no-zebra", "keywords": ["project zebra"]}]},
              "capture": {"enabled": True}}
    assert httpx.put(f"{serving_daemon.url}/api/v1/deployments/{STARTER}/policy", json={"policy": policy},
                     headers=serving_daemon.admin_headers()).status_code == 200
    try:
        key = new_key(serving_daemon, "responses-app")
        client = _client(serving_daemon, key)
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(model=STARTER, input="Tell me about Project Zebra.")
        assert refused.value.response.json()["error"]["code"] == "content_policy_violation"
        answer = client.responses.create(model=STARTER, input="Repeat: write to ops@example.com today.",
                                         max_output_tokens=24)
        assert "ops@example.com" not in answer.output_text
        deadline = time.monotonic() + 20
        while serving_daemon.get(f"/api/v1/captures/{answer.id}").status_code != 200:
            assert time.monotonic() < deadline, "the response was not captured"
            time.sleep(0.2)
        item = serving_daemon.get(f"/api/v1/captures/{answer.id}").json()["item"]
        assert item["endpoint"] == "/v1/responses" and "[EMAIL]" in item["messages"][-1]["content"]
        feedback = httpx.post(f"{serving_daemon.url}/v1/feedback", headers={"Authorization": f"Bearer {key}"},
                              json={"response_id": answer.id, "rating": "up"})
        assert feedback.status_code == 200, feedback.text
    finally:
        httpx.put(f"{serving_daemon.url}/api/v1/deployments/{STARTER}/policy", json={"policy": {}},
                  headers=serving_daemon.admin_headers())
