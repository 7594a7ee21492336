"""What factory and branch apps integrate with, through the official `openai` client against the real daemon
and llama-server: tool calls, embeddings, several choices, request ids, usage per key and daily quotas."""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator

import httpx
import openai
import pytest

from appliance.testing.daemon import DaemonProcess, wait_deployment
from tests.deploytools import import_model, minilm_gguf

pytestmark = pytest.mark.slow
STARTER = "smollm2-135m-instruct"
EMBED = "starter-embeddings"
WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    proc = DaemonProcess(tmp_path_factory.mktemp("apps") / "state",
                         env={"SLM_RATE_LIMIT_PER_MINUTE": "100000"}).start()
    try:
        wait_deployment(proc, STARTER)
        import_model(proc, minilm_gguf(proc.state_dir.parent / "all-minilm-l6-v2.f16.gguf"), "all-minilm-l6-v2")
        created = httpx.post(f"{proc.url}/api/v1/deployments", headers=proc.admin_headers(), timeout=60,
                             json={"model": "all-minilm-l6-v2", "name": EMBED,
                                   "params": {"embeddings": True, "parallel_slots": 2, "context_length": 512}})
        assert created.status_code == 201, created.text
        wait_deployment(proc, EMBED)
    except BaseException:
        proc.stop()
        raise
    yield proc
    assert proc.stop() == 0, proc.log()[-3000:]


def _client(daemon: DaemonProcess, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{daemon.url}/v1", api_key=key or daemon.admin_key(), max_retries=0, timeout=120)


def _key(daemon: DaemonProcess, name: str, quota: int | None = None) -> str:
    response = httpx.post(f"{daemon.url}/api/v1/keys", headers=daemon.admin_headers(),
                          json={"name": name, "scope": "inference", "daily_token_quota": quota})
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def test_required_tool_call_is_parsed_by_the_sdk(daemon: DaemonProcess) -> None:
    answer = _client(daemon).chat.completions.create(model=STARTER, messages=ASK, tools=WEATHER,
                                                     tool_choice="required", max_tokens=64, temperature=0)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    assert choice.message.content is None


def test_named_tool_choice_and_streamed_tool_call_deltas(daemon: DaemonProcess) -> None:
    stream = _client(daemon).chat.completions.create(
        model=STARTER, messages=ASK, tools=WEATHER, max_tokens=64, temperature=0, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}, stream_options={"include_usage": True})
    names, arguments, finish, usage = [], "", None, None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                names.append(delta.function.name)
                arguments += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert names == ["get_weather"] and finish == "tool_calls"
    assert "city" in json.loads(arguments)
    assert usage is not None and usage.completion_tokens > 0


def test_tool_result_round_trip_and_auto_choice(daemon: DaemonProcess) -> None:
    """The app runs the tool and sends the result back: the follow-up is answered (a reply or a new call)."""
    client = _client(daemon)
    first = client.chat.completions.create(model=STARTER, messages=ASK, tools=WEATHER, tool_choice="required",
                                           max_tokens=64, temperature=0).choices[0].message
    call = first.tool_calls[0]
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
               {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 18, "sky": "clear"}'}]
    follow = client.chat.completions.create(model=STARTER, messages=history, tools=WEATHER, tool_choice="auto",
                                            max_tokens=64, temperature=0).choices[0]
    assert follow.finish_reason in ("stop", "tool_calls", "length")
    assert follow.message.content or follow.message.tool_calls
    # tool_choice "none": an answer in words from the result (the call and result rendered for the template)
    final = client.chat.completions.create(model=STARTER, messages=history, tools=WEATHER, tool_choice="none",
                                           max_tokens=32, temperature=0).choices[0].message
    assert final.content and not final.tool_calls


def test_bad_tools_are_400_naming_the_reason(daemon: DaemonProcess) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        _client(daemon).chat.completions.create(model=STARTER, messages=ASK, tools=WEATHER, max_tokens=8,
                                                tool_choice={"type": "function", "function": {"name": "nope"}})
    assert "not in tools" in str(raised.value)


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embeddings_rank_similar_texts_closer(daemon: DaemonProcess) -> None:
    texts = ["The conveyor belt motor overheated and stopped.", "The belt drive motor got too hot and halted.",
             "Our bakery sells fresh croissants every morning."]
    result = _client(daemon).embeddings.create(model=EMBED, input=texts)
    vectors = [d.embedding for d in sorted(result.data, key=lambda d: d.index)]
    assert len(vectors) == 3 and len(vectors[0]) == 384  # all-MiniLM-L6-v2's size
    assert _cosine(vectors[0], vectors[1]) > _cosine(vectors[0], vectors[2])
    assert result.usage.prompt_tokens > 0


def test_embeddings_base64_string_and_token_input(daemon: DaemonProcess) -> None:
    client = _client(daemon)
    floats = client.embeddings.create(model=EMBED, input="motor overheated").data[0].embedding
    raw = httpx.post(f"{daemon.url}/v1/embeddings", headers=daemon.admin_headers(), timeout=60,
                     json={"model": EMBED, "input": "motor overheated", "encoding_format": "base64"}).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(packed) // 4}f", packed)
    assert _cosine(list(decoded), floats) > 0.999
    tokens = client.embeddings.create(model=EMBED, input=[[1, 2, 3, 4]]).data[0].embedding
    assert len(tokens) == len(floats)
    empty = httpx.post(f"{daemon.url}/v1/embeddings", headers=daemon.admin_headers(),
                       json={"model": EMBED, "input": []})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "input"


