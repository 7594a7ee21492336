"""The SSE rewriter on llama-server-shaped streams: one token a chunk, a role chunk first, usage last."""

from __future__ import annotations

import json

from appliance.guardrails.engine import Guardrails
from appliance.guardrails.sse import SseGuard


def _chunk(choices: list[dict[str, object]], **extra: object) -> bytes:
    body = {"choices": choices, "created": 1700000000, "id": "chatcmpl-abc", "model": "smollm2",
            "system_fingerprint": "b1-abc", "object": "chat.completion.chunk", **extra}
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def _stream(tokens: list[str], index: int = 0, usage: bool = True) -> list[bytes]:
    events = [_chunk([{"index": index, "delta": {"role": "assistant", "content": None}, "finish_reason": None}])]
    events += [_chunk([{"index": index, "delta": {"content": t}, "finish_reason": None}]) for t in tokens]
    events.append(_chunk([{"index": index, "delta": {}, "finish_reason": "stop"}]))
    if usage:
        events.append(_chunk([], usage={"prompt_tokens": 5, "completion_tokens": len(tokens), "total_tokens": 9}))
    return [*events, b"data: [DONE]\n\n"]


def _events(data: bytes) -> list[object]:
    return [json.loads(e[6:]) if e != b"data: [DONE]" else "[DONE]" for e in data.split(b"\n\n") if e]


def _content(events: list[object]) -> str:
    return "".join(str(c["delta"].get("content") or "") for e in events if isinstance(e, dict)  # type: ignore[index]
                   for c in e.get("choices", ()))


TOKENS = ["Sure", ",", " write", " to", " bob", ".sm", "ith", "@", "exam", "ple", ".com", " or", " call",
          " +", "1", " 415", " 555", " 26", "71", "."]


def test_values_across_chunks_are_masked(guarded: Guardrails) -> None:
    guard = SseGuard(guarded.stream)
    out = b"".join(guard.feed(e) for e in _stream(TOKENS))
    events = _events(out)
    assert _content(events) == "Sure, write to [EMAIL] or call [PHONE]."
    assert b"bob" not in out and b"2671" not in out
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"  # type: ignore[index]
    assert events[-2]["usage"]["completion_tokens"] == len(TOKENS) and events[-1] == "[DONE]"  # type: ignore[index]
    assert not guard.denied and not guard.ended


def test_events_split_anywhere_across_reads(guarded: Guardrails) -> None:
    data = b"".join(_stream(TOKENS))
    whole = SseGuard(guarded.stream)
    expected = _content(_events(whole.feed(data)))
    assert expected == "Sure, write to [EMAIL] or call [PHONE]."
    for cut in range(1, len(data), 7):
        guard = SseGuard(guarded.stream)
        assert _content(_events(guard.feed(data[:cut]) + guard.feed(data[cut:]))) == expected


def test_a_deny_match_ends_the_stream_with_content_filter(guarded: Guardrails) -> None:
    guard = SseGuard(guarded.stream)
    out = b"".join(guard.feed(e) for e in _stream(["I", " will", " kill", " you", " now", "."]))
    events = _events(out)
    assert _content(events) == "I will "
    last = events[-2]["choices"][0]  # type: ignore[index]
    assert last["finish_reason"] == "content_filter" and events[-1] == "[DONE]"
    assert guard.ended and guard.denied == [("violence", "match")]
    assert b"kill" not in out and guard.feed(b"data: [DONE]\n\n") == b""


def test_completions_and_two_choices(guarded: Guardrails) -> None:
    guard = SseGuard(guarded.stream, choices=2)
    events = []
    for a, b in zip(["ip", " 10", ".0", ".0", ".1", " ok"], ["a", " bomb", " here", "!", "", ""], strict=True):
        events.append(_chunk([{"index": 0, "text": a, "finish_reason": None},
                              {"index": 1, "text": b, "finish_reason": None}], object="text_completion"))
    events.append(_chunk([{"index": 0, "text": "", "finish_reason": "length"},
                          {"index": 1, "text": "", "finish_reason": "length"}], object="text_completion"))
    out = _events(b"".join(guard.feed(e) for e in [*events, b"data: [DONE]\n\n"]))
    texts: dict[int, str] = {0: "", 1: ""}
    finish: dict[int, str] = {}
    for event in out:
        for c in event["choices"] if isinstance(event, dict) else ():  # type: ignore[index]
            texts[c["index"]] += c["text"]
            finish[c["index"]] = c["finish_reason"] or finish.get(c["index"], "")
    assert texts == {0: "ip [IP] ok", 1: "a "}
    assert finish == {0: "length", 1: "content_filter"}
    assert guard.denied == [("violence", "match")] and not guard.ended and out[-1] == "[DONE]"


def test_errors_and_unknown_lines_pass_as_they_came(guarded: Guardrails) -> None:
    guard = SseGuard(guarded.stream)
    error = b'data: {"error":{"message":"backend failed","type":"backend_error","code":"backend_closed"}}\n\n'
    assert guard.feed(b": keep-alive\n\n" + error) == b": keep-alive\n\n" + error
