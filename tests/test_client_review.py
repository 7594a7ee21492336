"""The review loop's pure pieces the CLI and the TUI share: ratings, the conversation an edit starts from and
replaces the answer of, a conversation typed as JSON, the policy summary, and the CLI's ages and times."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.cli.review_output import moment, seconds
from appliance.client.policy import policy_lines
from appliance.client.review import conversation, feedback_lines, parse_conversation, rating, with_answer

ITEM = {"response_id": "chatcmpl-1", "messages": [{"role": "system", "content": "Be brief."},
                                                  {"role": "user", "content": "2+2?"}], "answer": "Five."}


@pytest.mark.parametrize(("score", "label", "shown"), [
    (5, True, "up 5/5"),  # thumbs up is stored as 5
    (1, False, "down 1/5"),  # thumbs down as 1
    (3, None, "3/5"),  # neutral: no thumbs
    (None, None, "—"),  # not rated
])
def test_rating(score: int | None, label: bool | None, shown: str) -> None:
    assert rating(score, label) == shown


def test_an_edit_starts_from_the_earlier_edit_else_the_captured_exchange() -> None:
    captured = conversation({"item": ITEM, "review": {"state": "pending", "messages": None}})
    assert captured == [*ITEM["messages"], {"role": "assistant", "content": "Five."}]
    earlier = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "Four."}]
    assert conversation({"item": ITEM, "review": {"state": "edited", "messages": earlier}}) == earlier
    assert with_answer(captured, "Four.")[-1] == {"role": "assistant", "content": "Four."}
    assert captured[-1]["content"] == "Five."  # a copy: the detail the screen shows is unchanged
    assert with_answer(ITEM["messages"], "Four.")[-1] == {"role": "assistant", "content": "Four."}  # appended


@pytest.mark.parametrize(("text", "error"), [
    ("[not json", "not JSON"),
    ("[]", "expected a list of messages"),
    ('{"role": "user"}', "expected a list of messages"),
    ('[{"content": "no role"}]', "message 1: needs a role"),
    ('[{"role": "user", "content": "ok"}, {"role": "assistant", "content": ["parts"]}]', "message 2"),
])
def test_a_typed_conversation_is_refused_naming_the_defect(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_conversation(text)


def test_a_typed_conversation_may_be_wrapped_in_messages() -> None:
    wrapped = '{"messages": [{"role": "user", "content": "hi", "name": "x"}, {"role": "assistant"}]}'
    assert parse_conversation(wrapped) == [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]


def test_feedback_rows() -> None:
    feedback: dict[str, Any] = {"score": 1, "label": False, "key_name": "app", "comment": "wrong", "tags": ["a", "b"],
                                "correction": [{"role": "assistant", "content": "Four."}]}
    assert feedback_lines(feedback) == [("rating", "down 1/5 (key app)"), ("correction", "assistant: Four."),
                                        ("comment", "wrong"), ("tags", "a, b")]
    assert feedback_lines(None) == []


def test_policy_summary_names_rules_not_their_content() -> None:
    version = {"deployment": "chat", "version": 3, "actor": "alice", "reason": "pii", "policy": {
        "guardrails": {"limits": {"max_prompt_tokens": 2000, "max_answer_tokens": None, "max_messages": 20},
                       "deny": [{"name": "cards", "direction": "input", "regex": r"\d{16}", "keywords": None}],
                       "redact": {"input": ["EMAIL"], "output": [], "capture": ["EMAIL", "EMP_ID"]},
                       "custom_entities": [{"label": "EMP_ID", "regex": "EMP-[0-9]{6}"}],
                       "guard": {"deployment": "guard", "directions": ["input", "output"], "timeout_s": 5.0,
                                 "on_error": "fail-closed"}},
        "capture": {"enabled": True, "sample_rate": 0.25, "retention_days": 7.0, "max_rows": 5000,
                    "max_bytes": 64 * 2**20}}}
    assert policy_lines(version) == [
        ("version", "v3 by alice (pii)"), ("limits", "prompt ≤ 2,000 tokens · ≤ 20 messages"),
        ("deny", "cards (input, regex)"), ("redact", "input EMAIL · output — · capture EMAIL, EMP_ID"),
        ("entities", "EMP_ID"), ("guard", "guard on input, output · 5 s · fail-closed"),
        ("capture", "on · sample 25% · keep 7 days · ≤ 5,000 items · ≤ 64 MiB")]
    none = policy_lines({"deployment": "chat", "version": 0, "policy": {}})
    assert none[0] == ("version", "none set") and none[-1] == ("capture", "off")


@pytest.mark.parametrize(("text", "value"), [("30d", 30 * 86400.0), ("12h", 43200.0), ("90m", 5400.0),
                                             ("3600", 3600.0), ("2w", 14 * 86400.0), ("0", 0.0)])
def test_ages(text: str, value: float) -> None:
    assert seconds(text) == value


def test_moments() -> None:
    assert moment("2h", now=10_000.0) == 10_000.0 - 7200
    assert moment("1700000000") == 1_700_000_000.0  # a plain number is Unix seconds
    assert moment("2025-06-01T00:00:00+00:00") == 1_748_736_000.0
    with pytest.raises(ValueError, match="not an age"):
        moment("yesterday")
    with pytest.raises(ValueError, match="not an age"):
        seconds("-5d")