def test_the_wrong_kind_of_model_is_a_400_naming_it(daemon: DaemonProcess) -> None:
    """Embeddings from a chat deployment, or a chat from an embeddings one, is the app's mistake: a 400 that says
    which deployment serves what, not llama-server's 501 ("start it with --embeddings") or its 500."""
    client = _client(daemon)
    with pytest.raises(openai.BadRequestError) as chat_model:
        client.embeddings.create(model=STARTER, input="motor overheated")
    error = chat_model.value.response.json()["error"]
    assert error["code"] == "unsupported_model" and error["param"] == "model"
    assert f"'{STARTER}' is a chat deployment" in error["message"]
    with pytest.raises(openai.BadRequestError) as embed_model:
        client.chat.completions.create(model=EMBED, messages=ASK, max_tokens=4)
    assert f"'{EMBED}' is an embeddings deployment" in str(embed_model.value)
    completion = httpx.post(f"{daemon.url}/v1/completions", headers=daemon.admin_headers(),
                            json={"model": EMBED, "prompt": "Hello", "max_tokens": 4})
    assert completion.status_code == 400 and completion.json()["error"]["code"] == "unsupported_model"


def test_several_choices_with_n(daemon: DaemonProcess) -> None:
    answer = _client(daemon).chat.completions.create(model=STARTER, messages=ASK, n=2, max_tokens=8,
                                                     temperature=1.0, seed=3)
    assert sorted(c.index for c in answer.choices) == [0, 1]
    too_many = httpx.post(f"{daemon.url}/v1/chat/completions", headers=daemon.admin_headers(),
                          json={"model": STARTER, "messages": ASK, "n": 99, "max_tokens": 4})
    assert too_many.status_code == 400 and too_many.json()["error"]["param"] == "n"


def test_request_ids_are_returned_logged_and_in_errors(daemon: DaemonProcess) -> None:
    mine = httpx.post(f"{daemon.url}/v1/chat/completions", headers={**daemon.admin_headers(),
                                                                    "X-Request-Id": "shop-42.a"},
                      json={"model": "no-such-model", "messages": ASK})
    assert mine.headers["x-request-id"] == "shop-42.a"
    assert mine.json()["error"]["request_id"] == "shop-42.a"
    made = httpx.get(f"{daemon.url}/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert made.headers["x-request-id"].startswith("req_")
    raw = _client(daemon).chat.completions.with_raw_response.create(model=STARTER, messages=ASK, max_tokens=4)
    assert raw.headers["x-request-id"].startswith("req_")
    lines = [json.loads(line) for line in daemon.log().splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "shop-42.a" for line in lines)


def _usage(daemon: DaemonProcess, key: str) -> dict[str, int]:
    report = daemon.get("/api/v1/usage", params={"key": key, "since": "0"}).json()
    rows = [r for r in report["rows"] if r["model"] == STARTER]
    return rows[0] if rows else {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}


def _metric(daemon: DaemonProcess, line_start: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in daemon.get("/metrics").text.splitlines()
               if line.startswith(line_start))


def test_usage_per_key_moves_by_the_answers_own_counts(daemon: DaemonProcess) -> None:
    token = _key(daemon, "line-3")
    client = _client(daemon, token)
    before = _usage(daemon, "line-3")
    first = client.chat.completions.create(model=STARTER, messages=ASK, max_tokens=6, temperature=0)
    stream = client.chat.completions.create(model=STARTER, messages=ASK, max_tokens=5, temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    streamed = [c.usage for c in stream if c.usage][-1]
    after = _usage(daemon, "line-3")
    assert after["requests"] - before["requests"] == 2
    assert after["prompt_tokens"] - before["prompt_tokens"] == first.usage.prompt_tokens + streamed.prompt_tokens
    assert after["completion_tokens"] - before["completion_tokens"] == \
        first.usage.completion_tokens + streamed.completion_tokens
    out = _metric(daemon, f'slm_key_tokens_total{{deployment="{STARTER}",direction="out",key="line-3"}}')
    assert out == first.usage.completion_tokens + streamed.completion_tokens
    assert _metric(daemon, f'slm_key_requests_total{{deployment="{STARTER}",key="line-3"}}') == 2
    today = daemon.get("/api/v1/usage").json()["today"]["line-3"]
    assert today["tokens"] == after["prompt_tokens"] + after["completion_tokens"] and today["quota"] is None


def test_daily_quota_gives_429_with_a_clear_message(daemon: DaemonProcess) -> None:
    token = _key(daemon, "kiosk", quota=30)
    client = _client(daemon, token)
    client.chat.completions.create(model=STARTER, messages=ASK, max_tokens=8)  # > 30 tokens with the prompt
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=STARTER, messages=ASK, max_tokens=8)
    assert "of its 30 tokens for today" in str(raised.value)
    assert int(raised.value.response.headers["retry-after"]) > 0
    lifted = httpx.put(f"{daemon.url}/api/v1/keys/kiosk/quota", headers=daemon.admin_headers(),
                       json={"daily_token_quota": None})
    assert lifted.status_code == 200 and lifted.json()["daily_token_quota"] is None
    assert client.chat.completions.create(model=STARTER, messages=ASK, max_tokens=4).choices
